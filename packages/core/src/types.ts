/** Public data shapes. Every amount is a non-negative safe integer in the app's smallest unit. */

/** How a bucket was funded; promotional credits burn before paid ones at equal priority and expiry. */
export type Category = 'paid' | 'promotional'

/** What a commit does when `actual` exceeds the hold. */
export type OveragePolicy = 'reject' | 'clamp' | 'overdraft'

/** Free-form JSON metadata attached to grants, holds and ledger entries (at most 4 KiB as JSON). */
export type Metadata = Record<string, unknown>

/** One bucket of a balance, in burn order. */
export interface BalanceBucket {
  id: string
  /** Unspent credits, its held part included. */
  remaining: number
  /** The part earmarked by pending holds. */
  held: number
  /** ms since epoch, or null for no expiry. */
  expiresAt: number | null
  priority: number
  category: Category
}

/** An account's balance. */
export interface Balance {
  account: string
  /** Unspent credits in all buckets, held credits included. */
  total: number
  /** Credits earmarked by pending holds. */
  held: number
  /** `total − held`: what a debit or reserve can take now. */
  available: number
  /** Credits owed after an overdraft; the next grants repay it first. */
  debt: number
  /** `available ≤ lowBalanceThreshold` (false when no threshold applies). */
  low: boolean
  buckets: BalanceBucket[]
  /** The clock reading this balance was computed at (ms since epoch). */
  asOf: number
}

/** Which bucket a hold or debit took credits from. */
export interface Allocation {
  bucketId: string
  amount: number
}

/** Fields every mutation result carries. */
export interface MutationResult {
  /** True when this result was replayed for a repeated idempotency key. */
  replayed: boolean
  /** The account's balance right after the operation (for replays: as it was then). */
  balance: Balance
}

/** The result of {@link Meter.grant}. */
export interface Grant extends MutationResult {
  id: string
  account: string
  amount: number
  /** Part of `amount` that went to repay debt instead of into the bucket. */
  repaidDebt: number
  expiresAt: number | null
  priority: number
  category: Category
  metadata: Metadata
  createdAt: number
}

/** The result of {@link Meter.debit} and {@link Meter.adjust} with a negative amount. */
export interface DebitResult extends MutationResult {
  account: string
  amount: number
  allocations: Allocation[]
}

/** The data of a hold (reservation). */
export interface HoldData {
  id: string
  account: string
  amount: number
  expiresAt: number
  createdAt: number
  allocations: Allocation[]
  metadata: Metadata
}

/** The result of a commit. */
export interface CommitResult extends MutationResult {
  holdId: string
  account: string
  /** Credits actually spent. */
  charged: number
  /** Part of `actual` that could not be charged (clamp, or beyond the overdraft limit). */
  shortfall: number
  /** Part of `actual` that became debt (overdraft policy). */
  debt: number
  /** Held credits returned to the balance (`amount − actual` when under the hold). */
  freed: number
}

/** The result of {@link Meter.increase}: the hold as it is after growing. */
export interface IncreaseResult extends MutationResult {
  holdId: string
  account: string
  /** The hold's new total. */
  amount: number
  /** Credits added by this call: `n`, or with `partial` what was available (possibly 0). */
  added: number
  expiresAt: number
}

/** The result of a release. */
export interface ReleaseResult extends MutationResult {
  holdId: string
  account: string
  /** Held credits returned to the balance. */
  freed: number
}

/** The result of {@link Meter.redeem}. */
export interface RedeemResult extends MutationResult {
  redemptionId: string
  account: string
  creditsGranted: number
  /** Available credits after the redemption. */
  newBalance: number
  /** When the funded bucket expires, or null. */
  expiresAt: number | null
  grantId: string
}

/** How often a cycle refills. */
export type CycleEvery = 'day' | 'week' | 'month' | { days: number }

/** A recurring grant. */
export interface CycleData {
  id: string
  account: string
  amount: number
  every: CycleEvery
  /** Unspent credits carried into the next period, capped at `max`; null: none. */
  rollover: { max: number } | null
  /** Start of the first period (ms since epoch). */
  anchor: number
  /** Start of the current period. */
  periodStart: number
  /** End of the current period (= start of the next). */
  periodEnd: number
  active: boolean
}

