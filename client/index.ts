export * as RpcProtocol from "./RpcProtocol.ts"
export * as SseParser from "./SseParser.ts"
