import { isTollgateError, type UsagePeriod } from '@tollgate/core'
import { expect } from 'vitest'
import { DAY, HOUR, type MeterContext, ruleGroup, SECOND, START, useMeter } from '../context.js'
import type { ConformanceOptions } from '../describe-store-conformance.js'

const ZERO = { granted: 0, spent: 0, released: 0, expired: 0 }

/** The figures of a report's periods without their starts, for compact expectations. */
function figures(periods: readonly UsagePeriod[]) {
  return periods.map(({ start: _s, ...f }) => f)
}

function sum(periods: readonly UsagePeriod[]) {
  const total = { ...ZERO }
  for (const p of periods) {
    total.granted += p.granted
    total.spent += p.spent
    total.released += p.released
    total.expired += p.expired
  }
  return total
}

/** The invalid_input field of what `fn` throws. */
async function refusedField(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn()
  } catch (err) {
    if (isTollgateError(err, 'invalid_input')) return (err as unknown as { field: string }).field
    throw err
  }
  throw new Error('expected invalid_input')
}

/**
 * Usage over time (DESIGN §5, docs/usage.md): the ledger's figures per UTC period, per account
 * and tenant-wide, grouped by a metadata key.
 */
export function usageRules(options: ConformanceOptions): void {
  let t: MeterContext
  ruleGroup(
    options,
    'usage',
    (test) => {
      t = useMeter(options)
      const DAY0 = START - (START % DAY)

      test('usage: every period of the window is listed, zeros included, widened to whole UTC periods', async () => {
        await t.meter.grant('a', 100)
        const r = await t.meter.usage('a', {
          interval: 'day',
          from: DAY0 - DAY + 5 * HOUR,
          to: DAY0 + DAY + 1,
        })
        expect(r).toMatchObject({
          account: 'a',
          interval: 'day',
          from: DAY0 - DAY,
          to: DAY0 + 2 * DAY,
          groupBy: null,
        })
        expect(r.groups).toBeUndefined()
        expect(r.periods.map((p) => p.start)).toEqual([DAY0 - DAY, DAY0, DAY0 + DAY])
        expect(figures(r.periods)).toEqual([ZERO, { ...ZERO, granted: 100 }, ZERO])
      }, ['usage'])

      test('usage: spent counts debits and commits; released counts releases, hold TTL expiry and the unspent part of commits; expired counts bucket expiry', async () => {
        await t.meter.grant('a', 100, { expiresAt: START + 3 * HOUR })
        await t.meter.debit('a', 10)
        const h1 = await t.meter.reserve('a', 20)
        await h1.commit(15)
        const h2 = await t.meter.reserve('a', 10)
        await h2.release()
        await t.meter.reserve('a', 5, { ttlMs: SECOND })
        t.advance(HOUR)
        expect((await t.balance('a')).held).toBe(0)
        t.advance(2 * HOUR)
        expect((await t.balance('a')).total).toBe(0)
        const r = await t.meter.usage('a', { interval: 'hour', from: START, to: START + 4 * HOUR })
        expect(figures(r.periods)).toEqual([
          { granted: 100, spent: 25, released: 20, expired: 0 },
          ZERO,
          ZERO,
          { ...ZERO, expired: 75 },
        ])
      }, ['usage'])

      test('usage: a commit above its hold counts all it charged as spent and frees nothing', async () => {
        await t.meter.grant('a', 50)
        const h = await t.meter.reserve('a', 10)
        await h.commit(30)
        const r = await t.meter.usage('a', { interval: 'day', from: START, to: START + 1 })
        expect(figures(r.periods)).toEqual([{ ...ZERO, granted: 50, spent: 30 }])
      }, ['usage'])

      test('usage: granted counts grants, cycle grants and redemptions; adjustments count signed', async () => {
        await t.meter.grant('a', 100)
        await t.meter.startCycle('a', { amount: 30, every: 'day' })
        const { codes } = await t.meter.createCodes({ credits: 7, count: 1 })
        await t.meter.redeem('a', codes[0]!)
        await t.meter.adjust('a', 5, { reason: 'goodwill' })
        await t.meter.adjust('a', -12, { reason: 'correction' })
        const r = await t.meter.usage('a', { interval: 'day', from: START, to: START + 1 })
        expect(figures(r.periods)).toEqual([{ ...ZERO, granted: 100 + 30 + 7 + 5 - 12 }])
        const b = await t.balance('a')
        expect(sum(r.periods).granted).toBe(b.total)
      }, ['usage'])

      test('usage: tenant-wide sums every account of the tenant and nothing of another tenant', async () => {
        await t.meter.grant('a', 100)
        await t.meter.grant('b', 40)
        await t.meter.debit('a', 7)
        await t.meter.debit('b', 3)
        const other = t.otherTenant()
        await other.grant('a', 1_000)
        await other.debit('a', 500)
        const r = await t.meter.usage(null, { interval: 'day', from: START, to: START + 1 })
        expect(r.account).toBeNull()
        expect(figures(r.periods)).toEqual([{ ...ZERO, granted: 140, spent: 10 }])
        const none = await t.meter.usage('nobody', { interval: 'day', from: START, to: START + 1 })
        expect(figures(none.periods)).toEqual([ZERO])
      }, ['usage'])

      test('usage: groupBy breaks the figures down by a metadata value; entries without it are the null group', async () => {
        await t.meter.grant('a', 1_000, { metadata: { plan: 'pro' } })
        await t.meter.debit('a', 10, { metadata: { feature: 'chat' } })
        await t.meter.debit('a', 30, { metadata: { feature: 'search', tier: 2 } })
        await t.meter.debit('a', 5, { metadata: { feature: 'chat' } })
        await t.meter.debit('a', 1, { metadata: { feature: { nested: true } } })
        const h = await t.meter.reserve('a', 9, { metadata: { feature: 'chat' } })
        await h.commit(4, { metadata: { feature: 'chat' } })
        const r = await t.meter.usage('a', {
          interval: 'day',
          from: START,
          to: START + 1,
          groupBy: 'feature',
        })
        expect(r.groupBy).toBe('feature')
        expect(r.groups?.map((g) => [g.value, figures(g.periods)])).toEqual([
          ['search', [{ ...ZERO, spent: 30 }]],
          ['chat', [{ ...ZERO, spent: 19, released: 5 }]],
          [null, [{ ...ZERO, granted: 1_000, spent: 1 }]],
        ])
        expect(r.other).toBeNull()
        const tiers = await t.meter.usage(null, {
          interval: 'day',
          from: START,
          to: START + 1,
          groupBy: 'tier',
        })
        expect(tiers.groups?.map((g) => g.value)).toEqual(['2', null])
      }, ['usage'])

      test('usage: beyond 50 values the 50 with the most spent are listed and the rest summed in other', async () => {
        await t.meter.grant('a', 100_000)
        for (let i = 0; i < 53; i++) {
          await t.meter.debit('a', i + 1, { metadata: { user: `u${String(i).padStart(2, '0')}` } })
        }
        const r = await t.meter.usage('a', {
          interval: 'day',
          from: START,
          to: START + 1,
          groupBy: 'user',
        })
        const listed = r.groups!.filter((g) => g.value !== null)
        expect(listed).toHaveLength(50)
        expect(listed[0]!.value).toBe('u52')
        expect(listed[49]!.value).toBe('u03')
        expect(r.other).toEqual({
          count: 3,
          periods: [{ start: DAY0, ...ZERO, spent: 1 + 2 + 3 }],
        })
        expect(r.groups!.at(-1)).toEqual({
          value: null,
          periods: [{ start: DAY0, ...ZERO, granted: 100_000 }],
        })
      }, ['usage'])

      test('usage: days and months are sums of UTC hours, calendar months included', async () => {
        // START is Jan 31 12:00 UTC: the month boundary is 12 hours on.
        await t.meter.grant('a', 1_000)
        await t.meter.debit('a', 1)
        t.advance(11 * HOUR + 59 * 60 * SECOND)
        await t.meter.debit('a', 2)
        t.advance(60 * SECOND)
        await t.meter.debit('a', 4)
        t.advance(30 * DAY)
        await t.meter.debit('a', 8)
        const from = Date.UTC(2028, 0, 1)
        const to = Date.UTC(2028, 2, 15)
        const months = await t.meter.usage('a', { interval: 'month', from, to })
        expect(months.periods.map((p) => [p.start, p.spent])).toEqual([
          [Date.UTC(2028, 0, 1), 3],
          [Date.UTC(2028, 1, 1), 4],
          [Date.UTC(2028, 2, 1), 8],
        ])
        expect(months.to).toBe(Date.UTC(2028, 3, 1))
        const days = await t.meter.usage('a', { interval: 'day', from, to })
        const hours = await t.meter.usage('a', {
          interval: 'hour',
          from: START - HOUR,
          to: START + 30 * DAY + 13 * HOUR,
        })
        expect(sum(days.periods)).toEqual(sum(months.periods))
        expect(sum(hours.periods)).toEqual(sum(months.periods))
        expect(days.periods.find((p) => p.start === Date.UTC(2028, 0, 31))?.spent).toBe(3)
      }, ['usage'])

      test('usage: a bad interval, window or key is invalid_input naming the field', async () => {
        const q = { interval: 'day' as const, from: START, to: START + DAY }
        expect(
          await refusedField(() => t.meter.usage('a', { ...q, interval: 'week' as never })),
        ).toBe('interval')
        expect(await refusedField(() => t.meter.usage('a', { ...q, to: START }))).toBe('from')
        expect(
          await refusedField(() =>
            t.meter.usage('a', { interval: 'hour', from: START, to: START + 1_001 * HOUR }),
          ),
        ).toBe('from')
        expect(await refusedField(() => t.meter.usage('a', { ...q, groupBy: '' }))).toBe('groupBy')
        expect(await refusedField(() => t.meter.usage('a', { ...q, from: -1 }))).toBe('from')
        // 1,000 periods is the bound, not past it.
        const r = await t.meter.usage('a', {
          interval: 'hour',
          from: START,
          to: START + 1_000 * HOUR,
        })
        expect(r.periods).toHaveLength(1_000)
      }, ['usage'])
    },
    () => t.store,
  )
}
