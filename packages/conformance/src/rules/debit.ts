import { expect } from 'vitest'
import { ruleGroup, START, useMeter } from '../context.js'
import type { ConformanceOptions } from '../describe-store-conformance.js'
import { expectLedgerReplays, readLedger } from '../testing/ledger.js'

/** DESIGN §1 "Debit", and `adjust` (the ledger's `adjust` entry type). */
export function debitRules(options: ConformanceOptions): void {
  ruleGroup(options, 'debit', (test) => {
    const t = useMeter(options)

    test('debit: spends immediately in burn order and returns the allocations', async () => {
      const first = await t.meter.grant('a', 30, { priority: 10 })
      const second = await t.meter.grant('a', 100)
      const d = await t.meter.debit('a', 50, { metadata: { route: '/x' } })
      expect(d).toMatchObject({
        account: 'a',
        amount: 50,
        allocations: [
          { bucketId: first.id, amount: 30 },
          { bucketId: second.id, amount: 20 },
        ],
        replayed: false,
      })
      expect(d.balance).toMatchObject({ total: 80, held: 0, available: 80 })
      // The emptied bucket leaves the balance.
      expect(d.balance.buckets.map((b) => [b.id, b.remaining])).toEqual([[second.id, 80]])
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({
        type: 'debit',
        delta: -50,
        heldDelta: 0,
        debtDelta: 0,
        balanceAfter: 80,
        metadata: { route: '/x' },
        at: START,
      })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('debit: all or nothing — InsufficientCreditsError { required, available } and nothing changes', async () => {
      await t.meter.grant('a', 30, { priority: 1 })
      await t.meter.grant('a', 20)
      await t.meter.reserve('a', 20)
      const before = await t.balance('a')
      const ledgerBefore = await readLedger(t.meter, 'a')
      await expect(t.meter.debit('a', 31)).rejects.toMatchObject({
        code: 'insufficient_credits',
        status: 402,
        account: 'a',
        required: 31,
        available: 30,
      })
      expect(await t.balance('a')).toEqual(before)
      expect(await readLedger(t.meter, 'a')).toEqual(ledgerBefore)
    })

    test('debit: the exact available amount empties the account', async () => {
      await t.meter.grant('a', 30)
      await t.meter.grant('a', 12)
      const d = await t.meter.debit('a', 42)
      expect(d.balance).toMatchObject({ total: 0, available: 0, buckets: [] })
      await expect(t.meter.debit('a', 1)).rejects.toMatchObject({
        code: 'insufficient_credits',
        required: 1,
        available: 0,
      })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('debit: never takes held credits', async () => {
      await t.meter.grant('a', 50)
      const h = await t.meter.reserve('a', 40)
      await expect(t.meter.debit('a', 11)).rejects.toMatchObject({
        code: 'insufficient_credits',
        required: 11,
        available: 10,
      })
      await t.meter.debit('a', 10)
      expect(await t.balance('a')).toMatchObject({ total: 40, held: 40, available: 0 })
      expect(await h.commit()).toMatchObject({ charged: 40, shortfall: 0 })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('debit: zero is allowed and writes an entry with delta 0', async () => {
      const d = await t.meter.debit('a', 0)
      expect(d).toMatchObject({ amount: 0, allocations: [] })
      const entries = await readLedger(t.meter, 'a')
      expect(entries).toHaveLength(1)
      expect(entries[0]).toMatchObject({ type: 'debit', delta: 0, balanceAfter: 0 })
    })

    test('debit: amount must be a non-negative safe integer', async () => {
      await t.meter.grant('a', 10)
      for (const bad of [-1, 0.5, Number.NaN, 2 ** 53]) {
        await expect(t.meter.debit('a', bad)).rejects.toMatchObject({
          code: 'invalid_input',
          status: 400,
          field: 'amount',
        })
      }
      expect((await t.balance('a')).total).toBe(10)
      expect(await readLedger(t.meter, 'a')).toHaveLength(1)
    })

    test('adjust: a positive delta adds a non-expiring bucket with an adjust entry', async () => {
      const r = await t.meter.adjust('a', 25, { reason: 'support refund' })
      expect(r.balance).toMatchObject({ total: 25, available: 25 })
      expect(r.balance.buckets).toMatchObject([{ remaining: 25, expiresAt: null }])
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({ type: 'adjust', delta: 25, debtDelta: 0, balanceAfter: 25 })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('adjust: a negative delta removes available credits, all or nothing', async () => {
      await t.meter.grant('a', 30)
      await t.meter.reserve('a', 10)
      await expect(t.meter.adjust('a', -21)).rejects.toMatchObject({
        code: 'insufficient_credits',
        required: 21,
        available: 20,
      })
      const r = await t.meter.adjust('a', -20)
      expect(r.balance).toMatchObject({ total: 10, held: 10, available: 0 })
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({ type: 'adjust', delta: -20, balanceAfter: 10 })
      await expectLedgerReplays(t.meter, 'a')
    })
  })
}
