import { expect } from 'vitest'
import { ruleGroup, useMeter } from '../context.js'
import type { ConformanceOptions } from '../describe-store-conformance.js'
import { expectLedgerReplays, readLedger } from '../testing/ledger.js'

/** DESIGN §1 "Hold": commit with `actual > amount` under the reject, clamp and overdraft policies. */
export function overageRules(options: ConformanceOptions): void {
  ruleGroup(options, 'overage', (test) => {
    const t = useMeter(options)

    test('overage reject: OverageError (409) and the hold untouched, still committable', async () => {
      const m = t.meterWith({ overage: 'reject' })
      await m.grant('a', 100)
      const h = await m.reserve('a', 30)
      const ledgerBefore = await readLedger(m, 'a')
      await expect(h.commit(31)).rejects.toMatchObject({ code: 'overage', status: 409 })
      await expect(m.commit(h.id, 31)).rejects.toMatchObject({
        code: 'overage',
        holdId: h.id,
        held: 30,
        actual: 31,
      })
      expect(await t.balance('a', m)).toMatchObject({ total: 100, held: 30, available: 70 })
      expect(await readLedger(m, 'a')).toEqual(ledgerBefore)
      expect(await m.commit(h.id, 30)).toMatchObject({ charged: 30, shortfall: 0 })
      expect(await t.balance('a', m)).toMatchObject({ total: 70, held: 0 })
      await expectLedgerReplays(m, 'a')
    })

    test('overage reject: the hold can still be released after an OverageError', async () => {
      const m = t.meterWith({ overage: 'reject' })
      await m.grant('a', 100)
      const h = await m.reserve('a', 30)
      await expect(h.commit(1_000)).rejects.toMatchObject({ code: 'overage' })
      expect(await h.release()).toMatchObject({ freed: 30 })
      expect(await t.balance('a', m)).toMatchObject({ total: 100, held: 0 })
    })

    test('overage: commit(actual, { overage }) overrides the meter policy', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30)
      await expect(h.commit(40, { overage: 'reject' })).rejects.toMatchObject({ code: 'overage' })
      const reject = t.meterWith({ overage: 'reject' })
      expect(await reject.commit(h.id, 40, { overage: 'clamp' })).toMatchObject({
        charged: 40,
        shortfall: 0,
      })
      const h2 = await t.meter.reserve('a', 10)
      expect(await h2.commit(100, { overage: 'overdraft' })).toMatchObject({
        charged: 100,
        debt: 40,
        shortfall: 0,
      })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('overage clamp (default): charges the hold plus what is available and reports the shortfall', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30)
      const c = await h.commit(150)
      expect(c).toMatchObject({ charged: 100, shortfall: 50, debt: 0, freed: 0 })
      expect(c.balance).toMatchObject({ total: 0, held: 0, available: 0, debt: 0 })
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({
        type: 'commit',
        delta: -100,
        heldDelta: -30,
        debtDelta: 0,
        balanceAfter: 0,
      })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('overage clamp: above the hold but within the available balance charges actual in full', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30)
      expect(await h.commit(50)).toMatchObject({ charged: 50, shortfall: 0, debt: 0 })
      expect(await t.balance('a')).toMatchObject({ total: 50, held: 0 })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('overage clamp: the extra is taken in burn order', async () => {
      const first = await t.meter.grant('a', 30, { priority: 10 })
      const second = await t.meter.grant('a', 50)
      const h = await t.meter.reserve('a', 20)
      expect(h.allocations).toEqual([{ bucketId: first.id, amount: 20 }])
      await h.commit(40)
      const b = await t.balance('a')
      expect(b.buckets.map((x) => [x.id, x.remaining])).toEqual([[second.id, 40]])
      await expectLedgerReplays(t.meter, 'a')
    })

    test('overage clamp: credits held by other holds are not taken', async () => {
      await t.meter.grant('a', 100)
      const h1 = await t.meter.reserve('a', 30)
      const h2 = await t.meter.reserve('a', 50)
      expect(await h1.commit(60)).toMatchObject({ charged: 50, shortfall: 10 })
      expect(await t.balance('a')).toMatchObject({ total: 50, held: 50, available: 0 })
      expect(await h2.commit()).toMatchObject({ charged: 50, shortfall: 0 })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('overage clamp: commit never throws for insufficiency once the work is done', async () => {
      await t.meter.grant('a', 5)
      const h = await t.meter.reserve('a', 5)
      expect(await h.commit(1_000_000)).toMatchObject({ charged: 5, shortfall: 999_995, debt: 0 })
      expect(await t.balance('a')).toMatchObject({ total: 0, debt: 0 })
    })

    test('overdraft: the excess becomes debt up to the limit, beyond it as clamp', async () => {
      const m = t.meterWith({ overage: 'overdraft', overdraftLimit: 40 })
      await m.grant('a', 100)
      const h = await m.reserve('a', 30)
      const c = await h.commit(150)
      // 30 held + 70 available + 40 debt; the last 10 are beyond the limit.
      expect(c).toMatchObject({ charged: 140, debt: 40, shortfall: 10, freed: 0 })
      expect(c.balance).toMatchObject({ total: 0, held: 0, available: 0, debt: 40 })
      const [entry] = await readLedger(m, 'a')
      expect(entry).toMatchObject({
        type: 'commit',
        delta: -140,
        heldDelta: -30,
        debtDelta: 40,
        balanceAfter: -40,
      })
      await expectLedgerReplays(m, 'a')
    })

    test('overdraft: the excess is taken from the available balance before it becomes debt', async () => {
      const m = t.meterWith({ overage: 'overdraft' })
      await m.grant('a', 100)
      const h = await m.reserve('a', 30)
      expect(await h.commit(90)).toMatchObject({ charged: 90, debt: 0, shortfall: 0 })
      expect(await t.balance('a', m)).toMatchObject({ total: 10, debt: 0 })
    })

    test('overdraft: without a limit the whole excess becomes debt', async () => {
      const m = t.meterWith({ overage: 'overdraft' })
      await m.grant('a', 100)
      const h = await m.reserve('a', 30)
      expect(await h.commit(1_150)).toMatchObject({ charged: 1_150, debt: 1_050, shortfall: 0 })
      expect(await t.balance('a', m)).toMatchObject({ total: 0, debt: 1_050, available: 0 })
      await expectLedgerReplays(m, 'a')
    })

    test('overdraft: debt accumulates across commits up to the limit', async () => {
      const m = t.meterWith({ overage: 'overdraft', overdraftLimit: 40 })
      await m.grant('a', 10)
      const h1 = await m.reserve('a', 10)
      expect(await h1.commit(40)).toMatchObject({ charged: 40, debt: 30, shortfall: 0 })
      const h2 = await m.reserve('a', 0)
      expect(await h2.commit(20)).toMatchObject({ charged: 10, debt: 10, shortfall: 10 })
      const h3 = await m.reserve('a', 0)
      expect(await h3.commit(5)).toMatchObject({ charged: 0, debt: 0, shortfall: 5 })
      expect(await t.balance('a', m)).toMatchObject({ total: 0, debt: 40 })
      await expectLedgerReplays(m, 'a')
    })

    test('overdraft: a per-account limit of 0 makes it a clamp', async () => {
      const m = t.meterWith({ overage: 'overdraft' })
      await m.configure('a', { overdraftLimit: 0 })
      await m.grant('a', 10)
      const h = await m.reserve('a', 10)
      expect(await h.commit(25)).toMatchObject({ charged: 10, debt: 0, shortfall: 15 })
      expect(await t.balance('a', m)).toMatchObject({ debt: 0 })
    })
  })
}
