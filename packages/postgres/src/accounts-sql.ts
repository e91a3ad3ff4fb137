/**
 * `Store.accounts()` in SQL: a keyset page of one tenant's accounts. Total and held are summed
 * over the account's live buckets (a handful per account) and `updatedAt` is its newest ledger
 * entry, read through the primary keys at query time: the write path keeps no extra column, so
 * reserve and commit cost what they did. Sorting by `account` walks the accounts' primary key
 * and stops after the page; `balance` and `activity` sort the tenant's (filtered) accounts per
 * page, which is what an operator view of up to some hundred thousand accounts can afford
 * (docs/store.md, "Listing accounts").
 */

import type { AccountsPage, AccountsSort } from '@tollgate/core'
import { summaryOf } from '@tollgate/core/engine'
import {
  type AccountsOrder,
  type AccountsRequest,
  accountsOrder,
  decodeAccountsCursor,
  encodeAccountsCursor,
  sortValue,
} from '@tollgate/core/store'
import type { Statement } from './driver.js'
import { statement } from './statements.js'

/** A row of the accounts statement. */
export interface AccountRow {
  account: string
  total: unknown
  held: unknown
  debt: unknown
  threshold: unknown
  updated_at: unknown
}

/** The six statements, by `${sort} ${order}`: the direction cannot be a parameter. */
export type AccountsStatements = Record<`${AccountsSort} ${'asc' | 'desc'}`, Statement>

const SORT_COLUMN: Record<Exclude<AccountsSort, 'account'>, string> = {
  balance: 'total - held',
  activity: 'updated_at',
}

/**
 * The statement of one sort and order. Parameters: $1 tenant, $2 prefix, $3 low, $4 in debt,
 * $5 has holds (null: no filter), then for `account` $6 the cursor's account and $7 the row
 * limit, for the others $6 the cursor's value, $7 its account and $8 the row limit.
 */
function accountsSql(s: string, sort: AccountsSort, order: 'asc' | 'desc'): string {
  const cmp = order === 'asc' ? '>' : '<'
  const dir = order === 'asc' ? 'ASC' : 'DESC'
  const byId = sort === 'account'
  // By id, the cursor bounds the primary-key scan itself; else it bounds (value, account).
  const idAfter = byId ? `AND ($6::text IS NULL OR a.account ${cmp} $6::text)` : ''
  const keyAfter = byId
    ? ''
    : `AND ($7::text IS NULL OR (${SORT_COLUMN[sort]}, account) ${cmp} ($6::int8, $7::text))`
  const orderBy = byId ? `account ${dir}` : `${SORT_COLUMN[sort]} ${dir}, account ${dir}`
  const limit = byId ? '$7::int4' : '$8::int4'
  return `SELECT account, total, held, debt, threshold, updated_at FROM (
  SELECT a.account, a.debt, coalesce(b.total, 0)::int8 AS total, coalesce(b.held, 0)::int8 AS held,
    coalesce(a.low_balance_threshold, ts.low_balance_threshold) AS threshold,
    coalesce(l.at, a.created_at) AS updated_at
  FROM ${s}.accounts a
  LEFT JOIN ${s}.tenant_settings ts ON ts.tenant = a.tenant
  LEFT JOIN LATERAL (
    SELECT sum(k.remaining) AS total, sum(k.held) AS held FROM ${s}.buckets k
    WHERE k.tenant = a.tenant AND k.account = a.account
  ) b ON true
  LEFT JOIN LATERAL (
    SELECT e.at FROM ${s}.ledger e WHERE e.tenant = a.tenant AND e.account = a.account
    ORDER BY e.seq DESC LIMIT 1
  ) l ON true
  WHERE a.tenant = $1::text
    AND ($2::text IS NULL OR (a.account >= $2::text AND starts_with(a.account, $2::text)))
    ${idAfter}
) x
WHERE ($3::bool IS NULL OR coalesce(total - held <= threshold, false) = $3::bool)
  AND ($4::bool IS NULL OR (debt > 0) = $4::bool)
  AND ($5::bool IS NULL OR (held > 0) = $5::bool)
  ${keyAfter}
ORDER BY ${orderBy}
LIMIT ${limit}`
}

/** Every accounts statement of schema `s` (quoted). */
export function accountsStatements(s: string): AccountsStatements {
  const out = {} as AccountsStatements
  for (const sort of ['account', 'balance', 'activity'] as const) {
    for (const order of ['asc', 'desc'] as const) {
      out[`${sort} ${order}`] = statement(accountsSql(s, sort, order))
    }
  }
  return out
}

/** The statement and parameters of a request (one row more than the page, to see if more follow). */
export function accountsQuery(
  statements: AccountsStatements,
  tenant: string,
  request: AccountsRequest,
): { st: Statement; params: unknown[]; order: AccountsOrder } {
  const order = accountsOrder(request)
  const after =
    request.cursor === undefined || request.cursor === null
      ? null
      : decodeAccountsCursor(request.cursor, order)
  const filters = [
    tenant,
    request.prefix ?? null,
    request.low ?? null,
    request.inDebt ?? null,
    request.hasHolds ?? null,
  ]
  const params =
    order.sort === 'account'
      ? [...filters, after?.account ?? null, request.limit + 1]
      : [...filters, after?.value ?? null, after?.account ?? null, request.limit + 1]
  return { st: statements[`${order.sort} ${order.order}`], params, order }
}

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v))

/** The page of the rows an {@link accountsQuery} returned. */
export function accountsPage(
  rows: AccountRow[],
  request: AccountsRequest,
  order: AccountsOrder,
): AccountsPage {
  const more = rows.length > request.limit
  if (more) rows.length = request.limit
  const accounts = rows.map((r) =>
    summaryOf(
      r.account,
      num(r.total),
      num(r.held),
      num(r.debt),
      r.threshold === null ? null : num(r.threshold),
      num(r.updated_at),
    ),
  )
  const last = accounts[accounts.length - 1]
  return {
    accounts,
    nextCursor:
      more && last !== undefined
        ? encodeAccountsCursor(order, { value: sortValue(last, order.sort), account: last.account })
        : null,
  }
}
