/**
 * What every store shares for `Store.accounts()`: the resolved order, the opaque keyset cursor
 * and, for stores that hold accounts in memory, the page itself. A cursor records its sort and
 * order, so a cursor from another listing is `InvalidInputError` rather than a wrong page.
 */
import { InvalidInputError } from '../errors.js'
import type { AccountSummary, AccountsPage, AccountsSort } from '../types.js'
import type { AccountsRequest } from './store.js'

/** A request's sort and order with the defaults applied. */
export interface AccountsOrder {
  sort: AccountsSort
  order: 'asc' | 'desc'
}

/** Where a page ends: the last account's sort value (0 for `account`) and id. */
export interface AccountsKey {
  value: number
  account: string
}

/**
 * The sort and order of a request: `account` ascends by default, `balance` and `activity`
 * descend (the largest balances and the latest changes first).
 * @example
 * accountsOrder({ limit: 10, sort: 'balance' }) // { sort: 'balance', order: 'desc' }
 */
export function accountsOrder(request: AccountsRequest): AccountsOrder {
  const sort = request.sort ?? 'account'
  return { sort, order: request.order ?? (sort === 'account' ? 'asc' : 'desc') }
}

/**
 * The value an account sorts by: `available` for `balance`, `updatedAt` for `activity`, 0 for
 * `account` (then only the id orders).
 * @example
 * sortValue(summary, 'balance') // summary.available
 */
export function sortValue(summary: AccountSummary, sort: AccountsSort): number {
  return sort === 'balance' ? summary.available : sort === 'activity' ? summary.updatedAt : 0
}

/**
 * An opaque cursor after `key` in this order.
 * @example
 * encodeAccountsCursor({ sort: 'account', order: 'asc' }, { value: 0, account: 'alice' })
 */
export function encodeAccountsCursor(order: AccountsOrder, key: AccountsKey): string {
  return Buffer.from(
    JSON.stringify(['a1', order.sort, order.order, key.value, key.account]),
  ).toString('base64url')
}

/**
 * Decodes {@link encodeAccountsCursor}; `InvalidInputError` (`cursor`) when it is not an
 * accounts cursor of this sort and order.
 * @example
 * decodeAccountsCursor(page.nextCursor, accountsOrder(request))
 */
export function decodeAccountsCursor(cursor: string, order: AccountsOrder): AccountsKey {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString())
  } catch {
    parsed = null
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length !== 5 ||
    parsed[0] !== 'a1' ||
    typeof parsed[3] !== 'number' ||
    !Number.isSafeInteger(parsed[3]) ||
    typeof parsed[4] !== 'string'
  ) {
    throw new InvalidInputError('cursor', 'is not an accounts cursor')
  }
  if (parsed[1] !== order.sort || parsed[2] !== order.order) {
    throw new InvalidInputError('cursor', `belongs to another sort (${String(parsed[1])})`)
  }
  return { value: parsed[3], account: parsed[4] }
}

/**
 * Compares account ids in byte order of their UTF-8 (code point order): the order of the SQL
 * store's "C" collation, so every store pages the same way.
 */
export function compareAccountIds(a: string, b: string): number {
  if (a === b) return 0
  return Buffer.compare(Buffer.from(a), Buffer.from(b))
}

/**
 * Whether an account passes a request's filters.
 * @example
 * matchesAccountsFilters(summary, { limit: 10, low: true })
 */
export function matchesAccountsFilters(s: AccountSummary, r: AccountsRequest): boolean {
  return (
    (r.prefix === undefined || s.account.startsWith(r.prefix)) &&
    (r.low === undefined || s.low === r.low) &&
    (r.inDebt === undefined || s.debt > 0 === r.inDebt) &&
    (r.hasHolds === undefined || s.held > 0 === r.hasHolds)
  )
}

/**
 * A page of `summaries` (one tenant's accounts, any order) for a request: filtered, ordered by
 * (sort value, account) in the request's direction, after the cursor. For stores that hold their
 * accounts in memory; O(n log n) in the tenant's accounts.
 * @example
 * pageAccounts(tenantSummaries, { limit: 100 })
 */
export function pageAccounts(
  summaries: Iterable<AccountSummary>,
  request: AccountsRequest,
): AccountsPage {
  const order = accountsOrder(request)
  const after =
    request.cursor === undefined || request.cursor === null
      ? null
      : decodeAccountsCursor(request.cursor, order)
  const sign = order.order === 'asc' ? 1 : -1
  const compare = (value: number, account: string, key: AccountsKey): number =>
    sign * (value !== key.value ? value - key.value : compareAccountIds(account, key.account))
  const rows: AccountSummary[] = []
  for (const s of summaries) {
    if (!matchesAccountsFilters(s, request)) continue
    if (after !== null && compare(sortValue(s, order.sort), s.account, after) <= 0) continue
    rows.push(s)
  }
  rows.sort((a, b) =>
    compare(sortValue(a, order.sort), a.account, {
      value: sortValue(b, order.sort),
      account: b.account,
    }),
  )
  const more = rows.length > request.limit
  if (more) rows.length = request.limit
  const last = rows[rows.length - 1]
  return {
    accounts: rows,
    nextCursor:
      more && last !== undefined
        ? encodeAccountsCursor(order, { value: sortValue(last, order.sort), account: last.account })
        : null,
  }
}
