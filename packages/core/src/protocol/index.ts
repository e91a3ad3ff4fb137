/**
 * `@tollgate/core/protocol`: what the Tollgate server and `httpStore()` share: the wire
 * schemas of the store protocol, the input schemas of every operation, the problem+json
 * codec and transport keys. Imported by `@tollgate/server` and the CLI; apps never need it.
 */
export {
  CHANGES_ROUTE,
  type ChangeStreamEvent,
  SSE_HEARTBEAT,
  SseReader,
  sseEvent,
} from './change-stream.js'
export { DEADLINE_HEADER } from './http-store.js'
export {
  PROBLEM_CONTENT_TYPE,
  type ProblemDetails,
  problemDetails,
  problemType,
} from './problem.js'
export { isTransportKey, markTransportKey, TRANSPORT_KEY_PREFIX } from './transport-key.js'
export {
  accountsQuerySchema,
  adjustOptionsSchema,
  checkAccount,
  checkAmount,
  checkText,
  commitOptionsSchema,
  configureSchema,
  createCodesSchema,
  debitOptionsSchema,
  extendOptionsSchema,
  grantOptionsSchema,
  idempotencyKey as idempotencyKeySchema,
  increaseOptionsSchema,
  isStorableText,
  ledgerQuerySchema,
  parse as parseInput,
  redeemOptionsSchema,
  releaseOptionsSchema,
  reserveOptionsSchema,
  startCycleSchema,
  stopCycleSchema,
  text as textSchema,
  ttlSchema,
  USAGE_DEFAULT_WINDOW_MS,
  usageOptionsSchema,
  usageRequestOf,
  wholeNumber as wholeNumberSchema,
} from './validation.js'
export {
  accountSchema,
  accountsBodySchema,
  type BatchItem,
  batchBodySchema,
  batchItemSchema,
  type CodeBatchBody,
  codeBatchBodySchema,
  dueBodySchema,
  type ExecuteBody,
  engineConfigSchema,
  errorFromProblem,
  executeBodySchema,
  HOLD_OPERATIONS,
  ledgerBodySchema,
  MAX_BATCH_OPERATIONS,
  operationSchema,
  outcomeFromWire,
  outcomeToWire,
  pruneBodySchema,
  usageBodySchema,
  type WireBatchAnswer,
  type WireOutcome,
} from './wire.js'
