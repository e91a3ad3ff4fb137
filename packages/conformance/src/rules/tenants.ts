import { expect } from 'vitest'
import { HOUR, ruleGroup, SECOND, useMeter } from '../context.js'
import type { ConformanceOptions } from '../describe-store-conformance.js'
import { expectLedgerReplays, readLedger } from '../testing/ledger.js'

/** DESIGN §1 "Account": a store holds many tenants, a meter sees one, nothing crosses tenants. */
export function tenantRules(options: ConformanceOptions): void {
  ruleGroup(options, 'tenants', (test) => {
    const t = useMeter(options)

    test('tenants: balances and ledgers of the same account name are isolated', async () => {
      const other = t.otherTenant()
      await t.meter.grant('alice', 100)
      await other.grant('alice', 7)
      await t.meter.debit('alice', 10)
      expect((await t.balance('alice')).total).toBe(90)
      expect((await t.balance('alice', other)).total).toBe(7)
      expect((await readLedger(other, 'alice')).map((e) => e.delta)).toEqual([7])
      expect((await readLedger(t.meter, 'alice')).map((e) => e.delta)).toEqual([-10, 100])
      const third = t.otherTenant()
      expect((await t.balance('alice', third)).total).toBe(0)
      expect(await third.ledger('alice')).toEqual({ entries: [], nextCursor: null })
      await expectLedgerReplays(t.meter, 'alice')
      await expectLedgerReplays(other, 'alice')
    })

    test('tenants: a hold of another tenant is NotFoundError', async () => {
      const other = t.otherTenant()
      await t.meter.grant('alice', 100)
      await other.grant('alice', 100)
      const h = await t.meter.reserve('alice', 30)
      await expect(other.commit(h.id)).rejects.toMatchObject({ code: 'not_found', status: 404 })
      await expect(other.release(h.id)).rejects.toMatchObject({ code: 'not_found' })
      await expect(other.extend(h.id, 10 * SECOND)).rejects.toMatchObject({ code: 'not_found' })
      expect(await t.balance('alice', other)).toMatchObject({ total: 100, held: 0 })
      // Still pending in its own tenant.
      expect(await h.commit(10)).toMatchObject({ charged: 10 })
      expect((await t.balance('alice')).total).toBe(90)
    })

    test('tenants: codes of another tenant are unknown', async () => {
      const other = t.otherTenant()
      const { codes } = await t.meter.createCodes({ credits: 10, count: 1 })
      await expect(other.redeem('alice', codes[0]!)).rejects.toMatchObject({
        code: 'invalid_input',
      })
      expect((await t.meter.redeem('alice', codes[0]!)).creditsGranted).toBe(10)
    })

    test('tenants: idempotency keys are per tenant', async () => {
      const other = t.otherTenant()
      const a = await t.meter.grant('alice', 100, { idempotencyKey: 'k' })
      const b = await other.grant('alice', 5, { idempotencyKey: 'k' })
      expect(a.replayed).toBe(false)
      expect(b.replayed).toBe(false)
      expect(b.amount).toBe(5)
      const c1 = await t.meter.createCodes({ credits: 1, count: 1, idempotencyKey: 'c' })
      const c2 = await other.createCodes({ credits: 2, count: 2, idempotencyKey: 'c' })
      expect(c2).toMatchObject({ replayed: false, credits: 2, count: 2 })
      expect(c2.batchId).not.toBe(c1.batchId)
      expect((await t.balance('alice', other)).total).toBe(5)
    })

    test('tenants: settings and cycles are per tenant', async () => {
      const other = t.otherTenant()
      await t.meter.configure('alice', { lowBalanceThreshold: 1_000 })
      await t.meter.grant('alice', 100)
      await other.grant('alice', 100)
      expect((await t.balance('alice')).low).toBe(true)
      expect((await t.balance('alice', other)).low).toBe(false)
      await t.meter.startCycle('alice', { amount: 10, every: 'day' })
      await expect(other.stopCycle('alice')).rejects.toMatchObject({ code: 'not_found' })
      expect((await t.balance('alice', other)).total).toBe(100)
    })

    test('tenants: sweep() works on its own tenant only', async () => {
      const other = t.otherTenant()
      await t.meter.grant('alice', 100)
      await t.meter.reserve('alice', 30, { ttlMs: SECOND })
      t.advance(HOUR)
      expect((await other.sweep()).accounts).toBe(0)
      expect((await readLedger(t.meter, 'alice'))[0]?.type).toBe('hold')
      expect((await t.meter.sweep()).accounts).toBe(1)
      expect((await readLedger(t.meter, 'alice'))[0]?.type).toBe('release')
    })
  })
}
