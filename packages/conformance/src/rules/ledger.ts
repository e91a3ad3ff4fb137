import type { LedgerEntry } from '@tollgate/core'
import { expect } from 'vitest'
import { HOUR, ruleGroup, SECOND, START, useMeter } from '../context.js'
import type { ConformanceOptions } from '../describe-store-conformance.js'
import { expectLedgerReplays, ledgerOldestFirst, readLedger } from '../testing/ledger.js'

const ENTRY_KEYS = new Set([
  'id',
  'account',
  'type',
  'delta',
  'heldDelta',
  'debtDelta',
  'balanceAfter',
  'holdId',
  'grantId',
  'redemptionId',
  'cycleId',
  'idempotencyKey',
  'reason',
  'metadata',
  'at',
])

/** DESIGN §1 "Ledger": entry shape, order, paging, filters and the replay invariant. */
export function ledgerRules(options: ConformanceOptions): void {
  ruleGroup(options, 'ledger', (test) => {
    const t = useMeter(options)

    /** Writes `n` debits of 1 (one entry each) after a grant that covers them. */
    async function entries(account: string, n: number): Promise<void> {
      await t.meter.grant(account, n)
      for (let i = 0; i < n; i++) {
        await t.meter.debit(account, 1, { metadata: { i } })
        t.advance(SECOND)
      }
    }

    test('ledger: entries are { id, account, type, delta, heldDelta, debtDelta, balanceAfter, metadata, at, … }', async () => {
      const g = await t.meter.grant('a', 100, {
        metadata: { order: 'o-1' },
        idempotencyKey: 'grant-o-1',
      })
      t.advance(SECOND)
      const h = await t.meter.reserve('a', 10)
      const page = await t.meter.ledger('a')
      expect(page.nextCursor).toBeNull()
      const [hold, grant] = page.entries as [LedgerEntry, LedgerEntry]
      expect(grant).toEqual({
        id: grant.id,
        account: 'a',
        type: 'grant',
        delta: 100,
        heldDelta: 0,
        debtDelta: 0,
        balanceAfter: 100,
        grantId: g.id,
        idempotencyKey: 'grant-o-1',
        metadata: { order: 'o-1' },
        at: START,
      })
      expect(typeof grant.id).toBe('string')
      expect(hold).toEqual({
        id: hold.id,
        account: 'a',
        type: 'hold',
        delta: 0,
        heldDelta: 10,
        debtDelta: 0,
        balanceAfter: 100,
        holdId: h.id,
        metadata: {},
        at: START + SECOND,
      })
      expect(hold.id).not.toBe(grant.id)
      for (const e of page.entries) {
        for (const key of Object.keys(e)) expect(ENTRY_KEYS.has(key), key).toBe(true)
      }
    })

    test('ledger: newest first', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 10)
      await h.commit(5)
      await t.meter.debit('a', 1)
      const h2 = await t.meter.reserve('a', 3)
      await h2.release()
      const types = (await t.meter.ledger('a')).entries.map((e) => e.type)
      expect(types).toEqual(['release', 'hold', 'debit', 'commit', 'hold', 'grant'])
    })

    test('ledger: an unknown account has an empty ledger', async () => {
      await t.meter.grant('a', 1)
      expect(await t.meter.ledger('b')).toEqual({ entries: [], nextCursor: null })
    })

    test('ledger: limit is 1–1000 (1001 is InvalidInputError); default 100', async () => {
      await entries('a', 150)
      await expect(t.meter.ledger('a', { limit: 1001 })).rejects.toMatchObject({
        code: 'invalid_input',
        status: 400,
      })
      await expect(t.meter.ledger('a', { limit: 0 })).rejects.toMatchObject({
        code: 'invalid_input',
      })
      await expect(t.meter.ledger('a', { limit: 2.5 })).rejects.toMatchObject({
        code: 'invalid_input',
      })
      expect((await t.meter.ledger('a', { limit: 1000 })).entries).toHaveLength(151)
      const page = await t.meter.ledger('a')
      expect(page.entries).toHaveLength(100)
      expect(page.nextCursor).not.toBeNull()
      expect((await t.meter.ledger('a', { limit: 1 })).entries).toHaveLength(1)
    })

    test('ledger: cursor paging returns every entry exactly once across pages', async () => {
      await entries('a', 22)
      const all = (await t.meter.ledger('a', { limit: 1000 })).entries
      expect(all).toHaveLength(23)
      for (const limit of [1, 5, 7, 23, 24]) {
        const seen: LedgerEntry[] = []
        let cursor: string | undefined
        for (let i = 0; i < 100; i++) {
          const page = await t.meter.ledger(
            'a',
            cursor === undefined ? { limit } : { limit, cursor },
          )
          expect(page.entries.length).toBeLessThanOrEqual(limit)
          seen.push(...page.entries)
          if (page.nextCursor === null) break
          cursor = page.nextCursor
        }
        expect(
          seen.map((e) => e.id),
          `limit ${limit}`,
        ).toEqual(all.map((e) => e.id))
      }
    })

    test('ledger: paging is stable while new entries are written', async () => {
      await entries('a', 9)
      const first = await t.meter.ledger('a', { limit: 4 })
      // Newer entries do not shift the pages that follow.
      await t.meter.grant('a', 5)
      await t.meter.debit('a', 2)
      const rest = await readLedger(t.meter, 'a')
      const older: LedgerEntry[] = []
      let cursor = first.nextCursor
      for (let i = 0; cursor !== null && i < 100; i++) {
        const page = await t.meter.ledger('a', { limit: 4, cursor })
        older.push(...page.entries)
        cursor = page.nextCursor
      }
      expect([...first.entries, ...older].map((e) => e.id)).toEqual(rest.slice(2).map((e) => e.id))
    })

    test('ledger: a malformed cursor is InvalidInputError', async () => {
      await entries('a', 3)
      await expect(t.meter.ledger('a', { cursor: 'not-a-cursor' })).rejects.toMatchObject({
        code: 'invalid_input',
      })
    })

    test('ledger: filter by types', async () => {
      await t.meter.grant('a', 100)
      for (let i = 0; i < 6; i++) {
        await t.meter.debit('a', 1)
        const h = await t.meter.reserve('a', 2)
        await h.commit(1)
      }
      const debits = await t.meter.ledger('a', { types: ['debit'] })
      expect(debits.entries).toHaveLength(6)
      expect(debits.entries.every((e) => e.type === 'debit')).toBe(true)
      const some = await readLedger(t.meter, 'a', { types: ['grant', 'commit'] })
      expect(some.map((e) => e.type)).toEqual([...Array(6).fill('commit'), 'grant'])
      // Filtered paging still returns every matching entry once.
      const paged: string[] = []
      let cursor: string | undefined
      for (let i = 0; i < 20; i++) {
        const page = await t.meter.ledger('a', {
          types: ['hold'],
          limit: 4,
          ...(cursor === undefined ? {} : { cursor }),
        })
        paged.push(...page.entries.map((e) => e.type))
        if (page.nextCursor === null) break
        cursor = page.nextCursor
      }
      expect(paged).toEqual(Array(6).fill('hold'))
      await expect(
        t.meter.ledger('a', { types: ['withdrawal' as unknown as 'debit'] }),
      ).rejects.toMatchObject({ code: 'invalid_input' })
    })

    test('ledger: from is inclusive and to exclusive', async () => {
      for (let i = 0; i < 4; i++) {
        await t.meter.grant('a', 10 + i)
        t.advance(HOUR)
      }
      const mid = await t.meter.ledger('a', { from: START + HOUR, to: START + 3 * HOUR })
      expect(mid.entries.map((e) => [e.delta, e.at])).toEqual([
        [12, START + 2 * HOUR],
        [11, START + HOUR],
      ])
      const since = await t.meter.ledger('a', { from: START + 3 * HOUR })
      expect(since.entries.map((e) => e.delta)).toEqual([13])
      const until = await t.meter.ledger('a', { to: START + HOUR })
      expect(until.entries.map((e) => e.delta)).toEqual([10])
    })

    test('ledger: accounts have separate ledgers', async () => {
      await t.meter.grant('a', 1)
      await t.meter.grant('b', 2)
      await t.meter.debit('b', 1)
      expect((await readLedger(t.meter, 'a')).map((e) => [e.account, e.delta])).toEqual([['a', 1]])
      expect((await readLedger(t.meter, 'b')).map((e) => [e.account, e.delta])).toEqual([
        ['b', -1],
        ['b', 2],
      ])
    })

    test('ledger: replaying entries oldest first reproduces the balance', async () => {
      // Every kind of entry, including debt, expiry with a held part and a TTL release.
      const m = t.meterWith({ overage: 'overdraft', overdraftLimit: 25 })
      await m.grant('a', 100, { expiresAt: START + HOUR, priority: 1 })
      await m.grant('a', 40, { category: 'promotional' })
      await m.debit('a', 15)
      const long = await m.reserve('a', 50, { ttlMs: 2 * HOUR })
      const short = await m.reserve('a', 20, { ttlMs: 10 * SECOND })
      await m.adjust('a', -5)
      t.advance(HOUR)
      await expectLedgerReplays(m, 'a')
      expect(await long.commit(45)).toMatchObject({ charged: 45 })
      await expect(short.commit()).rejects.toMatchObject({ code: 'hold_expired' })
      const over = await m.reserve('a', 10)
      await over.commit(80)
      await expectLedgerReplays(m, 'a')
      await m.grant('a', 10)
      await m.startCycle('a', { amount: 30, every: 'day' })
      const { codes } = await m.createCodes({ credits: 7, count: 1 })
      await m.redeem('a', codes[0]!)
      t.advance(3 * 24 * HOUR)
      await expectLedgerReplays(m, 'a')
      const types = new Set((await ledgerOldestFirst(m, 'a')).map((e) => e.type))
      expect([...types].sort()).toEqual([
        'adjust',
        'commit',
        'cycle_grant',
        'debit',
        'expire',
        'grant',
        'hold',
        'redeem',
        'release',
      ])
    })

    test('ledger: zero deltas are 0, never -0 (stores must agree)', async () => {
      // A JSON or SQL store turns -0 into 0; the memory store must hand out the same numbers.
      await t.meter.grant('a', 10)
      await t.meter.debit('a', 0)
      const h = await t.meter.reserve('a', 0)
      await h.commit()
      for (const e of await readLedger(t.meter, 'a')) {
        for (const field of ['delta', 'heldDelta', 'debtDelta', 'balanceAfter'] as const) {
          expect(Object.is(e[field], -0), `${e.type}.${field} is -0`).toBe(false)
        }
      }
    })

    test('ledger: balanceAfter is the net balance total − debt after each entry', async () => {
      const m = t.meterWith({ overage: 'overdraft' })
      await m.grant('a', 10)
      const h = await m.reserve('a', 10)
      await h.commit(30)
      await m.grant('a', 5)
      const after = (await ledgerOldestFirst(m, 'a')).map((e) => e.balanceAfter)
      expect(after).toEqual([10, 10, -20, -15])
      expect(await t.balance('a', m)).toMatchObject({ total: 0, debt: 15 })
    })
  })
}
