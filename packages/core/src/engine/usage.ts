/**
 * Usage over time (docs/usage.md): which figure a ledger entry adds to, which metadata values it
 * is grouped under, and how a window is cut into UTC periods. A ledger question, so every store
 * answers `usage()` with these functions: the memory store over its ledger, the SQL store when
 * it maintains its hourly rollups.
 */
import { InvalidInputError } from '../errors.js'
import {
  type LedgerEntry,
  type Metadata,
  USAGE_INTERVALS,
  type UsageGroup,
  type UsageInterval,
  type UsagePeriod,
  type UsageReport,
  type UsageRequest,
} from '../types.js'

/** Periods one report may hold: a bound on the work and the answer. */
export const MAX_USAGE_PERIODS = 1000
/** Values of the `groupBy` key a report lists; the rest are summed in `other`. */
export const MAX_USAGE_GROUPS = 50
/** Metadata keys of one entry that usage can be grouped by (the first ones in key order). */
export const MAX_USAGE_DIMENSIONS = 8
/** Longest metadata key usage groups by (code points); longer keys are not grouped. */
export const MAX_USAGE_KEY_LENGTH = 64
/** Metadata values longer than this (code points, as text) are cut to it. */
export const MAX_USAGE_VALUE_LENGTH = 100

const HOUR_MS = 3_600_000
const DAY_MS = 86_400_000

/** What one ledger entry adds to the figures of its period. */
export interface UsageFigures {
  granted: number
  spent: number
  released: number
  expired: number
}

/**
 * The figures of one ledger entry. Per entry `granted − spent − expired = delta`, so the
 * figures of a window add up to the change of the net balance (`total − debt`) over it:
 * - grant, redeem, cycle_grant, adjust: `granted = delta` (signed; a grant that repays debt
 *   counts whole, as the net balance rises by all of it);
 * - debit: `spent = −delta`; commit: `spent = −delta` (what it charged, overage included) and
 *   `released` = the hold's part it did not charge;
 * - release (by call or hold TTL): `released` = the hold amount; expire: `expired = −delta`;
 * - hold (reserve, increase): nothing: held credits are not yet spent.
 * @example
 * usageOf({ type: 'commit', delta: -3, heldDelta: -5 }) // { granted: 0, spent: 3, released: 2, expired: 0 }
 */
export function usageOf(entry: Pick<LedgerEntry, 'type' | 'delta' | 'heldDelta'>): UsageFigures {
  const { type, delta, heldDelta } = entry
  switch (type) {
    case 'grant':
    case 'redeem':
    case 'cycle_grant':
    case 'adjust':
      return { granted: delta, spent: 0, released: 0, expired: 0 }
    case 'debit':
      return { granted: 0, spent: -delta, released: 0, expired: 0 }
    case 'commit':
      return {
        granted: 0,
        spent: -delta,
        released: Math.max(0, -heldDelta + delta),
        expired: 0,
      }
    case 'release':
      return { granted: 0, spent: 0, released: -heldDelta, expired: 0 }
    case 'expire':
      return { granted: 0, spent: 0, released: 0, expired: -delta }
    default:
      return { granted: 0, spent: 0, released: 0, expired: 0 }
  }
}

/**
 * The metadata values an entry is grouped under, as `[key, value]` pairs in key order: string,
 * finite number and boolean values only, as text cut to {@link MAX_USAGE_VALUE_LENGTH} code
 * points; keys of 1–{@link MAX_USAGE_KEY_LENGTH} code points; at most {@link MAX_USAGE_DIMENSIONS} of them (the
 * first in key order). Bounds what a store keeps per entry; an entry is in the `null` group of
 * every other key.
 * @example
 * usageDimensions({ feature: 'chat', tokens: 12, tags: ['a'] }) // [['feature', 'chat'], ['tokens', '12']]
 */
export function usageDimensions(metadata: Metadata): [string, string][] {
  const out: [string, string][] = []
  const keys = Object.keys(metadata).sort(compareCodePoints)
  for (const key of keys) {
    if (out.length === MAX_USAGE_DIMENSIONS) break
    if (key.length === 0 || codePoints(key) > MAX_USAGE_KEY_LENGTH) continue
    const text = dimensionValue(metadata[key])
    if (text !== null) out.push([key, text])
  }
  return out
}

