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
export type { MeterEventName, MeterEvents } from './meter/events.js'
export {
  type OpenTelemetryMetricsOptions,
  type OtelBatchResultLike,
  type OtelMeterLike,
  openTelemetryMetrics,
  type PromClientLike,
  type PromCounterLike,
  type PrometheusCollectorOptions,
  prometheusCollector,
  type StatsSource,
} from './meter/export-stats.js'
export { type ExtendResult, Hold } from './meter/hold.js'
export type { LeaseOptions } from './meter/lease.js'
export { createMeter, Meter } from './meter/meter.js'
export type {
  CallOptions,
  CommitOptions,
  CreateCodesOptions,
  GrantOptions,
  IncreaseOptions,
  MutationOptions,
  ReserveOptions,
  StartCycleOptions,
} from './meter/operation-options.js'
export type { MeterOptions } from './meter/options.js'
export type { MeterStats } from './meter/stats.js'

export type { EventSubscription, SubscribeOptions } from './meter/subscribe.js'
export { type HttpStoreOptions, httpStore } from './protocol/http-store.js'
export { PROBLEM_CONTENT_TYPE, type ProblemDetails, problemDetails } from './protocol/problem.js'
export { type MemoryStoreOptions, memoryStore } from './store/memory-store.js'
export type { Store, StoredEvent, StoredEventType } from './store/store.js'
export * from './types.js'
