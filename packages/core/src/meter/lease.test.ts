import { describe, expect, it, vi } from 'vitest'
import { isTollgateError, StoreUnavailableError } from '../errors.js'
import { memoryStore } from '../store/memory-store.js'
import type { ExecuteRequest, Outcome, Store } from '../store/store.js'
import { countingStore, expectLedgerReplays, fullLedger } from '../test-support.js'
import { createMeter, type Meter, type MeterOptions } from './meter.js'

const T0 = Date.UTC(2030, 0, 1)
// Real timers never fire during these tests: flushes are called by hand.
const LEASE = { size: 20, ttlMs: 60_000, flushMs: 30_000 }

function setup(options: Partial<MeterOptions> = {}, store: Store = memoryStore()) {
  const clock = { now: T0 }
  const counting = countingStore(store)
  // Closing the leasing meter settles its leases but leaves the store open for `plain`.
  const shared: Store = { ...counting, close: async () => {} }
  const meter = createMeter({ clock: () => clock.now, lease: LEASE, ...options, store: shared })
  // The store's own view: a meter without a lease over the same store and tenant.
  const plain = createMeter({ clock: () => clock.now, store: shared, cache: false })
  return { clock, store: counting, meter, plain }
}

/** Reserve then commit `amount`; resolves to true when served, false when refused for credits. */
async function spend(meter: Meter, account: string, amount = 1): Promise<boolean> {
  try {
    const hold = await meter.reserve(account, amount, { ttlMs: 10_000 })
    await hold.commit()
    return true
  } catch (err) {
    if (isTollgateError(err, 'insufficient_credits')) return false
    throw err
  }
}

