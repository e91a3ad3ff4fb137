import { expect } from 'vitest'
import { DAY, HOUR, ruleGroup, START, useMeter } from '../context.js'
import type { ConformanceOptions } from '../describe-store-conformance.js'
import { expectLedgerReplays, ledgerOldestFirst, readLedger } from '../testing/ledger.js'

/** DESIGN §1 "Cycles": recurring grants, UTC periods, lazy materialisation, rollover, stop/replace. */
export function cycleRules(options: ConformanceOptions): void {
  ruleGroup(options, 'cycles', (test) => {
    const t = useMeter(options)

    /** The expiry of the account's only bucket (the current period's end). */
    async function bucketExpiries(account: string): Promise<(number | null)[]> {
      return (await t.balance(account)).buckets.map((b) => b.expiresAt)
    }

    test('cycle: startCycle grants the amount now, expiring at the period end', async () => {
      const c = await t.meter.startCycle('a', { amount: 100, every: 'day' })
      expect(typeof c.cycle.id).toBe('string')
      expect(c).toMatchObject({
        cycle: {
          account: 'a',
          amount: 100,
          every: 'day',
          rollover: null,
          anchor: START,
          periodStart: START,
          periodEnd: START + DAY,
          active: true,
        },
        replaced: null,
        replayed: false,
      })
      expect(c.balance).toMatchObject({ total: 100, available: 100 })
      expect(c.balance.buckets).toMatchObject([{ remaining: 100, expiresAt: START + DAY }])
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({
        type: 'cycle_grant',
        delta: 100,
        balanceAfter: 100,
        cycleId: c.cycle.id,
        at: START,
      })
    })

    test('cycle: day — refills at each period start; the last period’s credits expire', async () => {
      const c = await t.meter.startCycle('a', { amount: 100, every: 'day' })
      await t.meter.debit('a', 30)
      t.setNow(START + DAY - 1)
      expect((await t.balance('a')).total).toBe(70)
      t.setNow(START + DAY)
      expect(await t.balance('a')).toMatchObject({ total: 100 })
      expect(await bucketExpiries('a')).toEqual([START + 2 * DAY])
      const entries = await ledgerOldestFirst(t.meter, 'a')
      expect(entries.map((e) => [e.type, e.delta, e.at])).toEqual([
        ['cycle_grant', 100, START],
        ['debit', -30, START],
        ['expire', -70, START + DAY],
        ['cycle_grant', 100, START + DAY],
      ])
      expect(entries[2]).toMatchObject({ reason: 'cycle_end' })
      expect(entries[3]).toMatchObject({ cycleId: c.cycle.id })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('cycle: week — 7 × 24 h periods', async () => {
      await t.meter.startCycle('a', { amount: 70, every: 'week' })
      expect(await bucketExpiries('a')).toEqual([START + 7 * DAY])
      await t.meter.debit('a', 10)
      t.setNow(START + 7 * DAY - 1)
      expect((await t.balance('a')).total).toBe(60)
      t.setNow(START + 7 * DAY)
      expect((await t.balance('a')).total).toBe(70)
      expect(await bucketExpiries('a')).toEqual([START + 14 * DAY])
      await expectLedgerReplays(t.meter, 'a')
    })

    test('cycle: month across month ends in a leap year (Jan 31 → Feb 29 → Mar 31 → Apr 30)', async () => {
      const c = await t.meter.startCycle('a', { amount: 100, every: 'month' })
      const feb29 = Date.UTC(2028, 1, 29, 12)
      const mar31 = Date.UTC(2028, 2, 31, 12)
      const apr30 = Date.UTC(2028, 3, 30, 12)
      const may31 = Date.UTC(2028, 4, 31, 12)
      expect(c.cycle).toMatchObject({ periodStart: START, periodEnd: feb29 })
      expect(await bucketExpiries('a')).toEqual([feb29])
      t.setNow(feb29 - 1)
      expect(await bucketExpiries('a')).toEqual([feb29])
      t.setNow(feb29)
      expect(await bucketExpiries('a')).toEqual([mar31])
      t.setNow(mar31)
      expect(await bucketExpiries('a')).toEqual([apr30])
      t.setNow(apr30)
      expect(await bucketExpiries('a')).toEqual([may31])
      const grants = (await ledgerOldestFirst(t.meter, 'a')).filter((e) => e.type === 'cycle_grant')
      expect(grants.map((e) => e.at)).toEqual([START, feb29, mar31, apr30])
      await expectLedgerReplays(t.meter, 'a')
    })

    test('cycle: month in a non-leap year (Jan 31 → Feb 28 → Mar 31)', async () => {
      const jan31 = Date.UTC(2027, 0, 31, 12)
      const feb28 = Date.UTC(2027, 1, 28, 12)
      const mar31 = Date.UTC(2027, 2, 31, 12)
      t.setNow(jan31)
      await t.meter.startCycle('a', { amount: 100, every: 'month' })
      expect(await bucketExpiries('a')).toEqual([feb28])
      t.setNow(feb28)
      expect(await bucketExpiries('a')).toEqual([mar31])
      t.setNow(mar31)
      expect(await bucketExpiries('a')).toEqual([Date.UTC(2027, 3, 30, 12)])
    })

    test('cycle: month across a year end keeps the anchor day and time (Dec 31 → Jan 31 → Feb 29)', async () => {
      const dec31 = Date.UTC(2027, 11, 31, 23, 30)
      t.setNow(dec31)
      await t.meter.startCycle('a', { amount: 5, every: 'month' })
      expect(await bucketExpiries('a')).toEqual([Date.UTC(2028, 0, 31, 23, 30)])
      t.setNow(Date.UTC(2028, 0, 31, 23, 30))
      expect(await bucketExpiries('a')).toEqual([Date.UTC(2028, 1, 29, 23, 30)])
    })

    test('cycle: { days } — n × 24 h periods', async () => {
      await t.meter.startCycle('a', { amount: 30, every: { days: 3 } })
      expect(await bucketExpiries('a')).toEqual([START + 3 * DAY])
      t.setNow(START + 3 * DAY)
      expect(await bucketExpiries('a')).toEqual([START + 6 * DAY])
      expect((await t.balance('a')).total).toBe(30)
    })

    test('cycle: missed periods are materialised one by one on the next touch', async () => {
      await t.meter.startCycle('a', { amount: 100, every: 'day' })
      await t.meter.debit('a', 40)
      t.setNow(START + 3 * DAY + HOUR)
      expect((await t.balance('a')).total).toBe(100)
      expect(await bucketExpiries('a')).toEqual([START + 4 * DAY])
      const entries = await ledgerOldestFirst(t.meter, 'a')
      expect(entries.map((e) => [e.type, e.delta, e.at])).toEqual([
        ['cycle_grant', 100, START],
        ['debit', -40, START],
        ['expire', -60, START + DAY],
        ['cycle_grant', 100, START + DAY],
        ['expire', -100, START + 2 * DAY],
        ['cycle_grant', 100, START + 2 * DAY],
        ['expire', -100, START + 3 * DAY],
        ['cycle_grant', 100, START + 3 * DAY],
      ])
      await expectLedgerReplays(t.meter, 'a')
    })

    test('cycle: missed periods are materialised by sweep()', async () => {
      await t.meter.startCycle('a', { amount: 100, every: 'day' })
      t.setNow(START + 2 * DAY)
      expect((await t.meter.sweep()).accounts).toBe(1)
      const grants = (await readLedger(t.meter, 'a')).filter((e) => e.type === 'cycle_grant')
      expect(grants.map((e) => e.at)).toEqual([START + 2 * DAY, START + DAY, START])
    })

    test('cycle: rollover carries unspent credits into the next period, capped at max', async () => {
      await t.meter.startCycle('a', { amount: 100, every: 'day', rollover: { max: 30 } })
      await t.meter.debit('a', 50)
      t.setNow(START + DAY)
      expect((await t.balance('a')).total).toBe(130)
      const [grant, expire] = await readLedger(t.meter, 'a')
      expect(expire).toMatchObject({ type: 'expire', delta: -50, reason: 'cycle_end' })
      expect(grant).toMatchObject({ type: 'cycle_grant', delta: 130, metadata: { rollover: 30 } })
      // Under the cap, the whole leftover carries.
      await t.meter.debit('a', 120)
      t.setNow(START + 2 * DAY)
      expect((await t.balance('a')).total).toBe(110)
      await expectLedgerReplays(t.meter, 'a')
    })

    test('cycle: rollover never compounds past max', async () => {
      await t.meter.startCycle('a', { amount: 100, every: 'day', rollover: { max: 30 } })
      t.setNow(START + DAY)
      expect((await t.balance('a')).total).toBe(130)
      t.setNow(START + 2 * DAY)
      expect((await t.balance('a')).total).toBe(130)
      t.setNow(START + 5 * DAY)
      expect((await t.balance('a')).total).toBe(130)
      await expectLedgerReplays(t.meter, 'a')
    })

    test('cycle: no rollover without the option', async () => {
      await t.meter.startCycle('a', { amount: 100, every: 'day' })
      await t.meter.debit('a', 50)
      t.setNow(START + DAY)
      expect((await t.balance('a')).total).toBe(100)
      const [grant, expire] = await readLedger(t.meter, 'a')
      expect(expire).toMatchObject({ type: 'expire', delta: -50 })
      expect(grant).toMatchObject({ type: 'cycle_grant', delta: 100 })
    })

    test('cycle: stopCycle stops future refills; current credits stay until they expire', async () => {
      const started = await t.meter.startCycle('a', { amount: 100, every: 'day' })
      t.advance(12 * HOUR)
      const stopped = await t.meter.stopCycle('a')
      expect(stopped.cycle).toMatchObject({ id: started.cycle.id, active: false })
      expect(stopped.balance.total).toBe(100)
      t.setNow(START + DAY - 1)
      expect((await t.balance('a')).total).toBe(100)
      t.setNow(START + DAY)
      expect((await t.balance('a')).total).toBe(0)
      t.setNow(START + 5 * DAY)
      expect((await t.balance('a')).total).toBe(0)
      expect(await readLedger(t.meter, 'a', { types: ['cycle_grant'] })).toHaveLength(1)
      expect((await readLedger(t.meter, 'a'))[0]).toMatchObject({
        type: 'expire',
        delta: -100,
        at: START + DAY,
      })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('cycle: stopCycle without an active cycle is NotFoundError', async () => {
      await expect(t.meter.stopCycle('a')).rejects.toMatchObject({ code: 'not_found', status: 404 })
      await t.meter.startCycle('a', { amount: 10, every: 'day' })
      await t.meter.stopCycle('a')
      await expect(t.meter.stopCycle('a')).rejects.toMatchObject({ code: 'not_found' })
    })

    test('cycle: startCycle replaces an active cycle; the old credits stay until they expire', async () => {
      const daily = await t.meter.startCycle('a', { amount: 100, every: 'day' })
      t.advance(6 * HOUR)
      const weekly = await t.meter.startCycle('a', { amount: 500, every: 'week' })
      expect(weekly.replaced).toBe(daily.cycle.id)
      expect(weekly.cycle).toMatchObject({
        anchor: START + 6 * HOUR,
        periodEnd: START + 6 * HOUR + 7 * DAY,
        active: true,
      })
      expect(weekly.balance.total).toBe(600)
      t.setNow(START + DAY)
      expect((await t.balance('a')).total).toBe(500)
      t.setNow(START + 6 * HOUR + 7 * DAY - 1)
      expect((await t.balance('a')).total).toBe(500)
      // No daily refill ever came; the weekly one refills on its own anchor.
      const grants = await ledgerOldestFirst(t.meter, 'a')
      expect(
        grants.filter((e) => e.type === 'cycle_grant').map((e) => [e.cycleId, e.delta]),
      ).toEqual([
        [daily.cycle.id, 100],
        [weekly.cycle.id, 500],
      ])
      t.setNow(START + 6 * HOUR + 7 * DAY)
      expect((await t.balance('a')).total).toBe(500)
      expect(await readLedger(t.meter, 'a', { types: ['cycle_grant'] })).toHaveLength(3)
      await expectLedgerReplays(t.meter, 'a')
    })

    test('cycle: held credits at the period end stay with their hold', async () => {
      await t.meter.startCycle('a', { amount: 100, every: 'day' })
      t.setNow(START + 23 * HOUR)
      const h = await t.meter.reserve('a', 40, { ttlMs: 2 * HOUR })
      t.setNow(START + DAY)
      expect(await t.balance('a')).toMatchObject({ total: 140, held: 40, available: 100 })
      expect((await readLedger(t.meter, 'a', { types: ['expire'] }))[0]).toMatchObject({
        delta: -60,
        at: START + DAY,
      })
      expect(await h.commit(30)).toMatchObject({ charged: 30, freed: 10 })
      // The freed 10 belonged to the ended period: they leave, they do not join the new one.
      expect(await t.balance('a')).toMatchObject({ total: 100, held: 0 })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('cycle: amount ≥ 1 and a known period are required', async () => {
      await expect(t.meter.startCycle('a', { amount: 0, every: 'day' })).rejects.toMatchObject({
        code: 'invalid_input',
      })
      await expect(
        t.meter.startCycle('a', { amount: 1, every: 'year' as unknown as 'day' }),
      ).rejects.toMatchObject({ code: 'invalid_input' })
      await expect(
        t.meter.startCycle('a', { amount: 1, every: { days: 0 } }),
      ).rejects.toMatchObject({
        code: 'invalid_input',
      })
      expect(await readLedger(t.meter, 'a')).toEqual([])
    })
  })
}
