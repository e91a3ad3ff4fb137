import type { AccountSummary, AccountsQuery, Meter } from '@tollgate/core'
import { expect } from 'vitest'
import { type MeterContext, MINUTE, ruleGroup, SECOND, START, useMeter } from '../context.js'
import type { ConformanceOptions } from '../describe-store-conformance.js'
import { readLedger } from '../testing/ledger.js'

/** Pages a walk may take before it is taken for a cursor that never ends. */
const MAX_PAGES = 1_000

/** Every account of a listing, page by page (`limit` each), and the pages' sizes. */
async function walk(
  m: Meter,
  query: Omit<AccountsQuery, 'cursor'>,
  between?: (page: number) => Promise<void>,
): Promise<AccountSummary[]> {
  const out: AccountSummary[] = []
  let cursor: string | null = null
  for (let page = 0; page < MAX_PAGES; page++) {
    const res = await m.accounts({ ...query, cursor })
    expect(res.accounts.length).toBeLessThanOrEqual(query.limit ?? 100)
    out.push(...res.accounts)
    if (res.nextCursor === null) return out
    expect(res.accounts.length).toBe(query.limit ?? 100)
    cursor = res.nextCursor
    await between?.(page)
  }
  throw new Error('accounts paging did not end')
}

const ids = (list: AccountSummary[]) => list.map((a) => a.account)
/** Byte order of UTF-8 (the order every store lists ids in). */
const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b))

/**
 * DESIGN §5 "The server lists accounts": `Store.accounts()` pages a tenant's accounts by
 * keyset cursor, filters with AND, sorts by id, balance or activity, and reports the figures
 * `balance()` reports. See docs/store.md, "Listing accounts".
 */