/** The result of {@link Meter.startCycle} / {@link Meter.stopCycle}. */
export interface CycleResult extends MutationResult {
  cycle: CycleData
  /** The id of the cycle this one replaced, if one was active. */
  replaced: string | null
}

/**
 * A tenant's default settings, stored with the ledger (`PUT /v1/settings`, `tollgate settings
 * set`): what every meter, the REST API and the CLI apply to accounts without settings of
 * their own. `null`: not stored, so each meter's own option (`createMeter({
 * lowBalanceThreshold, overdraftLimit })`) applies. See docs/decisions.md, "Settings".
 */
export interface TenantSettings {
  lowBalanceThreshold: number | null
  overdraftLimit: number | null
}

/**
 * An account's settings as {@link Meter.settings} reads them: its own (null: none) and the
 * ones in effect for it, after the tenant's stored defaults and the meter's options.
 */
export interface AccountSettingsView extends AccountSettings {
  account: string
  effective: AccountSettings
}

/** The result of {@link Meter.configure}. */
export interface AccountSettings {
  /** null: inherit the meter default. */
  lowBalanceThreshold: number | null
  /** null: inherit the meter default. */
  overdraftLimit: number | null
}

/** The result of {@link Meter.createCodes}. */
export interface CreateCodesResult {
  batchId: string
  /** Plaintext codes. Shown once: a replayed request returns an empty list. */
  codes: string[]
  count: number
  credits: number
  codeExpiresAt: number | null
  replayed: boolean
}

export type LedgerEntryType =
  | 'grant'
  | 'debit'
  | 'hold'
  | 'commit'
  | 'release'
  | 'expire'
  | 'redeem'
  | 'cycle_grant'
  | 'adjust'

export const LEDGER_ENTRY_TYPES: readonly LedgerEntryType[] = [
  'grant',
  'debit',
  'hold',
  'commit',
  'release',
  'expire',
  'redeem',
  'cycle_grant',
  'adjust',
]

/**
 * One append-only ledger entry. Replaying an account's entries oldest first reproduces its
 * balance: `Σ delta = total − debt`, `Σ heldDelta = held`, `Σ debtDelta = debt`.
 */
export interface LedgerEntry {
  /** Store-assigned, increasing within a tenant. */
  id: string
  account: string
  type: LedgerEntryType
  /** Change of the net balance `total − debt`. */
  delta: number
  /** Change of `held`. */
  heldDelta: number
  /** Change of `debt`. */
  debtDelta: number
  /** Net balance `total − debt` after this entry. */
  balanceAfter: number
  holdId?: string
  grantId?: string
  redemptionId?: string
  cycleId?: string
  idempotencyKey?: string
  /** Why the system wrote it, for entries no caller asked for (`'hold_ttl'`, `'bucket_expiry'`, ...). */
  reason?: string
  metadata: Metadata
  /** When it took effect (ms since epoch); lazily applied expiries carry their due time. */
  at: number
}

/** Options of {@link Meter.ledger}. */
export interface LedgerQuery {
  /** 1–1000. @default 100 */
  limit?: number
  /** Opaque cursor from a previous page's `nextCursor`. */
  cursor?: string
  types?: LedgerEntryType[]
  /** Only entries with `at ≥ from`. */
  from?: number
  /** Only entries with `at < to`. */
  to?: number
}

/** How {@link Meter.accounts} orders accounts: by id, by `available`, or by `updatedAt`. */
export type AccountsSort = 'account' | 'balance' | 'activity'

/** Options of {@link Meter.accounts}. Filters combine with AND. */
export interface AccountsQuery {
  /** 1–1000. @default 100 */
  limit?: number
  /** Opaque cursor from a previous page's `nextCursor` (same sort and order). */
  cursor?: string | null
  /** Only accounts whose id starts with this. */
  prefix?: string
  /** Only accounts whose `low` is true (or, with false, only those whose `low` is false). */
  low?: boolean
  /** Only accounts with debt (or, with false, only those without). */
  inDebt?: boolean
  /** Only accounts with credits held (or, with false, only those without). */
  hasHolds?: boolean
  /** @default 'account' */
  sort?: AccountsSort
  /** @default 'asc' for `account`, 'desc' for `balance` and `activity` */
  order?: 'asc' | 'desc'
}

