import { expect } from 'vitest'
import { HOUR, ruleGroup, SECOND, START, useMeter } from '../context.js'
import type { ConformanceOptions } from '../describe-store-conformance.js'
import { expectLedgerReplays, ledgerOldestFirst, readLedger } from '../testing/ledger.js'

/** DESIGN §1 "Hold (reservation)": reserve, commit ≤ amount, release, extend, resolve once, TTL. */
export function holdRules(options: ConformanceOptions): void {
  ruleGroup(options, 'holds', (test) => {
    const t = useMeter(options)

    test('hold: reserve returns { id, account, amount, expiresAt, allocations }', async () => {
      const g = await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30, { ttlMs: 5 * SECOND, metadata: { job: 7 } })
      expect(typeof h.id).toBe('string')
      expect(h.toJSON()).toEqual({
        id: h.id,
        account: 'a',
        amount: 30,
        expiresAt: START + 5 * SECOND,
        createdAt: START,
        allocations: [{ bucketId: g.id, amount: 30 }],
        metadata: { job: 7 },
        replayed: false,
      })
      expect(h.balance).toMatchObject({ total: 100, held: 30, available: 70 })
      expect(h.balance.buckets).toEqual([
        { id: g.id, remaining: 100, held: 30, expiresAt: null, priority: 50, category: 'paid' },
      ])
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({
        type: 'hold',
        delta: 0,
        heldDelta: 30,
        debtDelta: 0,
        balanceAfter: 100,
        holdId: h.id,
        metadata: { job: 7 },
      })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('hold: the default TTL is 60 s', async () => {
      await t.meter.grant('a', 10)
      const h = await t.meter.reserve('a', 1)
      expect(h.expiresAt).toBe(START + 60 * SECOND)
    })

    test('hold: reserve is all or nothing', async () => {
      await t.meter.grant('a', 50)
      await t.meter.reserve('a', 20)
      const before = await t.balance('a')
      const ledgerBefore = await readLedger(t.meter, 'a')
      await expect(t.meter.reserve('a', 31)).rejects.toMatchObject({
        code: 'insufficient_credits',
        status: 402,
        required: 31,
        available: 30,
      })
      expect(await t.balance('a')).toEqual(before)
      expect(await readLedger(t.meter, 'a')).toEqual(ledgerBefore)
    })

    test('hold: a zero-amount reserve is valid', async () => {
      const h = await t.meter.reserve('a', 0)
      expect(h).toMatchObject({ amount: 0, allocations: [] })
      expect(await h.commit()).toMatchObject({ charged: 0, shortfall: 0, freed: 0 })
      expect(await readLedger(t.meter, 'a')).toHaveLength(2)
    })

    test('hold: commit with actual < amount spends actual and frees the rest', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30)
      const c = await h.commit(20)
      expect(c).toMatchObject({
        holdId: h.id,
        account: 'a',
        charged: 20,
        shortfall: 0,
        debt: 0,
        freed: 10,
        replayed: false,
      })
      expect(c.balance).toMatchObject({ total: 80, held: 0, available: 80 })
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({
        type: 'commit',
        delta: -20,
        heldDelta: -30,
        debtDelta: 0,
        balanceAfter: 80,
        holdId: h.id,
      })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('hold: commit without actual spends the whole hold', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30)
      expect(await t.meter.commit(h.id)).toMatchObject({ charged: 30, freed: 0, shortfall: 0 })
      expect(await t.balance('a')).toMatchObject({ total: 70, held: 0 })
    })

    test('hold: commit of 0 frees the whole hold', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30)
      expect(await h.commit(0)).toMatchObject({ charged: 0, freed: 30 })
      expect(await t.balance('a')).toMatchObject({ total: 100, held: 0, available: 100 })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('hold: commit spends the first allocations in burn order and frees the last', async () => {
      const first = await t.meter.grant('a', 20, { priority: 10 })
      const second = await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 50)
      expect(h.allocations).toEqual([
        { bucketId: first.id, amount: 20 },
        { bucketId: second.id, amount: 30 },
      ])
      await h.commit(30)
      const b = await t.balance('a')
      expect(b.buckets.map((x) => [x.id, x.remaining, x.held])).toEqual([[second.id, 90, 0]])
      await expectLedgerReplays(t.meter, 'a')
    })

    test('hold: commit actual must be a non-negative safe integer', async () => {
      await t.meter.grant('a', 10)
      const h = await t.meter.reserve('a', 5)
      for (const bad of [-1, 1.5, Number.NaN]) {
        await expect(h.commit(bad)).rejects.toMatchObject({ code: 'invalid_input' })
      }
      expect(await h.commit(5)).toMatchObject({ charged: 5 })
    })

    test('hold: release frees the whole hold', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30)
      const r = await h.release()
      expect(r).toMatchObject({ holdId: h.id, account: 'a', freed: 30, replayed: false })
      expect(r.balance).toMatchObject({ total: 100, held: 0, available: 100 })
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({
        type: 'release',
        delta: 0,
        heldDelta: -30,
        balanceAfter: 100,
        holdId: h.id,
      })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('hold: extend sets expiresAt = now + ttlMs and writes no ledger entry', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30, { ttlMs: 10 * SECOND })
      t.advance(4 * SECOND)
      const e = await h.extend(30 * SECOND)
      expect(e).toMatchObject({ id: h.id, amount: 30, expiresAt: START + 34 * SECOND })
      expect(await readLedger(t.meter, 'a')).toHaveLength(2)
      // Shorter than before is allowed too: it is "now + ttlMs", not "old expiry + ttlMs".
      const e2 = await t.meter.extend(h.id, 2 * SECOND)
      expect(e2.expiresAt).toBe(START + 6 * SECOND)
    })

    test('hold: a long job outlives the original TTL by extending', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30, { ttlMs: 10 * SECOND })
      for (let i = 0; i < 5; i++) {
        t.advance(8 * SECOND)
        await h.extend(10 * SECOND)
      }
      t.advance(8 * SECOND)
      // 48 s after a 10 s reservation.
      expect(await h.commit(25)).toMatchObject({ charged: 25, freed: 5 })
      expect(await t.balance('a')).toMatchObject({ total: 75, held: 0 })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('hold: ttlMs must be 1 s–24 h (InvalidInputError outside)', async () => {
      await t.meter.grant('a', 100)
      for (const bad of [999, 24 * HOUR + 1, 0, 1.5]) {
        await expect(t.meter.reserve('a', 1, { ttlMs: bad })).rejects.toMatchObject({
          code: 'invalid_input',
          field: 'ttlMs',
        })
      }
      const short = await t.meter.reserve('a', 1, { ttlMs: SECOND })
      expect(short.expiresAt).toBe(START + SECOND)
      const long = await t.meter.reserve('a', 1, { ttlMs: 24 * HOUR })
      expect(long.expiresAt).toBe(START + 24 * HOUR)
      for (const bad of [999, 24 * HOUR + 1]) {
        await expect(long.extend(bad)).rejects.toMatchObject({ code: 'invalid_input' })
      }
      expect((await long.extend(SECOND)).expiresAt).toBe(START + SECOND)
      expect((await long.extend(24 * HOUR)).expiresAt).toBe(START + 24 * HOUR)
      expect(await readLedger(t.meter, 'a')).toHaveLength(3)
    })

    test('hold: resolves once — a second commit is HoldResolvedError (409)', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30)
      await h.commit(10)
      await expect(h.commit(10)).rejects.toMatchObject({
        code: 'hold_resolved',
        status: 409,
        holdId: h.id,
        resolution: 'committed',
      })
      expect(await t.balance('a')).toMatchObject({ total: 90, held: 0 })
      expect(await readLedger(t.meter, 'a')).toHaveLength(3)
    })

    test('hold: resolves once — release after commit and commit after release are HoldResolvedError', async () => {
      await t.meter.grant('a', 100)
      const committed = await t.meter.reserve('a', 30)
      await committed.commit()
      await expect(committed.release()).rejects.toMatchObject({
        code: 'hold_resolved',
        resolution: 'committed',
      })
      const released = await t.meter.reserve('a', 30)
      await released.release()
      await expect(released.commit()).rejects.toMatchObject({
        code: 'hold_resolved',
        status: 409,
        resolution: 'released',
      })
      await expect(released.release()).rejects.toMatchObject({ code: 'hold_resolved' })
      await expect(released.extend(SECOND * 10)).rejects.toMatchObject({ code: 'hold_resolved' })
      expect(await t.balance('a')).toMatchObject({ total: 70, held: 0 })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('hold: a second commit with the same idempotency key replays the first result', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30)
      const first = await h.commit(20, { idempotencyKey: 'settle-1' })
      t.advance(SECOND)
      const again = await h.commit(20, { idempotencyKey: 'settle-1' })
      expect(again).toEqual({ ...first, replayed: true })
      const released = await t.meter.reserve('a', 10)
      const r1 = await released.release({ idempotencyKey: 'settle-2' })
      const r2 = await released.release({ idempotencyKey: 'settle-2' })
      expect(r2).toEqual({ ...r1, replayed: true })
      expect(await t.balance('a')).toMatchObject({ total: 80, held: 0 })
      expect((await readLedger(t.meter, 'a')).map((e) => e.type)).toEqual([
        'release',
        'hold',
        'commit',
        'hold',
        'grant',
      ])
    })

    test('hold: a second commit with another idempotency key is HoldResolvedError', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30)
      await h.commit(20, { idempotencyKey: 'k1' })
      await expect(h.commit(20, { idempotencyKey: 'k2' })).rejects.toMatchObject({
        code: 'hold_resolved',
      })
      await expect(h.commit(20)).rejects.toMatchObject({ code: 'hold_resolved' })
      expect((await t.balance('a')).total).toBe(80)
    })

    test('hold: an unknown hold id is NotFoundError (404)', async () => {
      await expect(t.meter.commit('hld_unknown')).rejects.toMatchObject({
        code: 'not_found',
        status: 404,
      })
      await expect(t.meter.release('hld_unknown')).rejects.toMatchObject({ code: 'not_found' })
      await expect(t.meter.extend('hld_unknown', 10 * SECOND)).rejects.toMatchObject({
        code: 'not_found',
      })
    })

    test('hold: settled by id from another meter instance of the same tenant', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30)
      const other = t.meterWith()
      expect(await other.commit(h.id, 12)).toMatchObject({ account: 'a', charged: 12, freed: 18 })
      expect(await t.balance('a')).toMatchObject({ total: 88, held: 0 })
    })

    test('hold TTL: past expiresAt a pending hold is released on the next touch', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30, { ttlMs: 5 * SECOND })
      t.advance(5 * SECOND + 1)
      expect(await t.balance('a')).toMatchObject({ total: 100, held: 0, available: 100 })
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({
        type: 'release',
        delta: 0,
        heldDelta: -30,
        holdId: h.id,
        reason: 'hold_ttl',
        // Lazily applied entries carry the time they took effect.
        at: START + 5 * SECOND,
      })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('hold TTL: an operation on the account releases expired holds first', async () => {
      await t.meter.grant('a', 100)
      await t.meter.reserve('a', 80, { ttlMs: 5 * SECOND })
      t.advance(6 * SECOND)
      // Only possible once the expired hold's 80 are back.
      const d = await t.meter.debit('a', 90)
      expect(d.balance).toMatchObject({ total: 10, held: 0 })
      expect((await ledgerOldestFirst(t.meter, 'a')).map((e) => e.type)).toEqual([
        'grant',
        'hold',
        'release',
        'debit',
      ])
    })

    test('hold TTL: sweep() releases holds past their TTL without a touch', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30, { ttlMs: 5 * SECOND })
      await t.meter.grant('b', 100)
      await t.meter.reserve('b', 30, { ttlMs: HOUR })
      t.advance(10 * SECOND)
      const swept = await t.meter.sweep()
      expect(swept.accounts).toBe(1)
      // The ledger read does not touch the account: sweep() wrote the release.
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({ type: 'release', holdId: h.id, reason: 'hold_ttl' })
      expect((await readLedger(t.meter, 'b'))[0]?.type).toBe('hold')
      await expectLedgerReplays(t.meter, 'a')
    })

    test('hold TTL: commit, extend and release after expiry are HoldExpiredError (410)', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30, { ttlMs: 5 * SECOND })
      t.advance(5 * SECOND + 1)
      await expect(h.commit(10)).rejects.toMatchObject({
        code: 'hold_expired',
        status: 410,
        holdId: h.id,
      })
      await expect(h.extend(10 * SECOND)).rejects.toMatchObject({
        code: 'hold_expired',
        status: 410,
      })
      await expect(h.release()).rejects.toMatchObject({ code: 'hold_expired', status: 410 })
      expect(await t.balance('a')).toMatchObject({ total: 100, held: 0 })
      // One release by the TTL; the refused calls wrote nothing.
      expect((await readLedger(t.meter, 'a')).map((e) => e.type)).toEqual([
        'release',
        'hold',
        'grant',
      ])
    })

    test('hold TTL: after sweep() commit is HoldExpiredError too', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30, { ttlMs: 5 * SECOND })
      t.advance(HOUR)
      await t.meter.sweep()
      await expect(h.commit()).rejects.toMatchObject({ code: 'hold_expired', status: 410 })
    })

    test('hold TTL: commit just before expiresAt succeeds', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 30, { ttlMs: 5 * SECOND })
      t.advance(5 * SECOND - 1)
      expect(await h.commit()).toMatchObject({ charged: 30 })
    })

    test('hold: an earmarked bucket that expires keeps its held part until the hold resolves', async () => {
      const g = await t.meter.grant('a', 100, { expiresAt: START + 10 * SECOND })
      const h = await t.meter.reserve('a', 60)
      t.advance(10 * SECOND)
      const b = await t.balance('a')
      expect(b).toMatchObject({ total: 60, held: 60, available: 0 })
      expect(b.buckets).toMatchObject([{ id: g.id, remaining: 60, held: 60 }])
      const [expired] = await readLedger(t.meter, 'a')
      expect(expired).toMatchObject({
        type: 'expire',
        delta: -40,
        grantId: g.id,
        at: START + 10 * SECOND,
      })
      t.advance(SECOND)
      // The held part is still spendable; the freed 10 leave at once with an expire entry.
      expect(await h.commit(50)).toMatchObject({ charged: 50, freed: 10 })
      expect(await t.balance('a')).toMatchObject({ total: 0, held: 0, buckets: [] })
      const expires = (await readLedger(t.meter, 'a', { types: ['expire'] })).map((e) => e.delta)
      expect(expires).toEqual([-10, -40])
      await expectLedgerReplays(t.meter, 'a')
    })

    test('hold: the held part of an expired bucket can be committed in full', async () => {
      await t.meter.grant('a', 100, { expiresAt: START + 10 * SECOND })
      const h = await t.meter.reserve('a', 60)
      t.advance(20 * SECOND)
      expect(await h.commit()).toMatchObject({ charged: 60, freed: 0 })
      expect(await t.balance('a')).toMatchObject({ total: 0, held: 0 })
      expect((await readLedger(t.meter, 'a', { types: ['expire'] })).map((e) => e.delta)).toEqual([
        -40,
      ])
      await expectLedgerReplays(t.meter, 'a')
    })

    test('hold: released credits of an expired bucket leave with an expire entry', async () => {
      await t.meter.grant('a', 100, { expiresAt: START + 10 * SECOND })
      const h = await t.meter.reserve('a', 60)
      t.advance(20 * SECOND)
      expect(await h.release()).toMatchObject({ freed: 60 })
      expect(await t.balance('a')).toMatchObject({ total: 0, held: 0, available: 0 })
      expect((await readLedger(t.meter, 'a', { types: ['expire'] })).map((e) => e.delta)).toEqual([
        -60, -40,
      ])
      await expectLedgerReplays(t.meter, 'a')
    })

    test("hold: an expired bucket's held part leaves when the hold's TTL passes", async () => {
      const g = await t.meter.grant('a', 100, { expiresAt: START + 10 * SECOND })
      await t.meter.reserve('a', 60, { ttlMs: 20 * SECOND })
      t.advance(HOUR)
      expect(await t.balance('a')).toMatchObject({ total: 0, held: 0, buckets: [] })
      const entries = await ledgerOldestFirst(t.meter, 'a')
      expect(entries.map((e) => [e.type, e.delta, e.heldDelta, e.at])).toEqual([
        ['grant', 100, 0, START],
        ['hold', 0, 60, START],
        ['expire', -40, 0, START + 10 * SECOND],
        ['release', 0, -60, START + 20 * SECOND],
        ['expire', -60, 0, START + 20 * SECOND],
      ])
      expect(entries[4]?.grantId).toBe(g.id)
      await expectLedgerReplays(t.meter, 'a')
    })
  })
}