describe('leases', () => {
  it('serve reserves from one store hold: one round trip for many requests', async () => {
    const { meter, plain, store } = setup()
    await plain.grant('a', 100)
    const before = store.calls.execute
    for (let i = 0; i < 15; i++) expect(await spend(meter, 'a')).toBe(true)
    // One store reserve took the lease; 15 reserves and commits stayed in the process.
    expect(store.calls.execute - before).toBe(1)
    const held = await plain.balance('a')
    expect(held).toMatchObject({ total: 100, held: 20, available: 80 })
    const hold = await meter.reserve('a', 1)
    expect(hold.id.startsWith('lh_')).toBe(true)
    await hold.release()
  })

  it('a balance read through the meter counts its own lease', async () => {
    const { meter, plain } = setup()
    await plain.grant('a', 100)
    const hold = await meter.reserve('a', 5)
    await hold.commit(3)
    const pending = await meter.reserve('a', 4)
    expect(pending.balance).toMatchObject({ total: 97, held: 4, available: 93 })
    expect(await meter.balance('a')).toMatchObject({ total: 97, held: 4, available: 93 })
    // Other meters see the whole lease as held until it settles.
    expect(await plain.balance('a')).toMatchObject({ total: 100, held: 20, available: 80 })
    await pending.release()
    expect(await meter.balance('a', { fresh: true })).toMatchObject({
      total: 97,
      held: 0,
      available: 97,
    })
  })

  it('settle usage in one commit on flush, and return idle credits', async () => {
    const { meter, plain, clock } = setup()
    await plain.grant('a', 100)
    for (let i = 0; i < 7; i++) await spend(meter, 'a')
    await meter.flush()
    expect(await plain.balance('a')).toMatchObject({ total: 93, held: 0, available: 93 })
    const types = (await fullLedger(plain, 'a')).map((e) => [e.type, e.delta, e.heldDelta])
    expect(types).toEqual([
      ['grant', 100, 0],
      ['hold', 0, 20],
      ['commit', -7, -20],
    ])
    // A lease taken and not used settles (returns) once it has been idle for flushMs.
    await spend(meter, 'a')
    await meter.flush() // used: settles
    const h = await meter.reserve('a', 1)
    await h.release()
    await meter.flush() // not used since taken, but not idle for flushMs yet: kept
    expect((await plain.balance('a')).held).toBe(20)
    clock.now += LEASE.flushMs
    await meter.flush()
    expect(await plain.balance('a')).toMatchObject({ total: 92, held: 0 })
    await expectLedgerReplays(plain, 'a')
  })

  it('on the timer, a lease in use is replaced first, then settles (requests never wait)', async () => {
    const store = memoryStore()
    const meter = createMeter({ store, lease: { size: 20, ttlMs: 2_000, flushMs: 40 } })
    const plain = createMeter({ store, cache: false })
    await plain.grant('a', 100)
    for (let i = 0; i < 5; i++) await spend(meter, 'a')
    await vi.waitFor(
      async () => {
        const types = (await fullLedger(plain, 'a')).map((e) => e.type)
        // The replacement was taken before the used lease settled its 5 credits.
        expect(types).toEqual(['grant', 'hold', 'hold', 'commit'])
      },
      { timeout: 2_000, interval: 20 },
    )
    expect(await meter.balance('a', { fresh: true })).toMatchObject({ total: 95, available: 95 })
    // The replacement, unused, goes back once idle for flushMs.
    await vi.waitFor(
      async () => expect(await plain.balance('a')).toMatchObject({ total: 95, held: 0 }),
      { timeout: 2_000, interval: 20 },
    )
    await meter.close()
  })

  it('a lease running low takes the next one ahead; one that runs out settles at once', async () => {
    const { meter, plain, store } = setup({ lease: { ...LEASE, size: 8 } })
    await plain.grant('a', 100)
    for (let i = 0; i < 8; i++) await spend(meter, 'a')
    // Below a quarter left, the next lease was taken in the background; the used-up one
    // settled as soon as its last hold resolved, without a flush.
    await vi.waitFor(async () =>
      expect((await fullLedger(plain, 'a')).map((e) => [e.type, e.delta, e.heldDelta])).toEqual([
        ['grant', 100, 0],
        ['hold', 0, 8],
        ['hold', 0, 8],
        ['commit', -8, -8],
      ]),
    )
    // The reserve that found the first lease empty did not wait for the store.
    const before = store.calls.execute
    expect(await spend(meter, 'a')).toBe(true)
    expect(store.calls.execute).toBe(before)
    expect(await meter.balance('a', { fresh: true })).toMatchObject({ total: 91, available: 91 })
  })

  it('never spend more than the leased credits, however many requests race', async () => {
    const { meter, plain } = setup()
    await plain.grant('a', 50)
    const results = await Promise.all(Array.from({ length: 200 }, () => spend(meter, 'a')))
    expect(results.filter(Boolean)).toHaveLength(50)
    await meter.close()
    expect(await plain.balance('a')).toMatchObject({ total: 0, held: 0, available: 0 })
    await expectLedgerReplays(plain, 'a')
  })

  it('two meters leasing one account never overspend it', async () => {
    const store = memoryStore()
    const a = setup({}, store)
    const b = createMeter({ clock: () => a.clock.now, lease: LEASE, store })
    await a.plain.grant('x', 50)
    const meters = [a.meter, b]
    const results: boolean[] = []
    for (let round = 0; round < 10; round++) {
      results.push(
        ...(await Promise.all(Array.from({ length: 20 }, (_, i) => spend(meters[i % 2]!, 'x')))),
      )
      // Usage settles now and then, so the credits move between the two meters.
      await Promise.all(meters.map((m) => m.flush()))
    }
    await Promise.all(meters.map((m) => m.close()))
    const served = results.filter(Boolean).length
    expect(served).toBe(50)
    expect(await a.plain.balance('x')).toMatchObject({ total: 0, held: 0 })
    await expectLedgerReplays(a.plain, 'x')
  })

  it('a meter that dies loses at most its unsettled usage, bounded by the lease', async () => {
    const { meter, plain, clock } = setup()
    await plain.grant('a', 100)
    for (let i = 0; i < 7; i++) await spend(meter, 'a')
    // The process dies: nothing settles. After the lease TTL the store returns the hold.
    clock.now += LEASE.ttlMs
    await plain.sweep()
    const after = await plain.balance('a')
    expect(after).toMatchObject({ total: 100, held: 0, available: 100 })
    // The 7 credits served were never charged: the loss is the unsettled usage (≤ size).
    expect(100 - after.total).toBeLessThanOrEqual(LEASE.size)
  })

  it('take what is left when less than a lease remains, and refuse beyond it', async () => {
    const { meter, plain } = setup()
    await plain.grant('a', 5)
    expect(await spend(meter, 'a', 3)).toBe(true)
    expect(await spend(meter, 'a', 2)).toBe(true)
    await expect(meter.reserve('a', 1)).rejects.toMatchObject({
      code: 'insufficient_credits',
      required: 1,
      available: 0,
    })
    await meter.close()
    expect(await plain.balance('a')).toMatchObject({ total: 0, held: 0 })
  })

  it('a reserve larger than the lease, or with a key or metadata, goes to the store', async () => {
    const { meter, plain } = setup()
    await plain.grant('a', 100)
    const big = await meter.reserve('a', 30)
    expect(big.id.startsWith('lh_')).toBe(false)
    const keyed = await meter.reserve('a', 1, { idempotencyKey: 'k1' })
    expect(keyed.id.startsWith('lh_')).toBe(false)
    const tagged = await meter.reserve('a', 1, { metadata: { job: 'x' } })
    expect(tagged.id.startsWith('lh_')).toBe(false)
    await Promise.all([big.release(), keyed.release(), tagged.release()])
  })

  it('a local hold resolves once, replays under its key, and expires', async () => {
    const { meter, plain, clock } = setup()
    await plain.grant('a', 100)
    const h = await meter.reserve('a', 5, { ttlMs: 1_000 })
    const first = await h.commit(4, { idempotencyKey: 'c1' })
    expect(first).toMatchObject({ charged: 4, freed: 1, shortfall: 0, replayed: false })
    expect(await h.commit(4, { idempotencyKey: 'c1' })).toMatchObject({
      charged: 4,
      replayed: true,
    })
    await expect(h.commit(4)).rejects.toMatchObject({ code: 'hold_resolved' })
    await expect(h.release()).rejects.toMatchObject({ code: 'hold_resolved' })
    const late = await meter.reserve('a', 5, { ttlMs: 1_000 })
    clock.now += 1_000
    await expect(late.commit()).rejects.toMatchObject({ code: 'hold_expired' })
    await expect(meter.commit('lh_nope_1')).rejects.toMatchObject({ code: 'not_found' })
    const ext = await meter.reserve('a', 2, { ttlMs: 1_000 })
    const extended = await ext.extend(5_000)
    expect(extended.expiresAt).toBe(clock.now + 5_000)
    clock.now += 2_000
    await ext.commit()
    await meter.close()
    expect(await plain.balance('a')).toMatchObject({ total: 94, held: 0 })
    await expectLedgerReplays(plain, 'a')
  })

  it('overage on a local hold: reject refuses, clamp takes what the lease has left', async () => {
    const { meter, plain } = setup({ overage: 'reject' })
    await plain.grant('a', 100)
    const h = await meter.reserve('a', 5)
    await expect(h.commit(6)).rejects.toMatchObject({ code: 'overage', held: 5, actual: 6 })
    const r = await h.commit(30, { overage: 'clamp' })
    // 5 held + the 15 left in the 20-credit lease; the rest is the shortfall.
    expect(r).toMatchObject({ charged: 20, shortfall: 10, freed: 0 })
    const other = await meter.reserve('a', 1)
    await expect(other.commit(1, { metadata: { a: 1 } })).rejects.toMatchObject({
      code: 'invalid_input',
      field: 'metadata',
    })
    await other.release()
    await meter.close()
    expect((await plain.balance('a')).total).toBe(80)
  })

  it('a local hold grows from its lease, within the loss bound, without a store round trip', async () => {
    const { meter, plain, store } = setup()
    await plain.grant('a', 100)
    const h = await meter.reserve('a', 5)
    expect(h.id.startsWith('lh_')).toBe(true)
    const before = store.calls.execute
    const grown = await h.increase(10)
    expect(grown).toMatchObject({ holdId: h.id, account: 'a', amount: 15, added: 10 })
    expect(grown.balance).toMatchObject({ total: 100, held: 15, available: 85 })
    expect(h.amount).toBe(15)
    expect(store.calls.execute - before).toBe(0)
    // 5 credits are left in the lease and the bound: more is refused, the hold untouched.
    await expect(h.increase(6)).rejects.toMatchObject({
      code: 'insufficient_credits',
      required: 6,
      available: 5,
    })
    expect(await meter.increase(h.id, 6, { partial: true })).toMatchObject({
      amount: 20,
      added: 5,
    })
    expect(await h.commit(18)).toMatchObject({ charged: 18, freed: 2, shortfall: 0 })
    await meter.close()
    expect(await plain.balance('a')).toMatchObject({ total: 82, held: 0 })
    await expectLedgerReplays(plain, 'a')
  })

  it('a grown local hold released gives all of it back to the lease', async () => {
    const { meter, plain } = setup()
    await plain.grant('a', 100)
    const h = await meter.reserve('a', 2)
    await h.increase(8)
    expect(await h.release()).toMatchObject({ freed: 10 })
    expect(await meter.balance('a')).toMatchObject({ total: 100, held: 0, available: 100 })
    // The freed credits serve the next hold from the same lease.
    const next = await meter.reserve('a', 20)
    expect(next.id.startsWith('lh_')).toBe(true)
    await next.commit()
    await meter.close()
    expect(await plain.balance('a')).toMatchObject({ total: 80, held: 0 })
    await expectLedgerReplays(plain, 'a')
  })

  it('a local hold grows idempotently, once pending, and not after it resolves or expires', async () => {
    const { meter, plain, clock } = setup()
    await plain.grant('a', 100)
    const h = await meter.reserve('a', 2, { ttlMs: 1_000 })
    const first = await h.increase(3, { idempotencyKey: 'g1' })
    expect(first).toMatchObject({ amount: 5, added: 3, replayed: false })
    expect(await h.increase(3, { idempotencyKey: 'g1' })).toMatchObject({
      amount: 5,
      added: 3,
      replayed: true,
    })
    await expect(h.increase(4, { idempotencyKey: 'g1' })).rejects.toMatchObject({
      code: 'idempotency_conflict',
    })
    await expect(h.increase(3, { idempotencyKey: 'g1', partial: true })).rejects.toMatchObject({
      code: 'idempotency_conflict',
    })
    expect(await h.increase(0)).toMatchObject({ amount: 5, added: 0 })
    await expect(h.increase(-1)).rejects.toMatchObject({ code: 'invalid_input', field: 'n' })
    await h.commit()
    await expect(h.increase(1)).rejects.toMatchObject({ code: 'hold_resolved' })
    const late = await meter.reserve('a', 1, { ttlMs: 1_000 })
    clock.now += 1_000
    await expect(late.increase(1)).rejects.toMatchObject({ code: 'hold_expired' })
    await expect(meter.increase('lh_nope_1', 1)).rejects.toMatchObject({ code: 'not_found' })
    await meter.close()
    expect(await plain.balance('a')).toMatchObject({ total: 95, held: 0 })
    await expectLedgerReplays(plain, 'a')
  })

  it('close() charges the usage served before the store closes', async () => {
    const store = countingStore()
    const meter = createMeter({ store, lease: LEASE, clock: () => T0 })
    await meter.grant('a', 100)
    for (let i = 0; i < 9; i++) await spend(meter, 'a')
    const executed = store.calls.execute
    await meter.close()
    // One commit settled the lease, then the store closed.
    expect(store.calls.execute - executed).toBe(1)
    expect(store.calls.close).toBe(1)
  })

  it('options are checked, and leases refuse the overdraft policy', () => {
    const store = memoryStore()
    expect(() => createMeter({ store, lease: { size: 0 } })).toThrow(/lease.size/)
    expect(() => createMeter({ store, lease: { size: 10, flushMs: 40_000 } })).toThrow(
      /lease.flushMs/,
    )
    expect(() =>
      createMeter({ store, lease: { size: 10, ttl: 5 } as unknown as { size: number } }),
    ).toThrow(/lease.ttl/)
    expect(() => createMeter({ store, lease: { size: 10 }, overage: 'overdraft' })).toThrow(
      /overdraft/,
    )
  })
})

