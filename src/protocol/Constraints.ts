/**
 * The constraints a refinement of the contract carries, as JSON Schema names
 * them: what the generator reads off a schema, writes into a generated
 * client and its OpenAPI document, and what the client's codecs check on the
 * value side (after decoding, before encoding).
 */
export interface Constraints {
  readonly integer?: boolean
  readonly minimum?: number
  readonly maximum?: number
  readonly exclusiveMinimum?: number
  readonly exclusiveMaximum?: number
  readonly multipleOf?: number
  readonly minLength?: number
  readonly maxLength?: number
  readonly minItems?: number
  readonly maxItems?: number
  readonly pattern?: string
}