/** The value of one key `usageDimensions` keeps, or null when it keeps none. */
function dimensionValue(value: unknown): string | null {
  let text: string
  if (typeof value === 'string') text = value
  else if (typeof value === 'boolean') text = String(value)
  // As JSON writes it (a stored ledger's metadata is JSON): the same text in every store.
  else if (typeof value === 'number' && Number.isFinite(value)) text = String(value)
  else return null
  // Cut by code points, as PostgreSQL's left() does: never half a surrogate pair.
  if (text.length <= MAX_USAGE_VALUE_LENGTH) return text
  return Array.from(text).slice(0, MAX_USAGE_VALUE_LENGTH).join('')
}

/** Length in code points (PostgreSQL's length() of the text). */
function codePoints(text: string): number {
  let n = 0
  for (const _ of text) n++
  return n
}

/**
 * Orders strings by code point, as PostgreSQL's `COLLATE "C"` orders UTF-8 text, so every
 * store ranks and sorts group values alike.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!
    const y = b.codePointAt(i)!
    if (x !== y) return x < y ? -1 : 1
    if (x > 0xffff) i++
  }
  return a.length - b.length
}

/** The UTC hour an entry at `at` is rolled up in (ms since epoch). */
export function usageHour(at: number): number {
  return Math.floor(at / HOUR_MS) * HOUR_MS
}

/** The start of the UTC period of `interval` holding `at`. */
export function usagePeriodStart(at: number, interval: UsageInterval): number {
  if (interval === 'hour') return usageHour(at)
  if (interval === 'day') return Math.floor(at / DAY_MS) * DAY_MS
  const d = new Date(at)
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1)
}

/** The start of the period after the one starting at `start`. */
export function nextUsagePeriod(start: number, interval: UsageInterval): number {
  if (interval === 'hour') return start + HOUR_MS
  if (interval === 'day') return start + DAY_MS
  const d = new Date(start)
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)
}

/** A usage request checked and widened to whole periods. */
export interface UsageWindow {
  /** null for the whole tenant. */
  account: string | null
  interval: UsageInterval
  from: number
  to: number
  groupBy: string | null
  /** Every period's start, oldest first; the last period ends at `to`. */
  starts: number[]
}

/**
 * Checks a usage request and widens it to whole periods; `InvalidInputError` naming the field
 * for a bad interval, time, window (`from` ≥ `to`, or more than {@link MAX_USAGE_PERIODS}
 * periods: named `from`) or `groupBy` key (1–{@link MAX_USAGE_KEY_LENGTH} units).
 * @example
 * usageWindow({ interval: 'day', from: Date.UTC(2026, 0, 1, 5), to: Date.UTC(2026, 0, 3) })
 * // → from 2026-01-01T00:00Z, to 2026-01-03T00:00Z, two periods
 */
export function usageWindow(request: UsageRequest): UsageWindow {
  const { interval, from, to, groupBy } = request
  const account = request.account ?? null
  if (!USAGE_INTERVALS.includes(interval)) {
    throw new InvalidInputError('interval', `must be one of ${USAGE_INTERVALS.join(', ')}`)
  }
  for (const [field, value] of [
    ['from', from],
    ['to', to],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new InvalidInputError(
        field,
        'must be a time in ms since epoch (a non-negative integer)',
      )
    }
  }
  if (from >= to) throw new InvalidInputError('from', 'must be before to')
  if (groupBy !== undefined && (groupBy.length === 0 || groupBy.length > MAX_USAGE_KEY_LENGTH)) {
    throw new InvalidInputError(
      'groupBy',
      `must be a metadata key of 1-${MAX_USAGE_KEY_LENGTH} characters`,
    )
  }
  const starts: number[] = []
  let start = usagePeriodStart(from, interval)
  const first = start
  while (start < to) {
    if (starts.length === MAX_USAGE_PERIODS) {
      throw new InvalidInputError(
        'from',
        `from..to spans more than ${MAX_USAGE_PERIODS} periods of a ${interval}: narrow the window or use a longer interval`,
      )
    }
    starts.push(start)
    start = nextUsagePeriod(start, interval)
  }
  return { account, interval, from: first, to: start, groupBy: groupBy ?? null, starts }
}

/** The index of the period of `window` holding `at`, or −1 when `at` is outside it. */
export function usagePeriodIndex(window: UsageWindow, at: number): number {
  if (at < window.from || at >= window.to) return -1
  const { starts } = window
  if (window.interval !== 'month') {
    return Math.floor((at - window.from) / (window.interval === 'hour' ? HOUR_MS : DAY_MS))
  }
  let lo = 0
  let hi = starts.length - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if (starts[mid]! <= at) lo = mid
    else hi = mid - 1
  }
  return lo
}

