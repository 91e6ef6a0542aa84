/**
 * Errors answered before a stream starts, each with its HTTP status and a
 * JSON body `{"_tag", "message"}` (statuses from `protocol/Errors.ts`).
 * `Unauthorized` and `Forbidden` are for authentication middleware: use them
 * as (part of) an `RpcMiddleware` failure schema and the server answers 401
 * or 403 before the handler runs. Any other error schema can choose its
 * status with `HttpApiSchema.annotations({ status })`.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as Schema from "effect/Schema"
import { statuses } from "../protocol/Errors.ts"

const fields = { message: Schema.String }

export class MalformedJson extends Schema.TaggedError<MalformedJson>()(
  "MalformedJson",
  fields,
  HttpApiSchema.annotations({ status: statuses.MalformedJson })
) {}

export class InvalidPayload extends Schema.TaggedError<InvalidPayload>()(
  "InvalidPayload",
  fields,
  HttpApiSchema.annotations({ status: statuses.InvalidPayload })
) {}

export class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  fields,
  HttpApiSchema.annotations({ status: statuses.Unauthorized })
) {}

export class Forbidden extends Schema.TaggedError<Forbidden>()(
  "Forbidden",
  fields,
  HttpApiSchema.annotations({ status: statuses.Forbidden })
) {}

export class NotFound extends Schema.TaggedError<NotFound>()(
  "NotFound",
  fields,
  HttpApiSchema.annotations({ status: statuses.NotFound })
) {}

export class MethodNotAllowed extends Schema.TaggedError<MethodNotAllowed>()(
  "MethodNotAllowed",
  fields,
  HttpApiSchema.annotations({ status: statuses.MethodNotAllowed })
) {}

export class NotAcceptable extends Schema.TaggedError<NotAcceptable>()(
  "NotAcceptable",
  fields,
  HttpApiSchema.annotations({ status: statuses.NotAcceptable })
) {}

/** The request body did not arrive within the server's body timeout; the connection is closed. */
export class RequestTimeout extends Schema.TaggedError<RequestTimeout>()(
  "RequestTimeout",
  fields,
  HttpApiSchema.annotations({ status: statuses.RequestTimeout })
) {}

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()(
  "PayloadTooLarge",
  fields,
  HttpApiSchema.annotations({ status: statuses.PayloadTooLarge })
) {}

export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()(
  "UnsupportedMediaType",
  fields,
  HttpApiSchema.annotations({ status: statuses.UnsupportedMediaType })
) {}

/**
 * The server is draining (graceful shutdown) and takes no new request; the
 * connection is closed with the answer, so a client retries on a new one
 * (another instance behind the load balancer).
 */
export class ServiceUnavailable extends Schema.TaggedError<ServiceUnavailable>()(
  "ServiceUnavailable",
  fields,
  HttpApiSchema.annotations({ status: statuses.ServiceUnavailable })
) {}

/** A defect on the server: the body never carries its message or stack. */
export class InternalError extends Schema.TaggedError<InternalError>()(
  "InternalError",
  fields,
  HttpApiSchema.annotations({ status: statuses.InternalError })
) {}

export const ProtocolError = Schema.Union(
  MalformedJson,
  InvalidPayload,
  Unauthorized,
  Forbidden,
  NotFound,
  MethodNotAllowed,
  NotAcceptable,
  RequestTimeout,
  PayloadTooLarge,
  UnsupportedMediaType,
  ServiceUnavailable,
  InternalError
)

export type ProtocolError = typeof ProtocolError.Type

/** HTTP status of an error value, from its schema's status annotation. */
export const statusOf = (schema: Schema.Schema.All, fallback: number): number =>
  HttpApiSchema.getStatus(schema.ast, fallback)
