export { BalanceCache, type BalanceCacheOptions } from './balance-cache.js'
export { canonicalCode, checkCharacter, generateCode, hashCode, isValidPrefix } from './codes.js'
export {
  applyOperation,
  fingerprintOf,
  NO_METADATA,
  newAccountState,
  toLedgerEntry,
} from './engine/apply.js'
export { compareBuckets, ensureBurnOrder, insertBucket } from './engine/burn-order.js'
export { periodStart } from './engine/periods.js'
export type {
  AccountRecord,
  AccountState,
  AlertLevel,
  BucketState,
  CodeLookup,
  CodeRecord,
  CycleState,
  Effects,
  EngineConfig,
  EngineContext,
  EngineEvent,
  EntryDraft,
  HoldOperation,
  HoldState,
  HoldStatus,
  IdempotencyRecord,
  Operation,
} from './engine/state.js'
export {
  AuthError,
  CodeUnavailableError,
  type CodeUnavailableReason,
  type ErrorCode,
  HoldExpiredError,
  HoldResolvedError,
  IdempotencyConflictError,
  InsufficientCreditsError,
  InvalidInputError,
  isTollgateError,
  NotFoundError,
  OverageError,
  RateLimitedError,
  StoreUnavailableError,
  TollgateError,
} from './errors.js'
export { DEADLINE_HEADER, type HttpStoreOptions, httpStore } from './http-store.js'
export { newId } from './ids.js'
export { type LeaseOptions, LOCAL_HOLD_PREFIX } from './lease.js'
export { type MemoryStoreOptions, memoryStore } from './memory-store.js'
export {
  type CallOptions,
  type CommitOptions,
  type CreateCodesOptions,
  createMeter,
  type ExtendResult,
  type GrantOptions,
  Hold,
  Meter,
  type MeterEventName,
  type MeterEvents,
  type MeterOptions,
  type MutationOptions,
  type ReserveOptions,
  type StartCycleOptions,
} from './meter.js'
export {
  type Admission,
  type Awaitable,
  type CreditHeaderNames,
  createRequestMeter,
  type FinishReason,
  MeteredRequest,
  type MeteringOptions,
  type RefusedCredits,
  type RequestCredits,
  RequestMeter,
  type ResolvedMeteringOptions,
  resolveMeteringOptions,
} from './metering.js'
export {
  PROBLEM_CONTENT_TYPE,
  type ProblemDetails,
  problemDetails,
  problemType,
} from './problem.js'
export {
  type ApiKeyRecord,
  type CodeBatch,
  type CodeBatchOutcome,
  decodeCursor,
  type ExecuteRequest,
  encodeCursor,
  errorOutcome,
  type KeyRegistry,
  type LedgerRequest,
  memoryKeyRegistry,
  type Outcome,
  type Store,
} from './store.js'
export { isTransportKey, TRANSPORT_KEY_PREFIX } from './transport-key.js'
export * from './types.js'
export {
  adjustOptionsSchema,
  checkAccount,
  checkAmount,
  commitOptionsSchema,
  configureSchema,
  createCodesSchema,
  debitOptionsSchema,
  extendOptionsSchema,
  grantOptionsSchema,
  idempotencyKey as idempotencyKeySchema,
  ledgerQuerySchema,
  parse as parseInput,
  redeemOptionsSchema,
  releaseOptionsSchema,
  reserveOptionsSchema,
  startCycleSchema,
  stopCycleSchema,
  timeoutMs as timeoutMsSchema,
  ttlSchema,
} from './validation.js'
export {
  accountSchema,
  type CodeBatchBody,
  codeBatchBodySchema,
  dueBodySchema,
  type ExecuteBody,
  engineConfigSchema,
  errorFromProblem,
  executeBodySchema,
  HOLD_OPERATIONS,
  ledgerBodySchema,
  operationSchema,
  outcomeFromWire,
  outcomeToWire,
  pruneBodySchema,
  type WireOutcome,
} from './wire.js'
