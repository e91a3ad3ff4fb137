/**
 * What is due: when a pending hold, a bucket or a cycle period needs the engine's lazy
 * housekeeping, which accounts `sweep()` must touch, and which holds a store loads for an
 * operation. Stated once here; the engine's housekeeping, the memory store, the SQL store and
 * the lease manager all decide with these functions.
 *
 * A store that filters in a query language (SQL) cannot call them, so the same rules are also
 * given as data, {@link DUE_RULES}: such a store builds its `WHERE` clauses from the rules, and
 * its tests check the query against these functions (`matchesDueRule` is the rules' meaning).
 */
import { periodStart } from './periods.js'
import type { AccountRecord, BucketState, HoldState } from './state.js'

/**
 * Whether a deadline at `at` is reached at `now`: `at ≤ now` (a hold or bucket is expired at
 * its `expiresAt` itself, a period starts at its start). `null` (no deadline) never is.
 * @example isDue(hold.expiresAt, now) // the hold's TTL has run out
 */
export function isDue(at: number | null, now: number): boolean {
  return at !== null && at <= now
}

/** A pending hold past its TTL: the engine releases it at `expiresAt`. */
export function isHoldDue(hold: Pick<HoldState, 'status' | 'expiresAt'>, now: number): boolean {
  return hold.status === 'pending' && isDue(hold.expiresAt, now)
}

/** A bucket past its expiry whose free remainder has not left the balance yet. */
export function isBucketDue(
  bucket: Pick<BucketState, 'expired' | 'expiresAt'>,
  now: number,
): boolean {
  return !bucket.expired && isDue(bucket.expiresAt, now)
}

/** When the account's cycle next grants (its next period's start); null without an active cycle. */
export function nextCycleAt(record: Pick<AccountRecord, 'cycle'>): number | null {
  const c = record.cycle
  return c?.active ? periodStart(c.anchor, c.every, c.period + 1) : null
}

/** An active cycle whose next period has started and is not materialised yet. */
export function isCycleDue(record: Pick<AccountRecord, 'cycle'>, now: number): boolean {
  return isDue(nextCycleAt(record), now)
}

/**
 * Whether `sweep()` must touch the account at `now`: a pending hold past its TTL, a bucket past
 * its expiry, or a cycle period to materialise. `holds` may be any superset of the account's
 * pending holds (resolved ones are ignored).
 */
export function isAccountDue(
  record: Pick<AccountRecord, 'cycle'>,
  buckets: Iterable<Pick<BucketState, 'expired' | 'expiresAt'>>,
  holds: Iterable<Pick<HoldState, 'status' | 'expiresAt'>>,
  now: number,
): boolean {
  for (const h of holds) if (isHoldDue(h, now)) return true
  for (const b of buckets) if (isBucketDue(b, now)) return true
  return isCycleDue(record, now)
}

/**
 * The holds a store loads for an operation at `now`: the hold it names (whatever its status),
 * then every due pending hold among `candidates` (the account's holds the store knows of), so
 * that lazy TTL expiry sees them. Other holds need not be loaded.
 */
export function holdsToLoad(
  named: HoldState | undefined,
  candidates: Iterable<HoldState>,
  now: number,
): HoldState[] {
  const out: HoldState[] = named ? [named] : []
  for (const h of candidates) if (h !== named && isHoldDue(h, now)) out.push(h)
  return out
}

/** One condition of a {@link DueRule}: a field equal to a constant, or a deadline reached. */
export type DueCondition<F extends string> =
  | { readonly field: F; readonly equals: string | boolean }
  | { readonly field: F; readonly dueAt: 'now' }

/** A conjunction of conditions over one row (a hold, a bucket, an account). */
export type DueRule<F extends string> = readonly DueCondition<F>[]

/** The fields the rules read: those of a hold, of a bucket, and an account's {@link nextCycleAt}. */
export interface DueFields {
  hold: 'status' | 'expiresAt'
  bucket: 'expired' | 'expiresAt'
  account: 'nextCycleAt'
}

/**
 * {@link isHoldDue}, {@link isBucketDue} and {@link isCycleDue} as data, for stores that filter
 * in a query language: a row is due when every condition holds, `dueAt: 'now'` meaning
 * {@link isDue} (a missing deadline, SQL `NULL`, never is). An account's `nextCycleAt` is the
 * value of {@link nextCycleAt}, which such a store keeps beside the account.
 * A test checks these rules against the functions on random rows.
 */
export const DUE_RULES: {
  readonly hold: DueRule<DueFields['hold']>
  readonly bucket: DueRule<DueFields['bucket']>
  readonly account: DueRule<DueFields['account']>
} = Object.freeze({
  hold: Object.freeze([
    { field: 'status', equals: 'pending' },
    { field: 'expiresAt', dueAt: 'now' },
  ] as const),
  bucket: Object.freeze([
    { field: 'expired', equals: false },
    { field: 'expiresAt', dueAt: 'now' },
  ] as const),
  account: Object.freeze([{ field: 'nextCycleAt', dueAt: 'now' }] as const),
})

/** What a {@link DueRule} means, evaluated on one row at `now`. */
export function matchesDueRule<F extends string>(
  rule: DueRule<F>,
  row: { readonly [K in F]: unknown },
  now: number,
): boolean {
  for (const c of rule) {
    const value = row[c.field]
    if ('equals' in c) {
      if (value !== c.equals) return false
    } else if (typeof value !== 'number' || !isDue(value, now)) return false
  }
  return true
}
