/**
 * The engine's view of one account. Stores load it, hand it to {@link applyOperation}
 * and persist what the returned {@link Effects} say changed. Plain data only, so a store
 * can serialize every field as it is.
 */
import type { TollgateError } from '../errors.js'
import type {
  Balance,
  Category,
  CycleEvery,
  LedgerEntry,
  Metadata,
  OveragePolicy,
} from '../types.js'

/** A grant's bucket. Kept in burn order in {@link AccountState.buckets}. */
export interface BucketState {
  id: string
  /** What was put into the bucket (after any debt repayment). */
  amount: number
  /** Unspent, held part included. */
  remaining: number
  held: number
  expiresAt: number | null
  priority: number
  category: Category
  createdAt: number
  /** True once the bucket passed `expiresAt` and its free remainder left the balance. */
  expired: boolean
  /** The cycle that funded it, if any (rollover looks the bucket up by this). */
  cycleId: string | null
}

export type HoldStatus = 'pending' | 'committed' | 'released' | 'expired'

export interface HoldState {
  id: string
  account: string
  amount: number
  expiresAt: number
  createdAt: number
  status: HoldStatus
  allocations: { bucketId: string; amount: number }[]
  metadata: Metadata
  /** When it left `pending`. */
  resolvedAt: number | null
}

export interface CycleState {
  id: string
  amount: number
  every: CycleEvery
  rolloverMax: number | null
  priority: number
  category: Category
  anchor: number
  /** Index of the newest materialised period (0 = the one starting at `anchor`). */
  period: number
  active: boolean
  /** The bucket funded for the current period (rollover reads what is left of it). */
  bucketId: string | null
}

/** 0 = above the low threshold, 1 = low, 2 = depleted; null = not yet evaluated. */
export type AlertLevel = 0 | 1 | 2 | null

/** The account row: scalars that change with most operations. */
export interface AccountRecord {
  account: string
  debt: number
  lowBalanceThreshold: number | null
  overdraftLimit: number | null
  alertLevel: AlertLevel
  cycle: CycleState | null
  /** Failed redeem attempts in the current window. */
  redeemFailures: number
  redeemWindowStart: number
  createdAt: number
}

/**
 * One account's state as the engine sees it. `holds` need not be every hold of the account:
 * a store loads the holds the operation names plus every pending hold with
 * `expiresAt ≤ now` (so lazy TTL expiry sees them).
 */
export interface AccountState {
  record: AccountRecord
  /** Live buckets (remaining > 0), in burn order. */
  buckets: BucketState[]
  holds: HoldState[]
}

/** A stored redeem code: only the hash of its canonical form. */
export interface CodeRecord {
  hash: string
  batchId: string
  credits: number
  validityDays: number | null
  codeExpiresAt: number | null
  maxRedemptions: number
  redemptions: number
  priority: number
  category: Category
  createdAt: number
}

/** What the store found for a redeem operation's code. */
export interface CodeLookup {
  code: CodeRecord | null
  /** Whether this account redeemed this code before. */
  redeemedByAccount: boolean
}

/** A stored idempotency record, unique per (tenant, key). */
export interface IdempotencyRecord {
  key: string
  /** The account (or `''` for tenant-level operations) the key was first used on. */
  account: string
  /** A digest of the operation's input: same key + other fingerprint = conflict. */
  fingerprint: string
  /** The original result, JSON-safe. */
  result: unknown
  createdAt: number
}

// ---- operations: plain data, so a store can batch them or send them over HTTP ----

interface OpBase {
  idempotencyKey?: string | undefined
  /**
   * The key is not the caller's (a transport made it to dedupe its own retries): it dedupes
   * and replays like any key, but ledger entries leave it out. Not part of the input (the
   * fingerprint). @default false
   */
  hideKey?: boolean | undefined
}

export interface GrantOp extends OpBase {
  type: 'grant'
  amount: number
  expiresAt: number | null
  /** Days from the operation's time; part of the fingerprint as given, so a retry replays. */
  validityDays: number | null
  priority: number
  category: Category
  metadata: Metadata
}
export interface DebitOp extends OpBase {
  type: 'debit'
  amount: number
  metadata: Metadata
}
/** A signed correction: positive adds a bucket, negative removes available credits. */
export interface AdjustOp extends OpBase {
  type: 'adjust'
  delta: number
  reason: string
  metadata: Metadata
}
export interface ReserveOp extends OpBase {
  type: 'reserve'
  amount: number
  ttlMs: number
  metadata: Metadata
}
export interface CommitOp extends OpBase {
  type: 'commit'
  holdId: string
  /** undefined: the held amount. */
  actual: number | undefined
  overage: OveragePolicy | undefined
  metadata: Metadata
}
export interface ReleaseOp extends OpBase {
  type: 'release'
  holdId: string
  metadata: Metadata
}
export interface ExtendOp extends OpBase {
  type: 'extend'
  holdId: string
  ttlMs: number
}
/**
 * Grows a pending hold by `amount` free credits in burn order. All or nothing, unless
 * `partial`: then by as much as is available, up to `amount`.
 */