export function accountsListRules(options: ConformanceOptions): void {
  let t: MeterContext
  ruleGroup(
    options,
    'accounts list',
    (test) => {
      t = useMeter(options)
      const needs: ['accounts'] = ['accounts']

      /** Accounts with distinct figures: ids in no sorted order, one non-ASCII. */
      async function seed(m: Meter): Promise<string[]> {
        const names = ['carol', 'alice', 'bob', 'zoë', 'dave', 'al', 'alex', 'eve', 'b', 'ärger']
        for (const [i, name] of names.entries()) {
          await m.grant(name, 10 * (i + 1))
          t.advance(SECOND)
        }
        return names
      }

      test(
        'accounts list: paging by account walks every account once, in byte order',
        async () => {
          const names = await seed(t.meter)
          const sorted = [...names].sort(byBytes)
          expect(ids(await walk(t.meter, { limit: 3 }))).toEqual(sorted)
          expect(ids(await walk(t.meter, { limit: 4, order: 'desc' }))).toEqual(
            [...sorted].reverse(),
          )
          const all = await t.meter.accounts({ limit: 1000 })
          expect(all.nextCursor).toBeNull()
          expect(ids(all.accounts)).toEqual(sorted)
        },
        needs,
      )

      test(
        'accounts list: writes between pages neither skip nor repeat an account',
        async () => {
          const names = await seed(t.meter)
          const seen = await walk(t.meter, { limit: 2 }, async (page) => {
            // New accounts before and after the cursor, and changes to listed ones.
            await t.meter.grant(`a${page}`, 5)
            await t.meter.grant(`zz${page}`, 5)
            await t.meter.debit('alice', 1)
            await t.meter.grant('zoë', 1)
          })
          const list = ids(seen)
          expect(new Set(list).size).toBe(list.length)
          for (const name of names) expect(list).toContain(name)
          expect([...list].sort(byBytes)).toEqual(list)
        },
        needs,
      )

      test(
        'accounts list: figures equal balance(), updatedAt is the last ledger change',
        async () => {
          await t.meter.grant('a', 100)
          await t.meter.grant('b', 50, { expiresAt: START + 10 * MINUTE })
          t.advance(MINUTE)
          await t.meter.reserve('a', 30)
          await t.meter.debit('b', 5)
          await t.meter.configure('b', { lowBalanceThreshold: 45 })
          const h = await t.meter.reserve('c', 0)
          await h.commit(7, { overage: 'overdraft' })
          const page = await t.meter.accounts()
          expect(ids(page.accounts)).toEqual(['a', 'b', 'c'])
          for (const row of page.accounts) {
            const b = await t.balance(row.account)
            const [last] = await readLedger(t.meter, row.account)
            expect(row).toEqual({
              account: b.account,
              total: b.total,
              held: b.held,
              available: b.available,
              debt: b.debt,
              low: b.low,
              updatedAt: last!.at,
            })
          }
          expect(page.accounts.map((a) => [a.held, a.debt, a.low])).toEqual([
            [30, 0, false],
            [0, 0, true],
            [0, 7, false],
          ])
        },
        needs,
      )

      test(
        'accounts list: each filter, and filters together (AND)',
        async () => {
          await t.meter.grant('user:1', 100)
          await t.meter.grant('user:2', 10)
          await t.meter.grant('user:3', 100)
          await t.meter.grant('org:1', 5)
          await t.meter.configure('user:2', { lowBalanceThreshold: 20 })
          await t.meter.configure('org:1', { lowBalanceThreshold: 20 })
          await t.meter.reserve('user:3', 90)
          await t.meter.reserve('user:2', 1)
          const h = await t.meter.reserve('org:2', 0)
          await h.commit(3, { overage: 'overdraft' })
          const list = async (q: AccountsQuery) => ids((await t.meter.accounts(q)).accounts)
          expect(await list({ prefix: 'user:' })).toEqual(['user:1', 'user:2', 'user:3'])
          expect(await list({ prefix: 'org:1' })).toEqual(['org:1'])
          expect(await list({ prefix: 'nobody' })).toEqual([])
          expect(await list({ low: true })).toEqual(['org:1', 'user:2'])
          expect(await list({ low: false })).toEqual(['org:2', 'user:1', 'user:3'])
          expect(await list({ inDebt: true })).toEqual(['org:2'])
          expect(await list({ inDebt: false })).toEqual(['org:1', 'user:1', 'user:2', 'user:3'])
          expect(await list({ hasHolds: true })).toEqual(['user:2', 'user:3'])
          expect(await list({ hasHolds: false })).toEqual(['org:1', 'org:2', 'user:1'])
          expect(await list({ prefix: 'user:', low: true, hasHolds: true })).toEqual(['user:2'])
          expect(await list({ prefix: 'org:', low: true, inDebt: true })).toEqual([])
          // Filtered pages walk too.
          expect(ids(await walk(t.meter, { limit: 1, prefix: 'user:' }))).toEqual([
            'user:1',
            'user:2',
            'user:3',
          ])
        },
        needs,
      )

      test(
        "accounts list: low uses the tenant's stored default under each account's own",
        async () => {
          const store = t.store
          if (typeof store.putTenantSettings !== 'function') return
          await t.meter.grant('a', 10)
          await t.meter.grant('b', 100)
          await t.meter.grant('c', 100)
          await t.meter.configure('c', { lowBalanceThreshold: 500 })
          expect(ids((await t.meter.accounts({ low: true })).accounts)).toEqual(['c'])
          await store.putTenantSettings(t.tenant, { lowBalanceThreshold: 50 })
          expect(ids((await t.meter.accounts({ low: true })).accounts)).toEqual(['a', 'c'])
          // An account's own threshold wins over the tenant's default, in both directions.
          await t.meter.configure('a', { lowBalanceThreshold: 5 })
          expect(ids((await t.meter.accounts({ low: true })).accounts)).toEqual(['c'])
        },
        needs,
      )

      test(
        'accounts list: sorts by balance and activity with ties by account, pages agree',
        async () => {
          await t.meter.grant('d', 30)
          t.advance(SECOND)
          await t.meter.grant('b', 10)
          t.advance(SECOND)
          await t.meter.grant('c', 30)
          t.advance(SECOND)
          await t.meter.grant('a', 20)
          t.advance(SECOND)
          await t.meter.reserve('d', 5) // available 25, and d's last change
          const list = async (q: AccountsQuery) => ids((await t.meter.accounts(q)).accounts)
          expect(await list({ sort: 'balance' })).toEqual(['c', 'd', 'a', 'b'])
          expect(await list({ sort: 'balance', order: 'asc' })).toEqual(['b', 'a', 'd', 'c'])
          expect(await list({ sort: 'activity' })).toEqual(['d', 'a', 'c', 'b'])
          expect(await list({ sort: 'activity', order: 'asc' })).toEqual(['b', 'c', 'a', 'd'])
          // Ties: equal values order by account in the same direction.
          await t.meter.grant('e', 30)
          await t.meter.grant('f', 30)
          expect(await list({ sort: 'balance' })).toEqual(['f', 'e', 'c', 'd', 'a', 'b'])
          expect(await list({ sort: 'balance', order: 'asc' })).toEqual([
            'b',
            'a',
            'd',
            'c',
            'e',
            'f',
          ])
          for (const sort of ['balance', 'activity'] as const) {
            for (const order of ['asc', 'desc'] as const) {
              const whole = await list({ sort, order })
              expect(ids(await walk(t.meter, { sort, order, limit: 1 }))).toEqual(whole)
              expect(ids(await walk(t.meter, { sort, order, limit: 4 }))).toEqual(whole)
            }
          }
        },
        needs,
      )

      test(
        'accounts list: tenants never cross',
        async () => {
          const other = t.otherTenant()
          await t.meter.grant('alice', 100)
          await other.grant('alice', 7)
          await other.grant('bob', 1)
          expect((await t.meter.accounts()).accounts).toMatchObject([
            { account: 'alice', total: 100 },
          ])
          expect((await other.accounts()).accounts).toMatchObject([
            { account: 'alice', total: 7 },
            { account: 'bob', total: 1 },
          ])
          expect(await t.otherTenant().accounts()).toEqual({ accounts: [], nextCursor: null })
        },
        needs,
      )

      test(
        'accounts list: a cursor that is not one, or of another sort, is InvalidInputError',
        async () => {
          await seed(t.meter)
          const page = await t.meter.accounts({ limit: 2 })
          expect(page.nextCursor).not.toBeNull()
          await expect(t.meter.accounts({ cursor: 'nope' })).rejects.toMatchObject({
            code: 'invalid_input',
            field: 'cursor',
          })
          await expect(
            t.meter.accounts({ cursor: page.nextCursor, sort: 'balance' }),
          ).rejects.toMatchObject({ code: 'invalid_input', field: 'cursor' })
          await expect(t.meter.accounts({ limit: 0 })).rejects.toMatchObject({
            code: 'invalid_input',
            field: 'limit',
          })
          await expect(t.meter.accounts({ limit: 1001 })).rejects.toMatchObject({
            field: 'limit',
          })
        },
        needs,
      )
    },
    () => t.store,
  )
}
