import type { CycleEvery } from '../types.js'

const DAY_MS = 86_400_000

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month + 1, 0)).getUTCDate()
}

/**
 * Start of period `index` of a cycle anchored at `anchor` (UTC). Monthly periods keep the
 * anchor's day of month, clamped to shorter months (Jan 31 → Feb 28/29 → Mar 31), and its
 * time of day, so periods never drift.
 */
export function periodStart(anchor: number, every: CycleEvery, index: number): number {
  if (every === 'day') return anchor + index * DAY_MS
  if (every === 'week') return anchor + index * 7 * DAY_MS
  if (every !== 'month') return anchor + index * every.days * DAY_MS
  const a = new Date(anchor)
  const months = a.getUTCMonth() + index
  const year = a.getUTCFullYear() + Math.floor(months / 12)
  const month = ((months % 12) + 12) % 12
  const day = Math.min(a.getUTCDate(), daysInMonth(year, month))
  return Date.UTC(
    year,
    month,
    day,
    a.getUTCHours(),
    a.getUTCMinutes(),
    a.getUTCSeconds(),
    a.getUTCMilliseconds(),
  )
}
