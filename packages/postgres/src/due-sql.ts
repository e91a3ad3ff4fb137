/**
 * The engine's rules of what is due ({@link DUE_RULES}), written as SQL conditions: the SQL
 * store's queries for "which holds to load" and "which accounts are due" are built from them,
 * so the decision is stated once, in the engine. `due-sql.test.ts` checks the queries against
 * the engine's functions on random rows.
 */
import { DUE_RULES, type DueFields } from '@tollgate/core/engine'

/** The column behind each field the rules read (an account's `nextCycleAt` is `cycle_next_at`). */
const COLUMNS: { readonly [R in keyof DueFields]: Readonly<Record<DueFields[R], string>> } = {
  hold: { status: 'status', expiresAt: 'expires_at' },
  bucket: { expired: 'expired', expiresAt: 'expires_at' },
  account: { nextCycleAt: 'cycle_next_at' },
}

/**
 * The `WHERE` condition (without the word) under which a row of `table` aliased `alias` is due
 * at the time in the SQL expression `now` (a bound parameter, e.g. `$2::int8`). Constants are
 * written as literals, not parameters, so the partial indexes (`WHERE status = 'pending'`,
 * `WHERE NOT expired …`) still match. A deadline that is NULL is never reached (`NULL <= x`
 * is not true), as the engine's `isDue(null, now)` is false.
 * @example dueCondition('hold', 'h', '$5::int8') // "h.status = 'pending' AND h.expires_at <= $5::int8"
 */
export function dueCondition(table: keyof DueFields, alias: string, now: string): string {
  const columns: Readonly<Record<string, string>> = COLUMNS[table]
  const parts: string[] = []
  for (const c of DUE_RULES[table]) {
    const column = `${alias}.${columns[c.field]}`
    if (!('equals' in c)) parts.push(`${column} <= ${now}`)
    else if (c.equals === true) parts.push(column)
    else if (c.equals === false) parts.push(`NOT ${column}`)
    else parts.push(`${column} = '${c.equals.replaceAll("'", "''")}'`)
  }
  return parts.join(' AND ')
}
