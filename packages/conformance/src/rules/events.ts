import type { Meter, MeterEventName } from '@tollgate/core'
import type { EngineEvent } from '@tollgate/core/engine'
import { expect, vi } from 'vitest'
import { HOUR, ruleGroup, SECOND, START, useMeter } from '../context.js'
import type { ConformanceOptions } from '../describe-store-conformance.js'

// Typed from the engine's union: core's `MeterEvents['low']` (and 'depleted', 'recovered')
// resolves to `never` because `Extract` cannot split the shared alert member.
type AnyEvent = EngineEvent & { tenant: string }

const ALL_EVENTS: MeterEventName[] = [
  'low',
  'depleted',
  'recovered',
  'granted',
  'committed',
  'released',
  'expired',
]

/** Records every event the meter emits, in order. */
function record(meter: Meter): AnyEvent[] {
  const seen: AnyEvent[] = []
  for (const name of ALL_EVENTS) meter.on(name, (e) => seen.push(e as AnyEvent))
  return seen
}

/** Only the alert events (`low`, `depleted`, `recovered`) as `[type, available]`. */
function alerts(seen: AnyEvent[]): [string, number][] {
  const out: [string, number][] = []
  for (const e of seen) {
    if (e.type === 'low' || e.type === 'depleted' || e.type === 'recovered') {
      out.push([e.type, e.available])
    }
  }
  return out
}