/**
 * A store whose commits can be held back (settlements on their way to a slow store), answered
 * with a lost connection after they were applied, or slowed down; `charged` sums what the
 * commits of leases it applied spent, the moment it applied them.
 */
function commitControl(inner: Store = memoryStore()) {
  const leases = new Set<string>()
  const c = {
    charged: 0,
    /** Commits that arrived while held back. */
    arrived: 0,
    lostAnswers: 0,
    delayMs: 0,
    gate: null as Promise<void> | null,
    open: () => {},
  }
  const commit = async (req: ExecuteRequest): Promise<Outcome> => {
    c.arrived++
    if (c.gate) await c.gate
    if (c.delayMs > 0) await new Promise((r) => setTimeout(r, c.delayMs))
    const out = await inner.execute(req)
    if (out.error === null && req.op.type === 'commit' && leases.has(req.op.holdId)) {
      c.charged += (out.result as { charged: number }).charged
    }
    if (c.lostAnswers > 0) {
      c.lostAnswers--
      throw new StoreUnavailableError('connection lost')
    }
    return out
  }
  const store: Store = {
    kind: inner.kind,
    execute: (req) => {
      if (req.op.type === 'commit') return commit(req)
      const out = inner.execute(req)
      if (req.op.type !== 'reserve' || req.op.metadata.lease !== true) return out
      // A lease: its commits are counted.
      const note = (o: Outcome) => {
        if (o.error === null) leases.add((o.result as { id: string }).id)
        return o
      }
      return out instanceof Promise ? out.then(note) : note(out)
    },
    ledger: (t, a, r) => inner.ledger(t, a, r),
    createCodes: (t, b) => inner.createCodes(t, b),
    dueAccounts: (t, n, l) => inner.dueAccounts(t, n, l),
    prune: (t, b) => inner.prune(t, b),
    close: async () => {},
  }
  return {
    store,
    control: c,
    holdCommits() {
      c.gate = new Promise((r) => {
        c.open = r
      })
    },
    releaseCommits() {
      c.gate = null
      c.open()
    },
  }
}