export interface IncreaseOp extends OpBase {
  type: 'increase'
  holdId: string
  amount: number
  /** Grow by what is available when that is less than `amount`. @default false */
  partial: boolean
}
export interface BalanceOp extends OpBase {
  type: 'balance'
}
export interface ConfigureOp extends OpBase {
  type: 'configure'
  lowBalanceThreshold?: number | null
  overdraftLimit?: number | null
}
export interface StartCycleOp extends OpBase {
  type: 'startCycle'
  amount: number
  every: CycleEvery
  rolloverMax: number | null
  priority: number
  category: Category
}
export interface StopCycleOp extends OpBase {
  type: 'stopCycle'
}
export interface RedeemOp extends OpBase {
  type: 'redeem'
  /** SHA-256 hex of the canonical code. */
  codeHash: string
}

export type Operation =
  | GrantOp
  | DebitOp
  | AdjustOp
  | ReserveOp
  | CommitOp
  | ReleaseOp
  | ExtendOp
  | IncreaseOp
  | BalanceOp
  | ConfigureOp
  | StartCycleOp
  | StopCycleOp
  | RedeemOp

/** Operations addressed by hold id; the store finds the account from the hold. */
export type HoldOperation = CommitOp | ReleaseOp | ExtendOp | IncreaseOp

/** Meter-wide settings the engine needs. */
export interface EngineConfig {
  lowBalanceThreshold: number | null
  overdraftLimit: number | null
  overage: OveragePolicy
  redeemMaxFailures: number
  redeemWindowMs: number
}

/** Everything besides the state that an operation depends on. */
export interface EngineContext {
  now: number
  config: EngineConfig
  /** The record for `op.idempotencyKey`, if the store has one. */
  idempotency: IdempotencyRecord | null
  /** For `redeem`: what the store found for the code. */
  code?: CodeLookup | undefined
  /** Makes a new id with the given prefix (`grt`, `hld`, `rdm`, `cyc`) at time `now`. */
  newId: (prefix: string, now: number) => string
}

/**
 * A ledger entry as the engine writes it: `id` is `''` until the store assigns one, and every
 * optional field is present (undefined when unused) so all entries share one object shape.
 * Stores return entries through {@link toLedgerEntry}, which drops the unused fields.
 */
export type EntryDraft = {
  // Mapped over Required<…>, not LedgerEntry itself, so optional fields become present
  // (`string | undefined`) instead of losing their `undefined`.
  [K in keyof Required<LedgerEntry>]: undefined extends LedgerEntry[K]
    ? Exclude<LedgerEntry[K], undefined> | undefined
    : LedgerEntry[K]
}

export type EngineEvent =
  | { type: 'low' | 'depleted' | 'recovered'; account: string; available: number; at: number }
  | {
      type: 'granted'
      account: string
      grantId: string
      amount: number
      source: string
      at: number
    }
  | {
      type: 'committed'
      account: string
      holdId: string
      charged: number
      shortfall: number
      at: number
    }
  | { type: 'released'; account: string; holdId: string; freed: number; at: number }
  | {
      type: 'expired'
      account: string
      kind: 'bucket' | 'hold'
      id: string
      amount: number
      at: number
    }

/** What an operation did. Stores persist it; the meter reads `result`/`error`. */
export interface Effects {
  /** Op-specific JSON-safe result (without `balance`/`replayed`), absent on error or replay. */
  result: Record<string, unknown> | null
  /** A domain error. State changes listed here (lazy expiry, failed-attempt counts) still persist. */
  error: TollgateError | null
  /** True when the result was replayed from an idempotency record; nothing changed. */
  replayed: boolean
  balance: Balance
  entries: EntryDraft[]
  /** Buckets whose fields changed or that were created (by object identity in `state.buckets`, or dropped when spent). */
  touchedBuckets: BucketState[]
  touchedHolds: HoldState[]
  /** The account row changed. */
  recordChanged: boolean
  /**
   * The idempotency record to save, if the operation carried a key and succeeded. Its `result`
   * shares objects with `result`, which the caller may change once it has it: a store that
   * keeps the record as an object beyond the batch keeps a copy (a SQL store writes it as JSON
   * within the batch; a replay hands out a copy of the record's result).
   */
  saveIdempotency: IdempotencyRecord | null
  /** A redemption to record (and the code's counter to bump). */
  redemption: { codeHash: string; redemptionId: string } | null
  events: EngineEvent[]
  /** Anything durable changed; false for replays, conflicts and reads that found nothing due. */
  changed: boolean
}
