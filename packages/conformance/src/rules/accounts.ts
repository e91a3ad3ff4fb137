import { expect } from 'vitest'
import { ruleGroup, START, useMeter } from '../context.js'
import type { ConformanceOptions } from '../describe-store-conformance.js'
import { expectLedgerReplays, readLedger } from '../testing/ledger.js'

/** DESIGN §1 "Account" and "Balance": ids, creation on first use, isolation, per-account settings. */
export function accountRules(options: ConformanceOptions): void {
  ruleGroup(options, 'accounts', (test) => {
    const t = useMeter(options)

    test('account: an unknown account has a zero balance', async () => {
      const b = await t.balance('nobody')
      expect(b).toEqual({
        account: 'nobody',
        total: 0,
        held: 0,
        available: 0,
        debt: 0,
        low: false,
        buckets: [],
        asOf: START,
      })
      expect(await t.meter.ledger('nobody')).toEqual({ entries: [], nextCursor: null })
    })

    test('account: created on first use', async () => {
      const g = await t.meter.grant('fresh', 25)
      expect(g.account).toBe('fresh')
      expect(g.balance).toMatchObject({ account: 'fresh', total: 25, available: 25 })
      expect((await t.balance('fresh')).total).toBe(25)
      expect(await readLedger(t.meter, 'fresh')).toHaveLength(1)
    })

    test('account: ids are 1–200 characters of any UTF-8, never interpreted', async () => {
      // Names that would break a store interpolating them into SQL, keys or paths.
      const names = [
        "'; DROP TABLE accounts; --",
        'a:b',
        'a',
        'A',
        'a\nb',
        'tenant/other',
        '%_*?',
        '\\x00',
        'é'.repeat(200),
        // 200 code points, 400 UTF-16 units: the limit counts characters.
        '🙂'.repeat(200),
        ' ',
      ]
      for (const [i, name] of names.entries()) await t.meter.grant(name, i + 1)
      for (const [i, name] of names.entries()) {
        const b = await t.balance(name)
        expect(b.account).toBe(name)
        expect(b.total, name).toBe(i + 1)
        const entries = await readLedger(t.meter, name)
        expect(entries.map((e) => [e.account, e.delta])).toEqual([[name, i + 1]])
      }
    })

    test('account: empty, over 200 characters, lone surrogates and NUL are InvalidInputError', async () => {
      for (const bad of ['', 'x'.repeat(201), '🙂'.repeat(201), 'a\uD800b', 'a\u0000b']) {
        await expect(t.meter.grant(bad, 1)).rejects.toMatchObject({
          code: 'invalid_input',
          status: 400,
          field: 'account',
        })
        await expect(t.meter.balance(bad)).rejects.toMatchObject({ code: 'invalid_input' })
      }
    })

    test('accounts never interact: grants, debits and holds stay in their account', async () => {
      await t.meter.grant('alice', 100)
      await t.meter.grant('bob', 10)
      await expect(t.meter.debit('bob', 11)).rejects.toMatchObject({
        code: 'insufficient_credits',
        required: 11,
        available: 10,
      })
      const hold = await t.meter.reserve('alice', 60)
      await t.meter.debit('bob', 4)
      await hold.commit(50)
      expect(await t.balance('alice')).toMatchObject({ total: 50, held: 0, available: 50 })
      expect(await t.balance('bob')).toMatchObject({ total: 6, held: 0, available: 6 })
      expect((await readLedger(t.meter, 'bob')).map((e) => e.type)).toEqual(['debit', 'grant'])
      await expectLedgerReplays(t.meter, 'alice')
      await expectLedgerReplays(t.meter, 'bob')
    })

    test('balance: { account, total, held, available = total − held, debt, low, buckets, asOf }', async () => {
      const g1 = await t.meter.grant('a', 70, { priority: 10 })
      const g2 = await t.meter.grant('a', 30, {
        expiresAt: START + 60_000,
        category: 'promotional',
      })
      await t.meter.reserve('a', 80)
      t.advance(1_000)
      const b = await t.balance('a')
      expect(b).toEqual({
        account: 'a',
        total: 100,
        held: 80,
        available: 20,
        debt: 0,
        low: false,
        buckets: [
          { id: g1.id, remaining: 70, held: 70, expiresAt: null, priority: 10, category: 'paid' },
          {
            id: g2.id,
            remaining: 30,
            held: 10,
            expiresAt: START + 60_000,
            priority: 50,
            category: 'promotional',
          },
        ],
        asOf: START + 1_000,
      })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('balance: low is available ≤ threshold (inclusive), off without a threshold', async () => {
      const low = t.meterWith({ lowBalanceThreshold: 10 })
      await low.grant('a', 11)
      expect((await t.balance('a', low)).low).toBe(false)
      await low.debit('a', 1)
      expect((await t.balance('a', low)).low).toBe(true)
      // The default meter has no threshold: even an empty account is not "low".
      await t.meter.debit('a', 10)
      expect(await t.balance('a')).toMatchObject({ available: 0, low: false })
    })

    test('configure: per-account lowBalanceThreshold overrides the meter default; null returns to it', async () => {
      const m = t.meterWith({ lowBalanceThreshold: 50 })
      await m.grant('a', 40)
      await m.grant('b', 40)
      expect((await t.balance('a', m)).low).toBe(true)
      const set = await m.configure('a', { lowBalanceThreshold: 10 })
      expect(set).toMatchObject({ lowBalanceThreshold: 10, overdraftLimit: null })
      expect(set.balance).toMatchObject({ available: 40, low: false })
      expect((await t.balance('a', m)).low).toBe(false)
      // Another account keeps the meter default.
      expect((await t.balance('b', m)).low).toBe(true)
      const reset = await m.configure('a', { lowBalanceThreshold: null })
      expect(reset.lowBalanceThreshold).toBeNull()
      expect((await t.balance('a', m)).low).toBe(true)
    })

    test('configure: a per-account threshold applies where the meter has none', async () => {
      await t.meter.grant('a', 40)
      await t.meter.configure('a', { lowBalanceThreshold: 40 })
      expect((await t.balance('a')).low).toBe(true)
    })

    test('configure: per-account overdraftLimit overrides the meter default; null returns to it', async () => {
      const m = t.meterWith({ overage: 'overdraft', overdraftLimit: 40 })
      await m.configure('a', { overdraftLimit: 10 })
      await m.grant('a', 10)
      const first = await m.reserve('a', 10)
      expect(await first.commit(100)).toMatchObject({ charged: 20, debt: 10, shortfall: 80 })
      expect((await t.balance('a', m)).debt).toBe(10)
      const reset = await m.configure('a', { overdraftLimit: null })
      expect(reset).toMatchObject({ overdraftLimit: null, lowBalanceThreshold: null })
      const second = await m.reserve('a', 0)
      // Back on the meter's limit of 40: 30 more fit.
      expect(await second.commit(100)).toMatchObject({ charged: 30, debt: 30, shortfall: 70 })
      expect((await t.balance('a', m)).debt).toBe(40)
      await expectLedgerReplays(m, 'a')
    })
  })
}