/**
 * One account as an operator list shows it: the figures as of its last ledger change (an expiry
 * that is due but not yet applied shows once the account is next touched or swept).
 */
export interface AccountSummary
  extends Pick<Balance, 'account' | 'total' | 'held' | 'available' | 'debt'> {
  /**
   * `available ≤` the account's own `lowBalanceThreshold`, else the tenant's stored default
   * (`PUT /v1/settings`); false when neither is set. A meter's own option is not consulted: the
   * list is the same whichever meter or server reads it.
   */
  low: boolean
  /** ms since epoch of the account's last ledger change (its creation when it has none). */
  updatedAt: number
}

/** One page of accounts. */
export interface AccountsPage {
  accounts: AccountSummary[]
  /** Pass to the next call to continue; null on the last page. */
  nextCursor: string | null
}

/** One page of ledger entries, newest first. */
export interface LedgerPage {
  entries: LedgerEntry[]
  /** Pass to the next call to continue; null on the last page. */
  nextCursor: string | null
}

/** The length of a usage period: a UTC hour, UTC day or UTC calendar month. */
export type UsageInterval = 'hour' | 'day' | 'month'

/** The usage intervals, in increasing length. */
export const USAGE_INTERVALS: readonly UsageInterval[] = ['hour', 'day', 'month']

/**
 * What a usage read asks for (see docs/usage.md). `from`/`to` are widened to whole periods of
 * `interval`: `from` down to its period's start, `to` up to the next period boundary.
 */
export interface UsageRequest {
  /** One account; absent for the whole tenant. */
  account?: string
  interval: UsageInterval
  /** ms since epoch, inclusive. */
  from: number
  /** ms since epoch, exclusive. */
  to: number
  /** A metadata key to break the figures down by (`feature`, `model`, …). */
  groupBy?: string
}

/** Options of `meter.usage()`. */
export interface UsageOptions {
  /** @default 'day' */
  interval?: UsageInterval
  /** ms since epoch or a Date, inclusive. @default 30 days before `to` */
  from?: number | Date
  /** ms since epoch or a Date, exclusive. @default now (the meter's clock) */
  to?: number | Date
  /** A metadata key to break the figures down by. */
  groupBy?: string
}

/**
 * The ledger's figures of one period. `granted − spent − expired` is the change of the net
 * balance (`total − debt`) over the period; `released` is what holds gave back unspent.
 */
export interface UsagePeriod {
  /** ms since epoch: the period's UTC start. */
  start: number
  /** Credits added: grants, redemptions, cycle grants and adjustments (signed: a negative adjustment lowers it). */
  granted: number
  /** Credits charged: debits and hold commits (what the commit charged). */
  spent: number
  /** Held credits freed unspent: releases, TTL expiry of holds, the unused part of commits. */
  released: number
  /** Credits that left with bucket expiry. */
  expired: number
}

/** The figures of one value of the `groupBy` key. */
export interface UsageGroup {
  /** The key's value as text; null for entries without the key (or with a non-scalar value). */
  value: string | null
  periods: UsagePeriod[]
}

/** A usage report: every period of the window, zeros included, oldest first. */
export interface UsageReport {
  /** The account, or null for the whole tenant. */
  account: string | null
  interval: UsageInterval
  /** The window as widened to whole periods: ms since epoch, `[from, to)`. */
  from: number
  to: number
  groupBy: string | null
  periods: UsagePeriod[]
  /**
   * With `groupBy`: up to 50 values with the most spent (then by value), and the `null` group
   * when it has any figure. Absent without `groupBy`.
   */
  groups?: UsageGroup[]
  /**
   * With `groupBy`: the values beyond the 50 shown, summed (`count` of them); null when none.
   */
  other?: { count: number; periods: UsagePeriod[] } | null
}
