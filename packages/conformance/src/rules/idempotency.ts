import { expect } from 'vitest'
import { DAY, HOUR, ruleGroup, SECOND, START, useMeter } from '../context.js'
import type { ConformanceOptions } from '../describe-store-conformance.js'
import { expectLedgerReplays, readLedger } from '../testing/ledger.js'

/** DESIGN §1 "Idempotency": same key + same input replays; anything else conflicts. */
export function idempotencyRules(options: ConformanceOptions): void {
  ruleGroup(options, 'idempotency', (test) => {
    const t = useMeter(options)
    const key = { idempotencyKey: 'key-1' }

    test('idempotency: grant replays the original result with replayed: true', async () => {
      const first = await t.meter.grant('a', 100, { ...key, expiresAt: START + DAY, priority: 3 })
      t.advance(SECOND)
      const again = await t.meter.grant('a', 100, { ...key, expiresAt: START + DAY, priority: 3 })
      expect(again).toEqual({ ...first, replayed: true })
      expect((await t.balance('a')).total).toBe(100)
      expect(await readLedger(t.meter, 'a')).toHaveLength(1)
    })

    test('idempotency: a caller changing the result it got leaves the replay as it was', async () => {
      // The store keeps the record apart from what it hands out (the engine does not copy it).
      const first = await t.meter.grant('a', 100, { ...key, priority: 3 })
      const asGiven = structuredClone(first)
      const changed = first as unknown as { grantId: string; balance: Record<string, unknown> }
      changed.grantId = 'changed'
      changed.balance.total = -1
      ;(changed.balance.buckets as unknown[]).length = 0
      const again = await t.meter.grant('a', 100, { ...key, priority: 3 })
      expect(again).toEqual({ ...asGiven, replayed: true })
    })

    test('idempotency: a retried grant with validityDays replays, though the clock moved', async () => {
      // The caller's input is the same; only the derived expiry would differ.
      const first = await t.meter.grant('a', 100, { ...key, validityDays: 3 })
      t.advance(SECOND)
      const again = await t.meter.grant('a', 100, { ...key, validityDays: 3 })
      expect(again).toEqual({ ...first, replayed: true })
      expect(again.expiresAt).toBe(START + 3 * DAY)
      expect((await t.balance('a')).total).toBe(100)
    })

    test('idempotency: grant with the same key and different input is IdempotencyConflictError (409)', async () => {
      await t.meter.grant('a', 100, key)
      await expect(t.meter.grant('a', 101, key)).rejects.toMatchObject({
        code: 'idempotency_conflict',
        status: 409,
        idempotencyKey: 'key-1',
      })
      await expect(
        t.meter.grant('a', 100, { ...key, metadata: { other: true } }),
      ).rejects.toMatchObject({ code: 'idempotency_conflict' })
      await expect(t.meter.grant('a', 100, { ...key, priority: 1 })).rejects.toMatchObject({
        code: 'idempotency_conflict',
      })
      expect((await t.balance('a')).total).toBe(100)
      expect(await readLedger(t.meter, 'a')).toHaveLength(1)
    })

    test('idempotency: debit replays; different input conflicts', async () => {
      await t.meter.grant('a', 100)
      const first = await t.meter.debit('a', 30, key)
      const again = await t.meter.debit('a', 30, key)
      expect(again).toEqual({ ...first, replayed: true })
      await expect(t.meter.debit('a', 31, key)).rejects.toMatchObject({
        code: 'idempotency_conflict',
      })
      expect((await t.balance('a')).total).toBe(70)
      expect(await readLedger(t.meter, 'a')).toHaveLength(2)
    })

    test('idempotency: reserve replays the same hold; different input conflicts', async () => {
      await t.meter.grant('a', 100)
      const first = await t.meter.reserve('a', 30, { ...key, ttlMs: 10 * SECOND })
      t.advance(SECOND)
      const again = await t.meter.reserve('a', 30, { ...key, ttlMs: 10 * SECOND })
      expect(again.toJSON()).toEqual({ ...first.toJSON(), replayed: true })
      expect(again.balance).toEqual(first.balance)
      await expect(t.meter.reserve('a', 30, { ...key, ttlMs: 20 * SECOND })).rejects.toMatchObject({
        code: 'idempotency_conflict',
      })
      expect(await t.balance('a')).toMatchObject({ held: 30, available: 70 })
      // The replayed hold is the same hold: settling it settles the original.
      expect(await again.commit(10)).toMatchObject({ holdId: first.id, charged: 10 })
      await expect(first.commit(10)).rejects.toMatchObject({ code: 'hold_resolved' })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('idempotency: commit replays; different input conflicts', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30)
      const first = await t.meter.commit(h.id, 20, key)
      const again = await t.meter.commit(h.id, 20, key)
      expect(again).toEqual({ ...first, replayed: true })
      await expect(t.meter.commit(h.id, 25, key)).rejects.toMatchObject({
        code: 'idempotency_conflict',
      })
      expect((await t.balance('a')).total).toBe(80)
    })

    test('idempotency: release replays; another hold with the same key conflicts', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30)
      const other = await t.meter.reserve('a', 5)
      const first = await h.release(key)
      const again = await h.release(key)
      expect(again).toEqual({ ...first, replayed: true })
      await expect(other.release(key)).rejects.toMatchObject({ code: 'idempotency_conflict' })
      expect(await t.balance('a')).toMatchObject({ held: 5, available: 95 })
    })

    test('idempotency: redeem replays the same redemption; another code conflicts', async () => {
      const { codes } = await t.meter.createCodes({ credits: 50, count: 2, maxRedemptions: 3 })
      const first = await t.meter.redeem('a', codes[0]!, key)
      const again = await t.meter.redeem('a', codes[0]!, key)
      expect(again).toEqual({ ...first, replayed: true })
      await expect(t.meter.redeem('a', codes[1]!, key)).rejects.toMatchObject({
        code: 'idempotency_conflict',
      })
      expect((await t.balance('a')).total).toBe(50)
      expect(await readLedger(t.meter, 'a')).toHaveLength(1)
      // The replay did not count as a second redemption of the code.
      expect((await t.meter.redeem('b', codes[0]!)).creditsGranted).toBe(50)
      expect((await t.meter.redeem('c', codes[0]!)).creditsGranted).toBe(50)
    })

    test('idempotency: startCycle replays the same cycle; different input conflicts', async () => {
      const first = await t.meter.startCycle('a', { amount: 100, every: 'day', ...key })
      t.advance(HOUR)
      const again = await t.meter.startCycle('a', { amount: 100, every: 'day', ...key })
      expect(again).toEqual({ ...first, replayed: true })
      await expect(
        t.meter.startCycle('a', { amount: 100, every: 'week', ...key }),
      ).rejects.toMatchObject({ code: 'idempotency_conflict' })
      expect((await t.balance('a')).total).toBe(100)
      expect(await readLedger(t.meter, 'a')).toHaveLength(1)
    })

    test('idempotency: createCodes replays the batch without the plaintext codes; different input conflicts', async () => {
      const first = await t.meter.createCodes({ credits: 10, count: 3, ...key })
      expect(first.codes).toHaveLength(3)
      const again = await t.meter.createCodes({ credits: 10, count: 3, ...key })
      expect(again).toEqual({ ...first, codes: [], replayed: true })
      await expect(t.meter.createCodes({ credits: 10, count: 4, ...key })).rejects.toMatchObject({
        code: 'idempotency_conflict',
        status: 409,
      })
      // The replay made no new codes: the original ones still work.
      expect((await t.meter.redeem('a', first.codes[2]!)).creditsGranted).toBe(10)
    })

    test('idempotency: a key used on one account conflicts on another', async () => {
      await t.meter.grant('a', 100, key)
      await expect(t.meter.grant('b', 100, key)).rejects.toMatchObject({
        code: 'idempotency_conflict',
      })
      expect(await t.balance('b')).toMatchObject({ total: 0 })
      expect(await readLedger(t.meter, 'b')).toEqual([])
    })

    test('idempotency: a key used by one operation conflicts with another operation', async () => {
      await t.meter.grant('a', 100, key)
      await expect(t.meter.debit('a', 100, key)).rejects.toMatchObject({
        code: 'idempotency_conflict',
      })
      await expect(t.meter.reserve('a', 100, key)).rejects.toMatchObject({
        code: 'idempotency_conflict',
      })
      await expect(t.meter.createCodes({ credits: 100, count: 1, ...key })).rejects.toMatchObject({
        code: 'idempotency_conflict',
      })
      await t.meter.createCodes({ credits: 100, count: 1, idempotencyKey: 'key-2' })
      await expect(t.meter.grant('a', 100, { idempotencyKey: 'key-2' })).rejects.toMatchObject({
        code: 'idempotency_conflict',
      })
      expect((await t.balance('a')).total).toBe(100)
    })

    test("idempotency: a refused operation doesn't consume its key", async () => {
      await expect(t.meter.debit('a', 50, key)).rejects.toMatchObject({
        code: 'insufficient_credits',
      })
      await t.meter.grant('a', 100)
      const ok = await t.meter.debit('a', 50, key)
      expect(ok.replayed).toBe(false)
      expect(ok.balance.total).toBe(50)
      expect((await t.meter.debit('a', 50, key)).replayed).toBe(true)
      expect((await t.balance('a')).total).toBe(50)
    })

    test('idempotency: a replay returns the balance as it was then and changes nothing', async () => {
      const first = await t.meter.grant('a', 100, key)
      await t.meter.debit('a', 30)
      const ledgerBefore = await readLedger(t.meter, 'a')
      const again = await t.meter.grant('a', 100, key)
      expect(again.replayed).toBe(true)
      expect(again.balance).toEqual(first.balance)
      expect(again.balance.total).toBe(100)
      expect(await t.balance('a')).toMatchObject({ total: 70 })
      expect(await readLedger(t.meter, 'a')).toEqual(ledgerBefore)
    })

    test('idempotency: balance() after a replay is the current balance', async () => {
      await t.meter.grant('a', 100, key)
      await t.meter.debit('a', 30)
      await t.meter.grant('a', 100, key)
      // Served from the meter's cache when it can be; it must not go back to the replayed figure.
      expect((await t.meter.balance('a')).total).toBe(70)
    })

    test('idempotency: the key is recorded on the ledger entry', async () => {
      await t.meter.grant('a', 100, { idempotencyKey: 'order-77' })
      expect((await readLedger(t.meter, 'a'))[0]).toMatchObject({ idempotencyKey: 'order-77' })
    })

    test('idempotency: keys live at least 48 h, sweep() included', async () => {
      const first = await t.meter.grant('a', 100, key)
      t.advance(48 * HOUR)
      await t.meter.sweep()
      const again = await t.meter.grant('a', 100, key)
      expect(again).toEqual({ ...first, replayed: true })
      expect((await t.balance('a')).total).toBe(100)
    })
  })
}