/** Zeroed periods for every start of the window. */
export function emptyUsagePeriods(window: UsageWindow): UsagePeriod[] {
  return window.starts.map((start) => ({ start, granted: 0, spent: 0, released: 0, expired: 0 }))
}

/** Adds `figures` to `period`. */
export function addUsage(period: UsageFigures, figures: UsageFigures): void {
  period.granted += figures.granted
  period.spent += figures.spent
  period.released += figures.released
  period.expired += figures.expired
}

function hasFigures(periods: readonly UsagePeriod[]): boolean {
  for (const p of periods) {
    if (p.granted !== 0 || p.spent !== 0 || p.released !== 0 || p.expired !== 0) return true
  }
  return false
}

function spentOf(periods: readonly UsagePeriod[]): number {
  let n = 0
  for (const p of periods) n += p.spent
  return n
}

/**
 * Folds per-value periods into a report's `groups` and `other`: the {@link MAX_USAGE_GROUPS}
 * values with the most spent over the window (ties by value, code point order) in that order,
 * then the `null` group (the totals less every value's figures) when it has any figure; the
 * rest summed in `other`. `values` holds every value that has figures in the window, or (a
 * store that ranks them itself) the top ones, with the rest already summed in `other`.
 */
export function usageGroups(
  window: UsageWindow,
  totals: readonly UsagePeriod[],
  values: ReadonlyMap<string, UsagePeriod[]>,
  other: { count: number; periods: UsagePeriod[] } | null = null,
): Pick<UsageReport, 'groups' | 'other'> {
  const ranked = [...values].map(([value, periods]) => ({
    value,
    periods,
    spent: spentOf(periods),
  }))
  ranked.sort((a, b) => b.spent - a.spent || compareCodePoints(a.value, b.value))
  const groups: UsageGroup[] = []
  const rest = other?.periods ?? emptyUsagePeriods(window)
  const none = totals.map((p) => ({ ...p }))
  if (other) for (let i = 0; i < none.length; i++) subtract(none[i]!, rest[i]!)
  let count = other?.count ?? 0
  for (const g of ranked) {
    for (let i = 0; i < none.length; i++) subtract(none[i]!, g.periods[i]!)
    if (groups.length < MAX_USAGE_GROUPS) groups.push({ value: g.value, periods: g.periods })
    else {
      count++
      for (let i = 0; i < rest.length; i++) addUsage(rest[i]!, g.periods[i]!)
    }
  }
  if (hasFigures(none)) groups.push({ value: null, periods: none })
  return { groups, other: count === 0 ? null : { count, periods: rest } }
}

function subtract(period: UsageFigures, figures: UsageFigures): void {
  period.granted -= figures.granted
  period.spent -= figures.spent
  period.released -= figures.released
  period.expired -= figures.expired
}

/**
 * The usage report of `entries` (one account's or a tenant's ledger, any order) over `window`:
 * what a store without rollups answers (the memory store).
 */
export function usageReportOf(
  window: UsageWindow,
  entries: Iterable<Pick<LedgerEntry, 'type' | 'delta' | 'heldDelta' | 'metadata' | 'at'>>,
): UsageReport {
  const periods = emptyUsagePeriods(window)
  const values = new Map<string, UsagePeriod[]>()
  for (const e of entries) {
    const i = usagePeriodIndex(window, e.at)
    if (i < 0) continue
    const figures = usageOf(e)
    addUsage(periods[i]!, figures)
    if (window.groupBy === null) continue
    for (const [key, value] of usageDimensions(e.metadata)) {
      if (key !== window.groupBy) continue
      let own = values.get(value)
      if (!own) {
        own = emptyUsagePeriods(window)
        values.set(value, own)
      }
      addUsage(own[i]!, figures)
    }
  }
  return usageReportFrom(window, periods, values)
}

/**
 * A report from the window's totals and, with `groupBy`, its per-value periods (and the sum of
 * the values a store left out of `values`, see {@link usageGroups}).
 */
export function usageReportFrom(
  window: UsageWindow,
  periods: UsagePeriod[],
  values: ReadonlyMap<string, UsagePeriod[]>,
  other: { count: number; periods: UsagePeriod[] } | null = null,
): UsageReport {
  const report: UsageReport = {
    account: window.account,
    interval: window.interval,
    from: window.from,
    to: window.to,
    groupBy: window.groupBy,
    periods,
  }
  if (window.groupBy !== null) Object.assign(report, usageGroups(window, periods, values, other))
  return report
}
