/**
 * `@tollgate/core/engine`: the ledger rules as pure functions over one account's state
 * (`(state, operation, now) → (new state, ledger entries, result)`). Imported by store authors
 * (`@tollgate/postgres`, a new store) and benchmarks; apps never need it. A store calls
 * `applyOperation` for every operation, `decideCodeBatch` for code batches with a key, and the
 * functions of `due.ts` to pick the holds to load and the accounts `sweep()` touches
 * (docs/store.md).
 */
export { applyOperation, NO_METADATA, newAccountState, toLedgerEntry } from './apply.js'
export { compareBuckets, ensureBurnOrder, insertBucket } from './burn-order.js'
export { canonicalCode, checkCharacter, generateCode, hashCode, isValidPrefix } from './codes.js'
export {
  DUE_RULES,
  type DueCondition,
  type DueFields,
  type DueRule,
  holdsToLoad,
  isAccountDue,
  isBucketDue,
  isCycleDue,
  isDue,
  isHoldDue,
  matchesDueRule,
  nextCycleAt,
} from './due.js'
export {
  type AlertEventType,
  alertEvents,
  type EventDraft,
  entryEvent,
  type StoredEventType,
} from './events.js'
export {
  type CodeBatchDecision,
  type CodeBatchInput,
  type CodeBatchKey,
  canonicalJson,
  codeBatchFingerprint,
  codeBatchRecord,
  decideCodeBatch,
  decideKey,
  fingerprintFields,
  fingerprintMatches,
  fingerprintOf,
  type KeyDecision,
} from './idempotency.js'
export { periodStart } from './periods.js'
export { type LedgerFigures, replayLedger } from './replay.js'
export {
  growth,
  type HoldSettlement,
  overdraftRoom,
  type SettleRoom,
  settleHold,
} from './settle.js'
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
export { accountSummary, summaryOf } from './summary.js'
export {
  addUsage,
  compareCodePoints,
  emptyUsagePeriods,
  MAX_USAGE_DIMENSIONS,
  MAX_USAGE_GROUPS,
  MAX_USAGE_KEY_LENGTH,
  MAX_USAGE_PERIODS,
  MAX_USAGE_VALUE_LENGTH,
  nextUsagePeriod,
  type UsageFigures,
  type UsageWindow,
  usageDimensions,
  usageGroups,
  usageHour,
  usageOf,
  usagePeriodIndex,
  usagePeriodStart,
  usageReportFrom,
  usageReportOf,
  usageWindow,
} from './usage.js'
