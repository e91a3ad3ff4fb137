import { expect } from 'vitest'
import { HOUR, ruleGroup, SECOND, START, useMeter } from '../context.js'
import type { ConformanceOptions } from '../describe-store-conformance.js'
import { expectLedgerReplays, ledgerOldestFirst, readLedger } from '../testing/ledger.js'

/** DESIGN §1 "Hold": `increase(id, n)` grows a pending hold in burn order, all or nothing. */
export function holdGrowthRules(options: ConformanceOptions): void {
  ruleGroup(options, 'hold growth', (test) => {
    const t = useMeter(options)

    test('increase: grows a pending hold by n, with a hold entry of heldDelta n', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30, { ttlMs: 5 * SECOND })
      const grown = await t.meter.increase(h.id, 20)
      expect(grown).toMatchObject({
        holdId: h.id,
        account: 'a',
        amount: 50,
        added: 20,
        expiresAt: START + 5 * SECOND,
        replayed: false,
      })
      expect(grown.balance).toMatchObject({ total: 100, held: 50, available: 50 })
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({
        type: 'hold',
        delta: 0,
        heldDelta: 20,
        debtDelta: 0,
        balanceAfter: 100,
        holdId: h.id,
      })
      expect(await t.balance('a')).toMatchObject({ total: 100, held: 50, available: 50 })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('increase: hold.increase(n) grows the hold and its amount follows', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 10)
      expect(await h.increase(5)).toMatchObject({ amount: 15, added: 5 })
      expect(h.amount).toBe(15)
      // A commit without actual spends the grown hold.
      expect(await h.commit()).toMatchObject({ charged: 15, freed: 0 })
      expect(await t.balance('a')).toMatchObject({ total: 85, held: 0 })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('increase: all or nothing — InsufficientCreditsError, hold and ledger untouched', async () => {
      await t.meter.grant('a', 50)
      const h = await t.meter.reserve('a', 20)
      const before = await t.balance('a')
      const ledgerBefore = await readLedger(t.meter, 'a')
      await expect(t.meter.increase(h.id, 31)).rejects.toMatchObject({
        code: 'insufficient_credits',
        status: 402,
        required: 31,
        available: 30,
      })
      expect(await t.balance('a')).toEqual(before)
      expect(await readLedger(t.meter, 'a')).toEqual(ledgerBefore)
      expect(await h.commit()).toMatchObject({ charged: 20 })
    })

    test('increase: { partial: true } grows by what is available, up to n', async () => {
      await t.meter.grant('a', 50)
      const h = await t.meter.reserve('a', 20)
      expect(await t.meter.increase(h.id, 10, { partial: true })).toMatchObject({
        amount: 30,
        added: 10,
      })
      expect(await t.meter.increase(h.id, 100, { partial: true })).toMatchObject({
        amount: 50,
        added: 20,
      })
      // Nothing left: it answers with added 0 and writes nothing.
      const entries = await readLedger(t.meter, 'a')
      const none = await t.meter.increase(h.id, 5, { partial: true })
      expect(none).toMatchObject({ amount: 50, added: 0 })
      expect(none.balance).toMatchObject({ held: 50, available: 0 })
      expect(await readLedger(t.meter, 'a')).toEqual(entries)
      expect((await ledgerOldestFirst(t.meter, 'a')).map((e) => e.heldDelta)).toEqual([
        0, 20, 10, 20,
      ])
      await expectLedgerReplays(t.meter, 'a')
    })

    test('increase: by 0 answers the hold as it is and writes no entry', async () => {
      await t.meter.grant('a', 10)
      const h = await t.meter.reserve('a', 4)
      const entries = await readLedger(t.meter, 'a')
      expect(await t.meter.increase(h.id, 0)).toMatchObject({ amount: 4, added: 0 })
      expect(await readLedger(t.meter, 'a')).toEqual(entries)
    })

    test('increase: n must be a non-negative safe integer', async () => {
      await t.meter.grant('a', 10)
      const h = await t.meter.reserve('a', 4)
      for (const bad of [-1, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER + 1, '3' as never]) {
        await expect(t.meter.increase(h.id, bad)).rejects.toMatchObject({ code: 'invalid_input' })
      }
      await expect(t.meter.increase(h.id, 1, { partial: 'yes' as never })).rejects.toMatchObject({
        code: 'invalid_input',
      })
      expect(await t.balance('a')).toMatchObject({ held: 4 })
    })

    test('increase: takes from buckets in burn order; commit spends the grown hold in burn order', async () => {
      const late = await t.meter.grant('a', 100, { priority: 50 })
      const h = await t.meter.reserve('a', 10)
      // Granted after the reserve but spent first: the grown hold burns it first.
      const early = await t.meter.grant('a', 5, { priority: 1 })
      const grown = await t.meter.increase(h.id, 10)
      expect(grown.balance.buckets).toMatchObject([
        { id: early.id, remaining: 5, held: 5 },
        { id: late.id, remaining: 100, held: 15 },
      ])
      expect(await h.commit(8)).toMatchObject({ charged: 8, freed: 12 })
      expect((await t.balance('a')).buckets).toMatchObject([
        { id: late.id, remaining: 97, held: 0 },
      ])
      await expectLedgerReplays(t.meter, 'a')
    })

    test('increase: release frees the whole grown hold', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 10)
      await h.increase(25)
      expect(await h.release()).toMatchObject({ freed: 35 })
      expect(await t.balance('a')).toMatchObject({ total: 100, held: 0, available: 100 })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('increase: the TTL releases the grown hold whole', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 10, { ttlMs: 5 * SECOND })
      await h.increase(25)
      t.advance(6 * SECOND)
      expect(await t.balance('a')).toMatchObject({ total: 100, held: 0 })
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({ type: 'release', heldDelta: -35, reason: 'hold_ttl' })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('increase: an expiring bucket keeps the grown held part until the hold resolves', async () => {
      await t.meter.grant('a', 100, { expiresAt: START + 10 * SECOND })
      const h = await t.meter.reserve('a', 20, { ttlMs: HOUR })
      await h.increase(30)
      t.advance(20 * SECOND)
      expect(await t.balance('a')).toMatchObject({ total: 50, held: 50, available: 0 })
      expect(await h.commit(45)).toMatchObject({ charged: 45, freed: 5 })
      expect(await t.balance('a')).toMatchObject({ total: 0, held: 0 })
      expect((await readLedger(t.meter, 'a', { types: ['expire'] })).map((e) => e.delta)).toEqual([
        -5, -50,
      ])
      await expectLedgerReplays(t.meter, 'a')
    })

    test('increase: idempotent — same key and input replays, other input is a conflict', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 10)
      const first = await t.meter.increase(h.id, 5, { idempotencyKey: 'grow-1' })
      const again = await t.meter.increase(h.id, 5, { idempotencyKey: 'grow-1' })
      expect(again).toMatchObject({ amount: 15, added: 5, replayed: true })
      expect(again.balance).toEqual(first.balance)
      await expect(t.meter.increase(h.id, 6, { idempotencyKey: 'grow-1' })).rejects.toMatchObject({
        code: 'idempotency_conflict',
        status: 409,
      })
      await expect(
        t.meter.increase(h.id, 5, { idempotencyKey: 'grow-1', partial: true }),
      ).rejects.toMatchObject({ code: 'idempotency_conflict' })
      expect(await t.balance('a')).toMatchObject({ held: 15 })
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({ type: 'hold', heldDelta: 5, idempotencyKey: 'grow-1' })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('increase: a resolved hold is HoldResolvedError, an unknown one NotFoundError', async () => {
      await t.meter.grant('a', 100)
      const committed = await t.meter.reserve('a', 10)
      await committed.commit()
      await expect(committed.increase(1)).rejects.toMatchObject({
        code: 'hold_resolved',
        status: 409,
      })
      const released = await t.meter.reserve('a', 10)
      await released.release()
      await expect(released.increase(1)).rejects.toMatchObject({ code: 'hold_resolved' })
      await expect(t.meter.increase('hld_unknown', 1)).rejects.toMatchObject({
        code: 'not_found',
        status: 404,
      })
    })

    test('increase: past expiresAt it is HoldExpiredError (410)', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 10, { ttlMs: 5 * SECOND })
      t.advance(5 * SECOND + 1)
      await expect(h.increase(1)).rejects.toMatchObject({
        code: 'hold_expired',
        status: 410,
        holdId: h.id,
      })
      expect(await t.balance('a')).toMatchObject({ total: 100, held: 0 })
    })

    test('increase: concurrent increases never hold more than the account has', async () => {
      await t.meter.grant('a', 100)
      const holds = await Promise.all([t.meter.reserve('a', 10), t.meter.reserve('a', 10)])
      const tries = Array.from({ length: 12 }, (_, i) =>
        t.meter.increase(holds[i % 2]!.id, 10).then(
          () => true,
          (err: { code?: string }) => {
            if (err.code !== 'insufficient_credits') throw err
            return false
          },
        ),
      )
      const grown = (await Promise.all(tries)).filter(Boolean).length
      // 80 free credits: exactly eight increases of 10 fit.
      expect(grown).toBe(8)
      expect(await t.balance('a')).toMatchObject({ total: 100, held: 100, available: 0 })
      const charged = await Promise.all(holds.map((h) => t.meter.commit(h.id)))
      expect(charged.reduce((sum, c) => sum + c.charged, 0)).toBe(100)
      expect(await t.balance('a')).toMatchObject({ total: 0, held: 0 })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('increase: grows a hold made by another meter instance of the same tenant', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 10)
      const other = t.meterWith()
      expect(await other.increase(h.id, 15)).toMatchObject({ account: 'a', amount: 25 })
      expect(await h.commit()).toMatchObject({ charged: 25 })
    })
  })
}