/** Lets everything that can run without the store run. */
async function settleDown(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r))
}

describe('lease loss bound: unsettled usage never passes size per account', () => {
  it('with a settlement on its way, the next lease serves nothing past the bound', async () => {
    const { store, control, holdCommits, releaseCommits } = commitControl()
    const { meter, plain } = setup({ lease: { ...LEASE, size: 10 } }, store)
    await plain.grant('a', 100)
    holdCommits()
    for (let i = 0; i < 10; i++) expect(await spend(meter, 'a')).toBe(true)
    // The used-up lease's commit is held back in the store; the next lease was taken ahead.
    await vi.waitFor(() => expect(control.arrived).toBe(1))
    expect(await plain.balance('a')).toMatchObject({ total: 100, held: 20 })
    let served = false
    const next = spend(meter, 'a').then((ok) => {
      served = ok
    })
    await settleDown()
    // Serving it would make 11 credits served and not charged: it waits for the settlement.
    expect(served).toBe(false)
    releaseCommits()
    await next
    expect(served).toBe(true)
    await meter.close()
    expect(await plain.balance('a')).toMatchObject({ total: 89, held: 0 })
    await expectLedgerReplays(plain, 'a')
  })

  it('at a pace that would fill the bound within a settlement, the used lease settles early', async () => {
    const { store, control, holdCommits, releaseCommits } = commitControl()
    const { meter, plain, clock } = setup({ lease: { ...LEASE, size: 10 } }, store)
    await plain.grant('a', 100)
    // A first lease used up and settled, its settlement taking 4 ms: the pace to compare with.
    holdCommits()
    for (let i = 0; i < 10; i++) expect(await spend(meter, 'a')).toBe(true)
    await vi.waitFor(() => expect(control.arrived).toBe(1))
    clock.now += 4
    releaseCommits()
    await vi.waitFor(async () => expect((await plain.balance('a')).total).toBe(90))
    // The next lease serves 7 credits within the same millisecond: at that pace the bound
    // would be full before a settlement comes back, so it stops there and settles.
    holdCommits()
    clock.now += 1
    for (let i = 0; i < 7; i++) expect(await spend(meter, 'a')).toBe(true)
    await vi.waitFor(() => expect(control.arrived).toBe(2))
    // Its settlement held back, the lease taken ahead serves the rest of the bound (3 credits)
    // without waiting for it, and nothing past it.
    for (let i = 0; i < 3; i++) expect(await spend(meter, 'a')).toBe(true)
    let served = false
    const next = spend(meter, 'a').then((ok) => {
      served = ok
    })
    await settleDown()
    expect(served).toBe(false)
    releaseCommits()
    await next
    expect(served).toBe(true)
    await meter.close()
    expect(await plain.balance('a')).toMatchObject({ total: 79, held: 0 })
    await expectLedgerReplays(plain, 'a')
  })

  it('many concurrent requests on a slow store: served − charged ≤ size at every reserve', async () => {
    const { store, control } = commitControl()
    control.delayMs = 2
    const size = 10
    const meter = createMeter({ store, lease: { size, ttlMs: 60_000, flushMs: 50 } })
    const plain = createMeter({ store, cache: false })
    await plain.grant('a', 600)
    let served = 0
    let worst = 0
    let fromStore = 0
    const loop = async () => {
      for (;;) {
        let hold: Awaited<ReturnType<Meter['reserve']>>
        try {
          hold = await meter.reserve('a', 1)
        } catch (err) {
          if (isTollgateError(err, 'insufficient_credits')) return
          throw err
        }
        if (hold.id.startsWith('lh_')) served++
        else fromStore++
        worst = Math.max(worst, served - control.charged)
        await new Promise((r) => setImmediate(r))
        await hold.commit()
      }
    }
    await Promise.all(Array.from({ length: 30 }, loop))
    await meter.close()
    expect(served + fromStore).toBe(600)
    expect(worst).toBeLessThanOrEqual(size)
    // It got there: the bound was reached, not avoided.
    expect(worst).toBe(size)
    expect(await plain.balance('a')).toMatchObject({ total: 0, held: 0 })
    await expectLedgerReplays(plain, 'a')
  })

  it('when requests in flight fill the bound, the next reserve is an ordinary store hold', async () => {
    const { meter, plain } = setup({ lease: { ...LEASE, size: 10 } })
    await plain.grant('a', 100)
    const inFlight = await Promise.all(Array.from({ length: 10 }, () => meter.reserve('a', 1)))
    expect(inFlight.every((h) => h.id.startsWith('lh_'))).toBe(true)
    const next = await meter.reserve('a', 1)
    expect(next.id.startsWith('lh_')).toBe(false)
    // Two leases and the store hold.
    expect((await plain.balance('a')).held).toBe(21)
    await next.commit()
    await Promise.all(inFlight.map((h) => h.commit()))
    // Room again: served from the lease.
    expect((await meter.reserve('a', 1)).id.startsWith('lh_')).toBe(true)
    await meter.close()
    expect(await plain.balance('a')).toMatchObject({ total: 89, held: 0 })
    await expectLedgerReplays(plain, 'a')
  })

  it('a long request on a used-up lease moves to the next one, which lets it settle', async () => {
    const { meter, plain } = setup({ lease: { ...LEASE, size: 10 } })
    await plain.grant('a', 100)
    const long = await meter.reserve('a', 1)
    for (let i = 0; i < 9; i++) expect(await spend(meter, 'a')).toBe(true)
    // The first lease is used up but for the long request; the bound is reached.
    const hold = await meter.reserve('a', 1)
    expect(hold.id.startsWith('lh_')).toBe(true)
    // The first lease settled what it served without waiting for the long request.
    const entries = (await fullLedger(plain, 'a')).map((e) => [e.type, e.delta, e.heldDelta])
    expect(entries).toEqual([
      ['grant', 100, 0],
      ['hold', 0, 10],
      ['hold', 0, 10],
      ['commit', -9, -10],
    ])
    await hold.commit()
    await long.commit()
    await meter.close()
    expect(await plain.balance('a')).toMatchObject({ total: 89, held: 0 })
    await expectLedgerReplays(plain, 'a')
  })

  it('a settlement applied whose answer was lost is charged once and stops counting', async () => {
    const { store, control } = commitControl()
    const { meter, plain } = setup({ lease: { ...LEASE, size: 10 } }, store)
    await plain.grant('a', 100)
    control.lostAnswers = 1
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    try {
      for (let i = 0; i < 10; i++) expect(await spend(meter, 'a')).toBe(true)
      // The used-up lease's settlement failed, for all the meter knows.
      await vi.waitFor(() =>
        expect(warn).toHaveBeenCalledWith(
          expect.stringMatching(/lease settle failed/),
          'TollgateWarning',
          'TOLLGATE_LEASE_FAILURE',
        ),
      )
      // The next reserve settles it again: the store says it was committed, so it was, and the
      // bound has room again.
      const hold = await meter.reserve('a', 1)
      expect(hold.id.startsWith('lh_')).toBe(true)
      await hold.commit()
    } finally {
      warn.mockRestore()
    }
    await meter.close()
    const commits = (await fullLedger(plain, 'a')).filter((e) => e.type === 'commit')
    expect(commits.map((e) => e.delta)).toEqual([-10, -1])
    expect(control.charged).toBe(11)
    expect(await plain.balance('a')).toMatchObject({ total: 89, held: 0 })
  })

  it('an overage under clamp takes no credits past the bound: that part is the shortfall', async () => {
    const { meter, plain } = setup({ lease: { ...LEASE, size: 10 } })
    await plain.grant('a', 100)
    const h = await meter.reserve('a', 5)
    for (let i = 0; i < 5; i++) expect(await spend(meter, 'a')).toBe(true)
    // The next lease has free credits, but 10 are already unsettled.
    await vi.waitFor(async () => expect((await plain.balance('a')).held).toBe(20))
    expect(await h.commit(8, { overage: 'clamp' })).toMatchObject({ charged: 5, shortfall: 3 })
    await meter.close()
    expect(await plain.balance('a')).toMatchObject({ total: 90, held: 0 })
  })
})

