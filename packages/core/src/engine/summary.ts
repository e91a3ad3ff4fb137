import type { AccountSummary } from '../types.js'
import type { AccountRecord, BucketState } from './state.js'

/**
 * An account's figures for an operator list, from its stored state: total and held over its
 * live buckets, and `low` as the balance computes it, under the account's own threshold or else
 * `tenantLowBalanceThreshold` (the tenant's stored default; a meter's option plays no part, so
 * every reader of the list sees the same). No rule runs: expiries due since the last change
 * show once the account is next touched.
 * @example
 * accountSummary(state.record, state.buckets, settings.lowBalanceThreshold, lastEntryAt)
 */
export function accountSummary(
  record: AccountRecord,
  buckets: readonly BucketState[],
  tenantLowBalanceThreshold: number | null,
  updatedAt: number,
): AccountSummary {
  let total = 0
  let held = 0
  for (const b of buckets) {
    total += b.remaining
    held += b.held
  }
  return summaryOf(
    record.account,
    total,
    held,
    record.debt,
    record.lowBalanceThreshold ?? tenantLowBalanceThreshold,
    updatedAt,
  )
}

/**
 * The summary of figures a store read in one piece (a SQL row): `available` and `low` derived
 * by the same rule as {@link accountSummary}.
 * @example
 * summaryOf(row.account, total, held, debt, threshold, updatedAt)
 */
export function summaryOf(
  account: string,
  total: number,
  held: number,
  debt: number,
  threshold: number | null,
  updatedAt: number,
): AccountSummary {
  const available = total - held
  return {
    account,
    total,
    held,
    available,
    debt,
    low: threshold !== null && available <= threshold,
    updatedAt,
  }
}