/** DESIGN §1 "Events": alerts once per crossing; observer events per change. */
export function eventRules(options: ConformanceOptions): void {
  ruleGroup(options, 'events', (test) => {
    const t = useMeter(options)

    test('events: low fires once when available crosses the threshold, not again while low', async () => {
      const m = t.meterWith({ lowBalanceThreshold: 50 })
      const seen = record(m)
      await m.grant('a', 100)
      await m.debit('a', 40)
      expect(alerts(seen)).toEqual([])
      await m.debit('a', 20)
      await m.debit('a', 10)
      await m.debit('a', 5)
      const h = await m.reserve('a', 5)
      await h.release()
      expect(alerts(seen)).toEqual([['low', 40]])
      expect(seen.find((e) => e.type === 'low')).toEqual({
        type: 'low',
        account: 'a',
        available: 40,
        at: START,
        tenant: t.tenant,
      })
    })

    test('events: depleted fires once when available reaches 0', async () => {
      const m = t.meterWith({ lowBalanceThreshold: 50 })
      await m.grant('a', 30)
      const seen = record(m)
      await m.debit('a', 30)
      await m.debit('a', 0)
      await expect(m.debit('a', 1)).rejects.toMatchObject({ code: 'insufficient_credits' })
      await m.reserve('a', 0)
      expect(alerts(seen)).toEqual([['depleted', 0]])
    })

    test('events: ok → depleted fires low then depleted when a threshold is set', async () => {
      const m = t.meterWith({ lowBalanceThreshold: 10 })
      await m.grant('a', 100)
      const seen = record(m)
      await m.debit('a', 100)
      expect(alerts(seen)).toEqual([
        ['low', 0],
        ['depleted', 0],
      ])
    })

    test('events: without a threshold only depleted and recovered fire', async () => {
      const seen = record(t.meter)
      await t.meter.grant('a', 10)
      await t.meter.debit('a', 9)
      await t.meter.debit('a', 1)
      await t.meter.grant('a', 1)
      expect(alerts(seen)).toEqual([
        ['depleted', 0],
        ['recovered', 1],
      ])
    })

    test('events: recovered fires once when available goes back above the threshold', async () => {
      const m = t.meterWith({ lowBalanceThreshold: 50 })
      await m.grant('a', 100)
      const seen = record(m)
      await m.debit('a', 60)
      await m.grant('a', 5)
      // 45 is still low: nothing yet.
      await m.grant('a', 10)
      await m.grant('a', 10)
      expect(alerts(seen)).toEqual([
        ['low', 40],
        ['recovered', 55],
      ])
    })

    test('events: depleted → recovered when credits come back', async () => {
      const m = t.meterWith({ lowBalanceThreshold: 5 })
      await m.grant('a', 10)
      await m.debit('a', 10)
      const seen = record(m)
      // Back to low (not ok) is no crossing to report.
      await m.grant('a', 3)
      await m.grant('a', 30)
      expect(alerts(seen)).toEqual([['recovered', 33]])
    })

    test("events: a new account's first evaluation fires nothing", async () => {
      const m = t.meterWith({ lowBalanceThreshold: 50 })
      const seen = record(m)
      await m.balance('a', { fresh: true })
      // Granting below the threshold: the account never was above it, so nothing was crossed.
      await m.grant('a', 10)
      expect(alerts(seen)).toEqual([])
      await m.debit('a', 10)
      expect(alerts(seen)).toEqual([['depleted', 0]])
    })

    test('events: holds count — reserving the last credits depletes, releasing recovers', async () => {
      await t.meter.grant('a', 20)
      const seen = record(t.meter)
      const h = await t.meter.reserve('a', 20)
      await h.release()
      expect(alerts(seen)).toEqual([
        ['depleted', 0],
        ['recovered', 20],
      ])
    })

    test('events: expiry that empties the account fires depleted on the touch', async () => {
      await t.meter.grant('a', 20, { expiresAt: START + HOUR })
      const seen = record(t.meter)
      t.advance(HOUR)
      await t.balance('a')
      expect(alerts(seen)).toEqual([['depleted', 0]])
    })

    test('events: granted fires for grants, redemptions and cycle periods', async () => {
      const seen = record(t.meter)
      const g = await t.meter.grant('a', 100)
      const { codes } = await t.meter.createCodes({ credits: 7, count: 1 })
      const r = await t.meter.redeem('a', codes[0]!)
      await t.meter.startCycle('a', { amount: 30, every: 'day' })
      const granted = seen.filter((e) => e.type === 'granted')
      expect(granted).toMatchObject([
        { type: 'granted', account: 'a', grantId: g.id, amount: 100, tenant: t.tenant },
        { type: 'granted', account: 'a', grantId: r.grantId, amount: 7 },
        { type: 'granted', account: 'a', amount: 30 },
      ])
    })

    test('events: committed and released fire with the amounts', async () => {
      await t.meter.grant('a', 100)
      const seen = record(t.meter)
      const h1 = await t.meter.reserve('a', 30)
      await h1.commit(20)
      const h2 = await t.meter.reserve('a', 15)
      await h2.release()
      const h3 = await t.meter.reserve('a', 10)
      await h3.commit(200)
      expect(seen.filter((e) => e.type === 'committed' || e.type === 'released')).toMatchObject([
        { type: 'committed', account: 'a', holdId: h1.id, charged: 20, shortfall: 0 },
        { type: 'released', account: 'a', holdId: h2.id, freed: 15 },
        { type: 'committed', holdId: h3.id, charged: 80, shortfall: 120 },
      ])
    })

    test('events: expired fires for buckets and for holds past their TTL', async () => {
      const g = await t.meter.grant('a', 100, { expiresAt: START + HOUR })
      await t.meter.grant('a', 10)
      const h = await t.meter.reserve('a', 5, { ttlMs: 10 * SECOND })
      const seen = record(t.meter)
      t.advance(2 * HOUR)
      await t.balance('a')
      expect(seen.filter((e) => e.type === 'expired')).toMatchObject([
        { type: 'expired', account: 'a', kind: 'hold', id: h.id, amount: 5 },
        { type: 'expired', account: 'a', kind: 'bucket', id: g.id, amount: 100 },
      ])
    })

    test('events: a replay fires no events', async () => {
      await t.meter.grant('a', 100, { idempotencyKey: 'g' })
      const seen = record(t.meter)
      await t.meter.grant('a', 100, { idempotencyKey: 'g' })
      expect(seen).toEqual([])
    })

    test('events: a throwing listener does not fail the operation', async () => {
      const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
      try {
        t.meter.on('granted', () => {
          throw new Error('listener bug')
        })
        const g = await t.meter.grant('a', 10)
        expect(g.balance.total).toBe(10)
        expect(warn).toHaveBeenCalledTimes(1)
      } finally {
        warn.mockRestore()
      }
    })

    test('events: the function returned by on() unsubscribes', async () => {
      const seen: number[] = []
      const off = t.meter.on('granted', (e) => seen.push(e.amount))
      await t.meter.grant('a', 1)
      off()
      await t.meter.grant('a', 2)
      expect(seen).toEqual([1])
    })
  })
}
