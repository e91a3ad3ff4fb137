import type { Meter } from '@tollgate/core'
import { expect } from 'vitest'
import { DAY, ruleGroup, START, useMeter } from '../context.js'
import type { ConformanceOptions } from '../describe-store-conformance.js'
import { expectLedgerReplays, readLedger } from '../testing/ledger.js'

/** DESIGN §1 "Balance": `debt` under the overdraft policy, repaid first by every credit coming in. */
export function debtRules(options: ConformanceOptions): void {
  ruleGroup(options, 'debt', (test) => {
    const t = useMeter(options)

    /** Puts `account` into `debt` credits of debt through an overdraft commit. */
    async function intoDebt(m: Meter, account: string, debt: number): Promise<void> {
      const h = await m.reserve(account, 0)
      const c = await h.commit(debt, { overage: 'overdraft' })
      expect(c).toMatchObject({ debt, shortfall: 0 })
    }

    test('debt: shows in the balance; available stays 0, never negative', async () => {
      await intoDebt(t.meter, 'a', 40)
      expect(await t.balance('a')).toMatchObject({
        total: 0,
        held: 0,
        available: 0,
        debt: 40,
        buckets: [],
      })
    })

    test('debt: an account in debt cannot debit or reserve above 0', async () => {
      await intoDebt(t.meter, 'a', 40)
      await expect(t.meter.debit('a', 1)).rejects.toMatchObject({
        code: 'insufficient_credits',
        required: 1,
        available: 0,
      })
      await expect(t.meter.reserve('a', 1)).rejects.toMatchObject({ code: 'insufficient_credits' })
      expect((await t.balance('a')).debt).toBe(40)
    })

    test('debt: the next grants repay debt first', async () => {
      await intoDebt(t.meter, 'a', 40)
      const small = await t.meter.grant('a', 25)
      // All of it went to the debt: the grant still has an id and an entry, but no bucket.
      expect(typeof small.id).toBe('string')
      expect(small).toMatchObject({ amount: 25, repaidDebt: 25 })
      expect(small.balance).toMatchObject({ total: 0, debt: 15, available: 0, buckets: [] })
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({
        type: 'grant',
        delta: 25,
        debtDelta: -25,
        balanceAfter: -15,
        grantId: small.id,
      })
      const big = await t.meter.grant('a', 100)
      expect(big).toMatchObject({ repaidDebt: 15 })
      expect(big.balance).toMatchObject({ total: 85, debt: 0, available: 85 })
      expect(big.balance.buckets).toMatchObject([{ id: big.id, remaining: 85 }])
      await expectLedgerReplays(t.meter, 'a')
    })

    test('debt: only the overdraft policy creates debt', async () => {
      await t.meter.grant('a', 10)
      const clamp = await t.meter.reserve('a', 10)
      expect(await clamp.commit(50)).toMatchObject({ debt: 0, shortfall: 40 })
      expect((await t.balance('a')).debt).toBe(0)
    })

    test('debt: redeemed credits repay debt first', async () => {
      await intoDebt(t.meter, 'a', 40)
      const { codes } = await t.meter.createCodes({ credits: 500, count: 1 })
      const r = await t.meter.redeem('a', codes[0]!)
      expect(r).toMatchObject({ creditsGranted: 500, newBalance: 460 })
      expect(r.balance).toMatchObject({ total: 460, debt: 0 })
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({ type: 'redeem', delta: 500, debtDelta: -40, balanceAfter: 460 })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('debt: cycle grants repay debt first', async () => {
      await intoDebt(t.meter, 'a', 40)
      const c = await t.meter.startCycle('a', { amount: 100, every: 'day' })
      expect(c.balance).toMatchObject({ total: 60, debt: 0 })
      expect(c.balance.buckets).toMatchObject([{ remaining: 60, expiresAt: START + DAY }])
      const h = await t.meter.reserve('a', 60)
      await h.commit(130, { overage: 'overdraft' })
      expect((await t.balance('a')).debt).toBe(70)
      t.setNow(START + DAY)
      expect(await t.balance('a')).toMatchObject({ total: 30, debt: 0 })
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({ type: 'cycle_grant', delta: 100, debtDelta: -70 })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('debt: a positive adjust repays debt first', async () => {
      await intoDebt(t.meter, 'a', 40)
      const r = await t.meter.adjust('a', 25)
      expect(r.balance).toMatchObject({ total: 0, debt: 15 })
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({ type: 'adjust', delta: 25, debtDelta: -25, balanceAfter: -15 })
      await expectLedgerReplays(t.meter, 'a')
    })
  })
}
