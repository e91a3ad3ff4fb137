import { expect } from 'vitest'
import { DAY, HOUR, MINUTE, ruleGroup, SECOND, START, useMeter } from '../context.js'
import type { ConformanceOptions } from '../describe-store-conformance.js'
import { expectLedgerReplays, readLedger } from '../testing/ledger.js'

/** DESIGN §1 "Grant (bucket)": options, validation, and the one total burn order. */
export function grantAndBurnOrderRules(options: ConformanceOptions): void {
  ruleGroup(options, 'grants and burn order', (test) => {
    const t = useMeter(options)

    test('grant: returns the grant with defaults (priority 50, paid, no expiry, empty metadata)', async () => {
      const g = await t.meter.grant('a', 100)
      expect(typeof g.id).toBe('string')
      expect(g).toMatchObject({
        account: 'a',
        amount: 100,
        repaidDebt: 0,
        expiresAt: null,
        priority: 50,
        category: 'paid',
        metadata: {},
        createdAt: START,
        replayed: false,
      })
      expect(g.balance).toMatchObject({ total: 100, held: 0, available: 100, debt: 0 })
      expect(g.balance.buckets).toEqual([
        { id: g.id, remaining: 100, held: 0, expiresAt: null, priority: 50, category: 'paid' },
      ])
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({
        type: 'grant',
        delta: 100,
        heldDelta: 0,
        debtDelta: 0,
        balanceAfter: 100,
        grantId: g.id,
        at: START,
      })
    })

    test('grant: expiresAt, priority, category and metadata are kept on the bucket and the entry', async () => {
      const g = await t.meter.grant('a', 40, {
        expiresAt: START + HOUR,
        priority: 7,
        category: 'promotional',
        metadata: { campaign: 'spring', n: 3 },
      })
      expect(g).toMatchObject({
        expiresAt: START + HOUR,
        priority: 7,
        category: 'promotional',
        metadata: { campaign: 'spring', n: 3 },
      })
      expect((await t.balance('a')).buckets).toEqual([
        {
          id: g.id,
          remaining: 40,
          held: 0,
          expiresAt: START + HOUR,
          priority: 7,
          category: 'promotional',
        },
      ])
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({ grantId: g.id, metadata: { campaign: 'spring', n: 3 } })
    })

    test('grant: expiresAt may be a Date', async () => {
      const g = await t.meter.grant('a', 5, { expiresAt: new Date(START + DAY) })
      expect(g.expiresAt).toBe(START + DAY)
      expect((await t.balance('a')).buckets[0]?.expiresAt).toBe(START + DAY)
    })

    test('grant: validityDays expires that many days from now', async () => {
      t.advance(5 * MINUTE)
      const g = await t.meter.grant('a', 10, { validityDays: 30 })
      expect(g.expiresAt).toBe(START + 5 * MINUTE + 30 * DAY)
      expect((await t.balance('a')).buckets[0]?.expiresAt).toBe(START + 5 * MINUTE + 30 * DAY)
    })

    test('grant: each grant is a bucket of its own', async () => {
      const a = await t.meter.grant('a', 10)
      const b = await t.meter.grant('a', 20)
      expect(a.id).not.toBe(b.id)
      const bal = await t.balance('a')
      expect(bal.total).toBe(30)
      expect(bal.buckets.map((x) => [x.id, x.remaining])).toEqual([
        [a.id, 10],
        [b.id, 20],
      ])
    })

    test('grant: amount must be a safe integer ≥ 1', async () => {
      for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
        await expect(t.meter.grant('a', bad)).rejects.toMatchObject({
          code: 'invalid_input',
          field: 'amount',
        })
      }
      await expect(t.meter.grant('a', '5' as unknown as number)).rejects.toMatchObject({
        code: 'invalid_input',
      })
      expect(await readLedger(t.meter, 'a')).toEqual([])
    })

    test('grant: expiresAt must be in the future; expiresAt with validityDays is refused', async () => {
      await expect(t.meter.grant('a', 1, { expiresAt: START })).rejects.toMatchObject({
        code: 'invalid_input',
      })
      await expect(t.meter.grant('a', 1, { expiresAt: START - 1 })).rejects.toMatchObject({
        code: 'invalid_input',
      })
      await expect(
        t.meter.grant('a', 1, { expiresAt: START + DAY, validityDays: 1 }),
      ).rejects.toMatchObject({ code: 'invalid_input' })
      await expect(t.meter.grant('a', 1, { validityDays: 0 })).rejects.toMatchObject({
        code: 'invalid_input',
      })
      expect(await readLedger(t.meter, 'a')).toEqual([])
    })

    test('burn order: priority ascending first', async () => {
      const p60 = await t.meter.grant('a', 10, { priority: 60 })
      const p40 = await t.meter.grant('a', 10, { priority: 40 })
      const p50 = await t.meter.grant('a', 10, { priority: 50 })
      const d = await t.meter.debit('a', 25)
      expect(d.allocations).toEqual([
        { bucketId: p40.id, amount: 10 },
        { bucketId: p50.id, amount: 10 },
        { bucketId: p60.id, amount: 5 },
      ])
      await expectLedgerReplays(t.meter, 'a')
    })

    test('burn order: earlier expiresAt first at equal priority', async () => {
      const d3 = await t.meter.grant('a', 10, { expiresAt: START + 3 * DAY })
      const d1 = await t.meter.grant('a', 10, { expiresAt: START + DAY })
      const d2 = await t.meter.grant('a', 10, { expiresAt: START + 2 * DAY })
      const h = await t.meter.reserve('a', 25)
      expect(h.allocations).toEqual([
        { bucketId: d1.id, amount: 10 },
        { bucketId: d2.id, amount: 10 },
        { bucketId: d3.id, amount: 5 },
      ])
    })

    test('burn order: buckets without expiry last', async () => {
      const never = await t.meter.grant('a', 10)
      const late = await t.meter.grant('a', 10, { expiresAt: START + 365 * DAY })
      const d = await t.meter.debit('a', 15)
      expect(d.allocations).toEqual([
        { bucketId: late.id, amount: 10 },
        { bucketId: never.id, amount: 5 },
      ])
    })

    test('burn order: promotional before paid at equal priority and expiry', async () => {
      const paid = await t.meter.grant('a', 10, { expiresAt: START + DAY })
      const promo = await t.meter.grant('a', 10, {
        expiresAt: START + DAY,
        category: 'promotional',
      })
      const paidForever = await t.meter.grant('a', 10)
      const promoForever = await t.meter.grant('a', 10, { category: 'promotional' })
      const d = await t.meter.debit('a', 40)
      expect(d.allocations.map((x) => x.bucketId)).toEqual([
        promo.id,
        paid.id,
        promoForever.id,
        paidForever.id,
      ])
    })

    test('burn order: created first at equal priority, expiry and category', async () => {
      // Two app instances with clocks a minute apart: the one ahead grants first, so its bucket
      // has the smaller id but the later creation time. Creation time decides, not the id.
      const ahead = t.meterWith({ clock: () => t.now() + MINUTE })
      const later = await ahead.grant('a', 10)
      const earlier = await t.meter.grant('a', 10)
      expect(later.createdAt).toBe(START + MINUTE)
      expect(earlier.createdAt).toBe(START)
      const d = await t.meter.debit('a', 15)
      expect(d.allocations).toEqual([
        { bucketId: earlier.id, amount: 10 },
        { bucketId: later.id, amount: 5 },
      ])
    })

    test('burn order: id breaks the last tie', async () => {
      const x = await t.meter.grant('a', 10)
      const y = await t.meter.grant('a', 10)
      const [first, second] = [x.id, y.id].sort()
      const d = await t.meter.debit('a', 15)
      expect(d.allocations).toEqual([
        { bucketId: first, amount: 10 },
        { bucketId: second, amount: 5 },
      ])
    })

    test('burn order: priority → expiresAt → promotional → created first, all at once', async () => {
      // Created in the reverse of burn order, so every key has to do its part.
      const grant = async (opts: Parameters<typeof t.meter.grant>[2]) => {
        t.advance(SECOND)
        return (await t.meter.grant('a', 10, opts)).id
      }
      const u = await grant({}) // paid, no expiry
      const tt = await grant({ category: 'promotional' }) // promotional, no expiry
      const s = await grant({ expiresAt: START + 2 * DAY }) // paid, +2d, created before r
      const r = await grant({ expiresAt: START + 2 * DAY, category: 'promotional' })
      const q = await grant({ expiresAt: START + DAY })
      const p = await grant({ priority: 10 }) // created last, lowest priority number
      const s2 = await grant({ expiresAt: START + 2 * DAY }) // paid, +2d, created after s
      const d = await t.meter.debit('a', 65)
      expect(d.allocations).toEqual([
        { bucketId: p, amount: 10 },
        { bucketId: q, amount: 10 },
        { bucketId: r, amount: 10 },
        { bucketId: s, amount: 10 },
        { bucketId: s2, amount: 10 },
        { bucketId: tt, amount: 10 },
        { bucketId: u, amount: 5 },
      ])
      await expectLedgerReplays(t.meter, 'a')
    })

    test('burn order: balance lists buckets in burn order', async () => {
      const late = await t.meter.grant('a', 1, { priority: 90 })
      const soon = await t.meter.grant('a', 1, { expiresAt: START + HOUR })
      const first = await t.meter.grant('a', 1, { priority: 1 })
      const plain = await t.meter.grant('a', 1)
      expect((await t.balance('a')).buckets.map((b) => b.id)).toEqual([
        first.id,
        soon.id,
        plain.id,
        late.id,
      ])
    })

    test('burn order: reserve takes only the free part of a partly held bucket', async () => {
      const a = await t.meter.grant('a', 10, { priority: 1 })
      const b = await t.meter.grant('a', 10, { priority: 2 })
      const h1 = await t.meter.reserve('a', 6)
      expect(h1.allocations).toEqual([{ bucketId: a.id, amount: 6 }])
      const h2 = await t.meter.reserve('a', 8)
      expect(h2.allocations).toEqual([
        { bucketId: a.id, amount: 4 },
        { bucketId: b.id, amount: 4 },
      ])
      const d = await t.meter.debit('a', 6)
      expect(d.allocations).toEqual([{ bucketId: b.id, amount: 6 }])
      await expectLedgerReplays(t.meter, 'a')
    })
  })
}