describe('cached fast path', () => {
  it('an account known to be short is refused without a round trip', async () => {
    const { meter, plain, store } = setup({ lease: undefined })
    await plain.grant('a', 2)
    expect(await spend(meter, 'a', 2)).toBe(true)
    const before = store.calls.execute
    await expect(meter.reserve('a', 1)).rejects.toMatchObject({
      code: 'insufficient_credits',
      available: 0,
    })
    expect(store.calls.execute).toBe(before)
    // A grant through another meter on this store clears the figure at once.
    await plain.grant('a', 5)
    expect(await spend(meter, 'a', 3)).toBe(true)
  })

  it('the figure lasts the cache TTL, then the store is asked again', async () => {
    const store = memoryStore()
    const { meter, clock } = setup({ lease: undefined }, store)
    expect(await spend(meter, 'a')).toBe(false)
    // Credits granted where this process cannot see (another process, straight to the store).
    const elsewhere = createMeter({ store, clock: () => clock.now })
    await elsewhere.grant('a', 1)
    await expect(meter.reserve('a', 1)).rejects.toMatchObject({ code: 'insufficient_credits' })
    clock.now += 1_000
    expect(await spend(meter, 'a')).toBe(true)
  })

  it('not while something is held: a commit on its way could free the credits', async () => {
    const { meter, plain, store } = setup({ lease: undefined })
    await plain.grant('a', 10)
    const h = await meter.reserve('a', 8)
    const before = store.calls.execute
    await expect(meter.reserve('a', 5)).rejects.toMatchObject({ code: 'insufficient_credits' })
    // Asked the store: the cached figure had 8 held.
    expect(store.calls.execute).toBe(before + 1)
    await h.commit(2)
    expect(await spend(meter, 'a', 5)).toBe(true)
  })
})
