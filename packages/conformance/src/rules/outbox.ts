import type { Meter, Store, StoredEvent } from '@tollgate/core'
import type { AccountChange } from '@tollgate/core/store'
import { expect } from 'vitest'
import { HOUR, type MeterContext, ruleGroup, SECOND, START, useMeter } from '../context.js'
import type { ConformanceOptions } from '../describe-store-conformance.js'

/** Every durable event of the meter's tenant, paged through `events()`. */
async function allEvents(m: Meter, after = 0): Promise<StoredEvent[]> {
  const out: StoredEvent[] = []
  let from = after
  for (;;) {
    const page = await m.events({ after: from, limit: 7 })
    out.push(...page)
    if (page.length < 7) return out
    from = page[page.length - 1]!.seq
  }
}

/** `[type, amount-ish figure]` of each event, for compact comparisons. */
function brief(events: StoredEvent[]): [string, unknown][] {
  return events.map((e) => [
    e.type,
    e.data.amount ?? (e.type === 'debt_changed' ? e.data.debt : e.data.available),
  ])
}

/**
 * Watches `store` until a change names `account` of `tenant` with a `seq` above `after`: `seen`
 * resolves with it. A store may send its notices after commit (PostgreSQL does, gathered), so
 * the notice of a change made before subscribing can still arrive: `after` tells it apart.
 */
async function watchFor(
  store: Store,
  tenant: string,
  account: string,
  after = Number.NEGATIVE_INFINITY,
): Promise<{ seen: Promise<AccountChange>; close: () => Promise<void> }> {
  let found: (c: AccountChange) => void = () => {}
  const seen = new Promise<AccountChange>((resolve) => {
    found = resolve
  })
  const sub = await store.watch!({
    onChanges(changes) {
      const c = changes.find((x) => x.tenant === tenant && x.account === account && x.seq > after)
      if (c) found(c)
    },
  })
  return { seen, close: () => sub.close() }
}

/**
 * DESIGN §5 and docs/store.md "Outbox": every change leaves a durable event, written with the
 * change, in order per account; `events()` pages by sequence and filters by tenant; `watch()`
 * tells about committed changes, from this store or another over the same data.
 */
