export * as DownloadProgress from "./DownloadProgress.ts"
export * as RpcProtocol from "./RpcProtocol.ts"
export * as SseParser from "./SseParser.ts"
export * as StreamClient from "./StreamClient.ts"
