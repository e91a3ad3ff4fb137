/**
 * `@tollgate/core`: what an app calls. A meter over a store, holds, the stores an app picks
 * without another package (memory, a Tollgate server), the typed errors and the public types.
 *
 * Other audiences have entries of their own: `/engine` (the pure ledger rules, for store
 * authors), `/store` (the Store contract), `/protocol` (wire and input schemas, for the server)
 * and `/metering` (the request-metering kit, for framework adapters).
 */
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
export type { BalanceCacheOptions } from './meter/balance-cache.js'
export type { LeaseOptions } from './meter/lease.js'
export {
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
} from './meter/meter.js'
export { type HttpStoreOptions, httpStore } from './protocol/http-store.js'
export { PROBLEM_CONTENT_TYPE, type ProblemDetails, problemDetails } from './protocol/problem.js'
export { type MemoryStoreOptions, memoryStore } from './store/memory-store.js'
export type { Store } from './store/store.js'
export * from './types.js'
