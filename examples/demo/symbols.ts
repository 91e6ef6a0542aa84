/** The demo's ticker symbols: shared by the contract's handlers and the page, which imports no Effect. */
export const symbols = ["ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI"] as const