export function outboxRules(options: ConformanceOptions): void {
  let t: MeterContext
  ruleGroup(
    options,
    'outbox',
    (test) => {
      t = useMeter(options)
      const events: ['events'] = ['events']

      test(
        'outbox: every operation writes its event, in order, with its figures',
        async () => {
          const m = t.meter
          const g = await m.grant('a', 100, { metadata: { order: 'o1' } })
          await m.debit('a', 10)
          const h = await m.reserve('a', 30)
          await m.increase(h.id, 5)
          await h.commit(20)
          const h2 = await m.reserve('a', 5)
          await h2.release()
          await m.adjust('a', -3, { reason: 'fix' })
          await m.adjust('a', 4)
          const { codes } = await m.createCodes({ credits: 7, count: 1 })
          const r = await m.redeem('a', codes[0]!)
          await m.startCycle('a', { amount: 30, every: 'day' })
          const seen = await allEvents(m)
          expect(brief(seen)).toEqual([
            ['granted', 100],
            ['debited', 10],
            ['reserved', 30],
            ['reserved', 5],
            ['committed', 20],
            ['reserved', 5],
            ['released', 5],
            ['adjusted', -3],
            ['adjusted', 4],
            ['redeemed', 7],
            ['granted', 30],
          ])
          expect(seen.map((e) => e.data.balanceAfter)).toEqual([
            100, 90, 90, 90, 70, 70, 70, 67, 71, 78, 108,
          ])
          for (const e of seen) {
            expect(e).toMatchObject({ tenant: t.tenant, account: 'a', at: START })
          }
          expect(seen[0]!.data).toMatchObject({
            entryType: 'grant',
            grantId: g.id,
            metadata: { order: 'o1' },
          })
          expect(seen[4]!.data).toMatchObject({ holdId: h.id, heldDelta: -35, delta: -20 })
          expect(seen[6]!.data).toMatchObject({ holdId: h2.id })
          expect(seen[7]!.data).toMatchObject({ reason: 'fix' })
          expect(seen[8]!.data).toMatchObject({ grantId: expect.any(String) })
          expect(seen[9]!.data).toMatchObject({
            redemptionId: r.redemptionId,
            grantId: r.grantId,
          })
          expect(seen[10]!.data).toMatchObject({ entryType: 'cycle_grant' })
          // Increasing sequence, and each event's id is stable across reads.
          for (let i = 1; i < seen.length; i++)
            expect(seen[i]!.seq).toBeGreaterThan(seen[i - 1]!.seq)
          expect(new Set(seen.map((e) => e.id)).size).toBe(seen.length)
          expect((await allEvents(m)).map((e) => e.id)).toEqual(seen.map((e) => e.id))
        },
        events,
      )

      test(
        'outbox: expiry of holds and buckets is written as expired, at its due time',
        async () => {
          const g = await t.meter.grant('a', 100, { expiresAt: START + HOUR })
          await t.meter.grant('a', 10)
          const h = await t.meter.reserve('a', 5, { ttlMs: 10 * SECOND })
          const before = await allEvents(t.meter)
          t.advance(2 * HOUR)
          await t.balance('a')
          const seen = await allEvents(t.meter, before[before.length - 1]!.seq)
          expect(seen).toMatchObject([
            {
              type: 'expired',
              at: START + 10 * SECOND,
              data: { kind: 'hold', holdId: h.id, amount: 5 },
            },
            {
              type: 'expired',
              at: START + HOUR,
              data: { kind: 'bucket', grantId: g.id, amount: 100 },
            },
          ])
        },
        events,
      )

      test(
        'outbox: alerts are written once per crossing, after the change that crossed',
        async () => {
          const m = t.meterWith({ lowBalanceThreshold: 50 })
          await m.grant('a', 100)
          await m.debit('a', 60)
          await m.debit('a', 10)
          await m.debit('a', 30)
          await m.debit('a', 0)
          await m.grant('a', 80)
          expect(brief(await allEvents(m))).toEqual([
            ['granted', 100],
            ['debited', 60],
            ['low', 40],
            ['debited', 10],
            ['debited', 30],
            ['depleted', 0],
            ['debited', 0],
            ['granted', 80],
            ['recovered', 80],
          ])
        },
        events,
      )

      test(
        'outbox: debt changes are written as debt_changed with the debt after',
        async () => {
          const h = await t.meter.reserve('a', 0)
          await h.commit(40, { overage: 'overdraft' })
          await t.meter.grant('a', 25)
          const seen = await allEvents(t.meter)
          expect(seen.filter((e) => e.type === 'debt_changed').map((e) => e.data)).toEqual([
            { debt: 40, debtDelta: 40 },
            { debt: 15, debtDelta: -25 },
          ])
          // After the entry that moved the debt.
          const types = seen.map((e) => e.type)
          expect(types.indexOf('debt_changed')).toBeGreaterThan(types.indexOf('committed'))
        },
        events,
      )

      test(
        'outbox: refused operations and replays write no events',
        async () => {
          await t.meter.grant('a', 10, { idempotencyKey: 'g1' })
          const before = await allEvents(t.meter)
          await t.meter.grant('a', 10, { idempotencyKey: 'g1' })
          await expect(t.meter.debit('a', 11)).rejects.toMatchObject({
            code: 'insufficient_credits',
          })
          await expect(t.meter.grant('a', 11, { idempotencyKey: 'g1' })).rejects.toMatchObject({
            code: 'idempotency_conflict',
          })
          await expect(t.meter.commit('hld_unknown')).rejects.toMatchObject({ code: 'not_found' })
          await t.meter.configure('a', { lowBalanceThreshold: 5 })
          expect(await allEvents(t.meter)).toEqual(before)
        },
        events,
      )

      test(
        'outbox: events() pages by sequence and keeps tenants apart',
        async () => {
          const other = t.otherTenant()
          await t.meter.grant('a', 1)
          await other.grant('a', 2)
          await t.meter.grant('b', 3)
          await other.debit('a', 2)
          const mine = await allEvents(t.meter)
          const theirs = await allEvents(other)
          expect(brief(mine)).toEqual([
            ['granted', 1],
            ['granted', 3],
          ])
          expect(mine.map((e) => e.account)).toEqual(['a', 'b'])
          expect(brief(theirs)).toEqual([
            ['granted', 2],
            ['debited', 2],
            ['depleted', 0],
          ])
          expect(theirs.every((e) => e.tenant === other.tenant)).toBe(true)
          // Every tenant at once (a delivery worker): both, interleaved in sequence order.
          const first = Math.min(mine[0]!.seq, theirs[0]!.seq)
          const all: StoredEvent[] = []
          let after = first - 1
          for (let i = 0; i < 100; i++) {
            const page = await t.store.events!({ tenant: null, after, limit: 2 })
            all.push(...page)
            if (page.length < 2) break
            after = page[page.length - 1]!.seq
          }
          const ours = all.filter((e) => e.tenant === t.tenant || e.tenant === other.tenant)
          expect(ours.map((e) => e.seq)).toEqual(
            [...mine, ...theirs].map((e) => e.seq).sort((x, y) => x - y),
          )
          expect(ours.map((e) => e.tenant)).toEqual([
            t.tenant,
            other.tenant,
            t.tenant,
            other.tenant,
            other.tenant,
          ])
          // A page ends where asked, and reading after the last gives nothing new.
          expect(await t.meter.events({ after: mine[0]!.seq, limit: 1 })).toEqual([mine[1]])
          expect(await t.meter.events({ after: mine[1]!.seq })).toEqual([])
        },
        events,
      )

      test(
        'outbox: meter.subscribe() hands over every event in order, resumable from a seq',
        async () => {
          await t.meter.grant('a', 10)
          await t.meter.debit('a', 4)
          const got: StoredEvent[] = []
          let enough: () => void = () => {}
          const reached = new Promise<void>((resolve) => {
            enough = resolve
          })
          const sub = t.meter.subscribe({
            onEvent(e) {
              got.push(e)
              if (got.length === 3) enough()
            },
          })
          await t.meter.debit('a', 1)
          await reached
          await sub.close()
          expect(brief(got)).toEqual([
            ['granted', 10],
            ['debited', 4],
            ['debited', 1],
          ])
          expect(sub.position).toBe(got[2]!.seq)
          // Resuming after the first event hands over the rest again, not the first.
          const again: StoredEvent[] = []
          let rest: () => void = () => {}
          const done = new Promise<void>((resolve) => {
            rest = resolve
          })
          const sub2 = t.meter.subscribe({
            after: got[0]!.seq,
            onEvent(e) {
              again.push(e)
              if (again.length === 2) rest()
            },
          })
          await done
          await sub2.close()
          expect(again.map((e) => e.id)).toEqual([got[1]!.id, got[2]!.id])
        },
        events,
      )

      test('change feed: watch() tells about a committed change, from another store on the same data', async () => {
        const peer = options.createPeer ? await options.createPeer(t.store) : t.store
        try {
          await t.meter.grant('w', 1)
          const [last] = await t.meter.events({ after: 0, limit: 1000 }).then((e) => e.slice(-1))
          // Subscribed before the change, so the change cannot come before the listener. The
          // grant's own notice may still come after it: the debit's is the one past `last`
          // (a store whose notices never pass the sequence of the change fails by timing out).
          const watch = await watchFor(peer, t.tenant, 'w', last?.seq)
          try {
            await t.meter.debit('w', 1)
            const change = await watch.seen
            expect(change).toMatchObject({ tenant: t.tenant, account: 'w' })
          } finally {
            await watch.close()
          }
        } finally {
          if (peer !== t.store) await peer.close()
        }
      }, ['watch', 'events'])

      test('change feed: a closed subscription hears nothing more', async () => {
        const heard: AccountChange[] = []
        const sub = await t.store.watch!({ onChanges: (c) => heard.push(...c) })
        await sub.close()
        await t.meter.grant('x', 1)
        // A second watcher that is open proves the change was told to those listening.
        const watch = await watchFor(t.store, t.tenant, 'x')
        await t.meter.grant('x', 1)
        await watch.seen
        await watch.close()
        expect(heard).toEqual([])
      }, ['watch'])
    },
    () => t.store,
  )
}
