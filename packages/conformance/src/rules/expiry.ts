import { expect } from 'vitest'
import { DAY, HOUR, ruleGroup, SECOND, START, useMeter } from '../context.js'
import type { ConformanceOptions } from '../describe-store-conformance.js'
import { expectLedgerReplays, ledgerOldestFirst, readLedger } from '../testing/ledger.js'

/** DESIGN §1 "Grant (bucket)": a bucket whose `expiresAt ≤ now` is expired. */
export function expiryRules(options: ConformanceOptions): void {
  ruleGroup(options, 'expiry', (test) => {
    const t = useMeter(options)

    test('expiry: a bucket is expired exactly at expiresAt (≤ now), with an expire entry', async () => {
      const g = await t.meter.grant('a', 100, { expiresAt: START + HOUR })
      t.setNow(START + HOUR - 1)
      expect((await t.balance('a')).total).toBe(100)
      t.setNow(START + HOUR)
      expect(await t.balance('a')).toMatchObject({ total: 0, available: 0, buckets: [] })
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({
        type: 'expire',
        delta: -100,
        heldDelta: 0,
        debtDelta: 0,
        balanceAfter: 0,
        grantId: g.id,
        reason: 'bucket_expiry',
        at: START + HOUR,
      })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('expiry: only the unspent remainder leaves', async () => {
      await t.meter.grant('a', 100, { expiresAt: START + HOUR })
      await t.meter.grant('a', 50)
      await t.meter.debit('a', 30)
      t.advance(HOUR)
      expect((await t.balance('a')).total).toBe(50)
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({ type: 'expire', delta: -70, balanceAfter: 50 })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('expiry: expired credits cannot be debited or reserved', async () => {
      await t.meter.grant('a', 50, { expiresAt: START + SECOND })
      await t.meter.grant('a', 50)
      t.advance(SECOND)
      await expect(t.meter.debit('a', 60)).rejects.toMatchObject({
        code: 'insufficient_credits',
        required: 60,
        available: 50,
      })
      await expect(t.meter.reserve('a', 51)).rejects.toMatchObject({
        code: 'insufficient_credits',
        available: 50,
      })
      expect((await t.meter.debit('a', 50)).balance.total).toBe(0)
      await expectLedgerReplays(t.meter, 'a')
    })

    test('expiry: validityDays buckets expire validityDays × 24 h after the grant', async () => {
      t.advance(HOUR)
      await t.meter.grant('a', 10, { validityDays: 2 })
      t.setNow(START + HOUR + 2 * DAY - 1)
      expect((await t.balance('a')).total).toBe(10)
      t.setNow(START + HOUR + 2 * DAY)
      expect((await t.balance('a')).total).toBe(0)
      expect((await readLedger(t.meter, 'a'))[0]).toMatchObject({
        type: 'expire',
        at: START + HOUR + 2 * DAY,
      })
    })

    test('expiry: several buckets expire in time order, each entry at its due time', async () => {
      const c = await t.meter.grant('a', 30, { expiresAt: START + 3 * HOUR })
      const a = await t.meter.grant('a', 10, { expiresAt: START + HOUR })
      const b = await t.meter.grant('a', 20, { expiresAt: START + 2 * HOUR })
      t.advance(5 * HOUR)
      expect((await t.balance('a')).total).toBe(0)
      const expires = (await ledgerOldestFirst(t.meter, 'a')).filter((e) => e.type === 'expire')
      expect(expires.map((e) => [e.grantId, e.delta, e.at, e.balanceAfter])).toEqual([
        [a.id, -10, START + HOUR, 50],
        [b.id, -20, START + 2 * HOUR, 30],
        [c.id, -30, START + 3 * HOUR, 0],
      ])
      await expectLedgerReplays(t.meter, 'a')
    })

    test('expiry: lazy housekeeping applies hold TTLs and expiries in time order', async () => {
      await t.meter.grant('a', 100, { expiresAt: START + 10 * SECOND })
      await t.meter.reserve('a', 60, { ttlMs: 5 * SECOND })
      t.advance(HOUR)
      expect(await t.balance('a')).toMatchObject({ total: 0, held: 0 })
      // The hold ended first, so the whole bucket was free when it expired.
      const entries = await ledgerOldestFirst(t.meter, 'a')
      expect(entries.map((e) => [e.type, e.delta, e.heldDelta, e.at])).toEqual([
        ['grant', 100, 0, START],
        ['hold', 0, 60, START],
        ['release', 0, -60, START + 5 * SECOND],
        ['expire', -100, 0, START + 10 * SECOND],
      ])
      await expectLedgerReplays(t.meter, 'a')
    })

    test('expiry: sweep() expires buckets without a touch', async () => {
      await t.meter.grant('a', 100, { expiresAt: START + HOUR })
      await t.meter.grant('b', 100, { expiresAt: START + 2 * HOUR })
      await t.meter.grant('c', 100)
      t.advance(HOUR)
      const swept = await t.meter.sweep()
      expect(swept.accounts).toBe(1)
      // The ledger read does not touch the account: sweep() wrote the expiry.
      expect((await readLedger(t.meter, 'a'))[0]).toMatchObject({ type: 'expire', delta: -100 })
      expect((await readLedger(t.meter, 'b'))[0]?.type).toBe('grant')
      t.advance(HOUR)
      expect((await t.meter.sweep()).accounts).toBe(1)
      expect((await readLedger(t.meter, 'b'))[0]).toMatchObject({ type: 'expire', delta: -100 })
      expect((await t.meter.sweep()).accounts).toBe(0)
    })

    test('expiry: balance() does not serve credits from the cache at expiresAt', async () => {
      await t.meter.grant('a', 100, { expiresAt: START + HOUR })
      expect((await t.meter.balance('a')).total).toBe(100)
      t.setNow(START + HOUR)
      expect((await t.meter.balance('a')).total).toBe(0)
    })

    test('expiry: balance() does not serve credits from the cache after the clock moved past expiresAt', async () => {
      await t.meter.grant('a', 100, { expiresAt: START + HOUR })
      t.setNow(START + 2 * HOUR)
      expect((await t.meter.balance('a')).total).toBe(0)
    })
  })
}
