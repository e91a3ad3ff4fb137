/**
 * `@tollgate/core/engine`: the ledger rules as pure functions over one account's state
 * (`(state, operation, now) → (new state, ledger entries, result)`). Imported by store authors
 * (`@tollgate/postgres`, a new store) and benchmarks; apps never need it.
 */
export {
  applyOperation,
  fingerprintOf,
  NO_METADATA,
  newAccountState,
  toLedgerEntry,
} from './apply.js'
export { compareBuckets, ensureBurnOrder, insertBucket } from './burn-order.js'
export { canonicalCode, checkCharacter, generateCode, hashCode, isValidPrefix } from './codes.js'
export { periodStart } from './periods.js'
export { type LedgerFigures, replayLedger } from './replay.js'
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
} from './state.js'
