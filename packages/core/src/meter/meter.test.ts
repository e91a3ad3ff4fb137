import { afterEach, describe, expect, it, vi } from 'vitest'
import { generateCode } from '../engine/codes.js'
import {
  HoldExpiredError,
  HoldResolvedError,
  InsufficientCreditsError,
  NotFoundError,
  StoreUnavailableError,
} from '../errors.js'
import { memoryStore } from '../store/memory-store.js'
import type { Store } from '../store/store.js'
import { countingStore, expectLedgerReplays, fullLedger } from '../test-support.js'
import type { Balance } from '../types.js'
import { createMeter, Hold, type Meter, type MeterOptions } from './meter.js'

const T0 = Date.UTC(2030, 0, 1)
const DAY = 86_400_000

function setup(options: Partial<MeterOptions> = {}) {
  const clock = { now: T0 }
  const store = countingStore(options.store ?? memoryStore())
  const meter = createMeter({ clock: () => clock.now, ...options, store })
  return { meter, store, clock }
}

afterEach(() => {
  vi.restoreAllMocks()
})

// ------------------------------------------------------------------ the balance cache

describe('balance cache', () => {
  it('serves balance() from the cache after a write: no store round trip', async () => {
    const { meter, store } = setup()
    const g = await meter.grant('a', 100)
    const n = store.calls.execute
    const b1 = await meter.balance('a')
    const b2 = await meter.balance('a')
    expect(store.calls.execute).toBe(n)
    expect(b1).toEqual(g.balance)
    expect(b2).toMatchObject({ account: 'a', total: 100, held: 0, available: 100 })
  })

  it('a first read goes to the store, the next one does not', async () => {
    const { meter, store } = setup()
    const other = createMeter({ store, clock: () => T0 })
    await other.grant('a', 5) // written through another meter: this meter has not seen it
    const n = store.calls.execute
    expect((await meter.balance('a')).total).toBe(5)
    expect(store.calls.execute).toBe(n + 1)
    expect((await meter.balance('a')).total).toBe(5)
    expect(store.calls.execute).toBe(n + 1)
  })

  it('a grant through a cache-less meter made before the cached one clears its figure', async () => {
    const { store } = setup()
    // Made first: no cache set exists yet for this store and tenant.
    const plain = createMeter({ store, clock: () => T0, cache: false })
    const cached = createMeter({ store, clock: () => T0 })
    await expect(cached.reserve('a', 1)).rejects.toMatchObject({ code: 'insufficient_credits' })
    await plain.grant('a', 5)
    // The cached "empty" figure was dropped by the grant: the reserve goes to the store.
    await expect(cached.reserve('a', 1)).resolves.toMatchObject({ amount: 1 })
  })

  it('{ fresh: true } always goes to the store', async () => {
    const { meter, store } = setup()
    await meter.grant('a', 100)
    const n = store.calls.execute
    await meter.balance('a', { fresh: true })
    await meter.balance('a', { fresh: true })
    expect(store.calls.execute).toBe(n + 2)
    await meter.balance('a', { fresh: false })
    expect(store.calls.execute).toBe(n + 2)
  })

  it('{ fresh: true } sees writes made through another meter; the cached read does not (yet)', async () => {
    const { meter, store } = setup()
    const other = createMeter({ store, clock: () => T0 })
    await meter.grant('a', 100)
    await other.debit('a', 40)
    expect((await meter.balance('a')).available).toBe(100)
    expect((await meter.balance('a', { fresh: true })).available).toBe(60)
    // and the fresh read refreshed the cache
    expect((await meter.balance('a')).available).toBe(60)
  })

  it('is refreshed by every local write', async () => {
    const { meter, store, clock } = setup()
    const { codes } = await meter.createCodes({ credits: 9, count: 1 })
    const check = async (expected: Partial<Balance>) => {
      const n = store.calls.execute
      const cached = await meter.balance('a')
      expect(store.calls.execute).toBe(n)
      expect(cached).toMatchObject(expected)
      expect(cached).toEqual(await meter.balance('a', { fresh: true }))
    }
    await meter.grant('a', 100)
    await check({ total: 100, held: 0, available: 100 })
    await meter.debit('a', 10)
    await check({ total: 90, available: 90 })
    await meter.adjust('a', 5)
    await check({ total: 95, available: 95 })
    await meter.adjust('a', -3)
    await check({ total: 92, available: 92 })
    const h1 = await meter.reserve('a', 20)
    await check({ total: 92, held: 20, available: 72 })
    await h1.commit(15)
    await check({ total: 77, held: 0, available: 77 })
    const h2 = await meter.reserve('a', 7)
    await check({ held: 7, available: 70 })
    await h2.release()
    await check({ held: 0, available: 77 })
    const h3 = await meter.reserve('a', 1)
    clock.now += 100
    await h3.extend(5_000)
    await check({ held: 1, available: 76, asOf: T0 + 100 })
    await meter.configure('a', { lowBalanceThreshold: 100 })
    await check({ low: true })
    await meter.startCycle('a', { amount: 50, every: 'month' })
    await check({ total: 127, available: 126 })
    await meter.stopCycle('a')
    await check({ total: 127 })
    await meter.redeem('a', codes[0]!)
    await check({ total: 136, available: 135 })
  })

  it('a failed operation refreshes the cache with the balance the store saw', async () => {
    const { meter, store } = setup()
    const other = createMeter({ store, clock: () => T0 })
    await meter.grant('a', 10)
    await other.debit('a', 8)
    await expect(meter.debit('a', 5)).rejects.toBeInstanceOf(InsufficientCreditsError)
    const n = store.calls.execute
    expect((await meter.balance('a')).available).toBe(2)
    expect(store.calls.execute).toBe(n)
  })

  it('expires after ttlMs by the injected clock', async () => {
    const { meter, store, clock } = setup({ cache: { ttlMs: 1_000 } })
    await meter.grant('a', 100)
    clock.now = T0 + 999
    let n = store.calls.execute
    await meter.balance('a')
    expect(store.calls.execute).toBe(n)
    const { meter: m2, store: s2, clock: c2 } = setup({ cache: { ttlMs: 1_000 } })
    await m2.grant('a', 100)
    c2.now = T0 + 1_001
    n = s2.calls.execute
    await m2.balance('a')
    expect(s2.calls.execute).toBe(n + 1)
  })

  it('expires after ttlMs by the injected clock, also after a cached read', async () => {
    const { meter, store, clock } = setup({ cache: { ttlMs: 1_000 } })
    const other = createMeter({ store, clock: () => clock.now })
    await meter.grant('a', 100)
    expect((await meter.balance('a')).total).toBe(100) // cache hit
    await other.debit('a', 30)
    clock.now = T0 + 60_000 // a minute later
    const n = store.calls.execute
    const b = await meter.balance('a')
    expect(store.calls.execute).toBe(n + 1)
    expect(b.total).toBe(70)
  })

  it('holds at most max accounts (least recently used evicted)', async () => {
    const { meter, store } = setup({ cache: { max: 2, ttlMs: 60_000 } })
    await meter.grant('a', 1)
    await meter.grant('b', 2)
    await meter.balance('a') // a more recent than b
    await meter.grant('c', 3)
    let n = store.calls.execute
    expect((await meter.balance('a')).total).toBe(1)
    expect((await meter.balance('c')).total).toBe(3)
    expect(store.calls.execute).toBe(n)
    expect((await meter.balance('b')).total).toBe(2)
    expect(store.calls.execute).toBe(n + 1)
    n = store.calls.execute
    // reading b back in evicted the least recently used of a and c (a)
    await meter.balance('c')
    expect(store.calls.execute).toBe(n)
    await meter.balance('a')
    expect(store.calls.execute).toBe(n + 1)
  })

  it('cache: false disables it', async () => {
    const { meter, store } = setup({ cache: false })
    await meter.grant('a', 100)
    const n = store.calls.execute
    await meter.balance('a')
    await meter.balance('a')
    await meter.balance('a')
    expect(store.calls.execute).toBe(n + 3)
  })

  it('a cached balance is not served past its first bucket expiry', async () => {
    const { meter, store, clock } = setup({ cache: { ttlMs: 10_000 } })
    await meter.grant('a', 100, { expiresAt: T0 + 500 })
    await meter.grant('a', 7)
    clock.now = T0 + 501
    const n = store.calls.execute
    const b = await meter.balance('a')
    expect(store.calls.execute).toBe(n + 1)
    expect(b).toMatchObject({ total: 7, available: 7 })
  })

  it('a cached balance is dropped at its first bucket expiry (expiresAt = now)', async () => {
    const { meter, clock } = setup({ cache: { ttlMs: 10_000 } })
    await meter.grant('a', 100, { expiresAt: T0 + 500 })
    await meter.grant('a', 7)
    clock.now = T0 + 500
    const b = await meter.balance('a')
    expect(b).toMatchObject({ total: 7, available: 7 })
    expect(b.buckets.map((x) => x.remaining)).toEqual([7])
  })

  it('is never consulted by reserve or debit (no credit granted on a cached figure)', async () => {
    const { meter, store } = setup({ cache: { ttlMs: 60_000 } })
    const other = createMeter({ store, clock: () => T0 })
    await meter.grant('a', 100)
    await other.debit('a', 100)
    expect((await meter.balance('a')).available).toBe(100) // stale, from the cache
    await expect(meter.reserve('a', 50)).rejects.toMatchObject({
      code: 'insufficient_credits',
      required: 50,
      available: 0,
    })
    await expect(meter.debit('a', 1)).rejects.toBeInstanceOf(InsufficientCreditsError)
  })

  it('a replayed result does not put its old balance into the cache', async () => {
    const { meter } = setup()
    const g = await meter.grant('a', 100, { idempotencyKey: 'grant-1' })
    expect(g.replayed).toBe(false)
    await meter.debit('a', 30)
    const again = await meter.grant('a', 100, { idempotencyKey: 'grant-1' })
    expect(again.replayed).toBe(true)
    expect(again.balance.total).toBe(100) // the result as it was then: correct
    // but the account holds 70 now, and the cache must not say otherwise
    expect((await meter.balance('a')).total).toBe(70)
    expect((await meter.balance('a', { fresh: true })).total).toBe(70)
  })
})

describe("results are the caller's", () => {
  it('a replay does not change the first result object, and mutating a result does not change the replay', async () => {
    const { meter } = setup()
    const first = await meter.grant('a', 100, { idempotencyKey: 'g1', metadata: { n: 1 } })
    first.metadata.n = 999
    first.balance.total = -1
    const again = await meter.grant('a', 100, { idempotencyKey: 'g1', metadata: { n: 1 } })
    expect(first.replayed).toBe(false)
    expect(again.replayed).toBe(true)
    expect(again).not.toBe(first)
    expect(again.metadata).toEqual({ n: 1 })
    expect(again.balance.total).toBe(100)
  })

  it('mutating a returned balance does not change what balance() answers from the cache', async () => {
    const { meter } = setup()
    const g = await meter.grant('a', 100)
    g.balance.available = 1_000_000
    const b = await meter.balance('a')
    b.total = 0
    expect(await meter.balance('a')).toMatchObject({ total: 100, available: 100 })
  })
})

// ------------------------------------------------------------------ store failures

function failingStore(error: unknown, methods: (keyof Store)[]): Store {
  const inner = memoryStore()
  const fail = (name: keyof Store) => methods.includes(name)
  return {
    kind: 'failing',
    execute: async (req) => {
      if (fail('execute')) throw error
      return inner.execute(req)
    },
    ledger: async (t, a, r) => {
      if (fail('ledger')) throw error
      return inner.ledger(t, a, r)
    },
    createCodes: async (t, b) => {
      if (fail('createCodes')) throw error
      return inner.createCodes(t, b)
    },
    dueAccounts: async (t, n, l) => {
      if (fail('dueAccounts')) throw error
      return inner.dueAccounts(t, n, l)
    },
    prune: async (t, b) => {
      if (fail('prune')) throw error
      return inner.prune(t, b)
    },
    close: () => inner.close(),
  }
}

describe('store failures', () => {
  const boom = new Error('ECONNRESET')

  it.each([
    ['grant', (m: Meter) => m.grant('a', 1)],
    ['debit', (m: Meter) => m.debit('a', 0)],
    ['adjust', (m: Meter) => m.adjust('a', 1)],
    ['reserve', (m: Meter) => m.reserve('a', 0)],
    ['commit', (m: Meter) => m.commit('hld_x')],
    ['release', (m: Meter) => m.release('hld_x')],
    ['extend', (m: Meter) => m.extend('hld_x', 5_000)],
    ['balance', (m: Meter) => m.balance('a')],
    ['configure', (m: Meter) => m.configure('a', {})],
    ['startCycle', (m: Meter) => m.startCycle('a', { amount: 1, every: 'day' })],
    ['stopCycle', (m: Meter) => m.stopCycle('a')],
    ['redeem', (m: Meter) => m.redeem('a', generateCode('TG'))],
  ])(
    'a plain Error from store.execute in %s surfaces as StoreUnavailableError with cause',
    async (_n, call) => {
      const meter = createMeter({ store: failingStore(boom, ['execute']), clock: () => T0 })
      const p = call(meter)
      await expect(p).rejects.toBeInstanceOf(StoreUnavailableError)
      await expect(p).rejects.toMatchObject({ code: 'store_unavailable', status: 503, cause: boom })
    },
  )

  it('a synchronous throw from store.execute is wrapped too', async () => {
    const inner = memoryStore()
    const store: Store = {
      ...failingStore(boom, []),
      execute: () => {
        throw boom
      },
      close: () => inner.close(),
    }
    const meter = createMeter({ store, clock: () => T0 })
    await expect(meter.grant('a', 1)).rejects.toMatchObject({
      code: 'store_unavailable',
      cause: boom,
    })
  })

  it('ledger: a plain Error surfaces as StoreUnavailableError with cause', async () => {
    const meter = createMeter({ store: failingStore(boom, ['ledger']), clock: () => T0 })
    await expect(meter.ledger('a')).rejects.toMatchObject({
      code: 'store_unavailable',
      cause: boom,
    })
  })

  it('createCodes: a plain Error surfaces as StoreUnavailableError with cause', async () => {
    const meter = createMeter({ store: failingStore(boom, ['createCodes']), clock: () => T0 })
    await expect(meter.createCodes({ credits: 1, count: 1 })).rejects.toMatchObject({
      code: 'store_unavailable',
      cause: boom,
    })
  })

  it('sweep: a plain Error from dueAccounts surfaces as StoreUnavailableError with cause', async () => {
    const meter = createMeter({ store: failingStore(boom, ['dueAccounts']), clock: () => T0 })
    const p = meter.sweep()
    await expect(p).rejects.toBeInstanceOf(StoreUnavailableError)
    await expect(p).rejects.toMatchObject({ code: 'store_unavailable', cause: boom })
  })

  it('sweep: a plain Error from prune surfaces as StoreUnavailableError with cause', async () => {
    const meter = createMeter({ store: failingStore(boom, ['prune']), clock: () => T0 })
    const p = meter.sweep()
    await expect(p).rejects.toBeInstanceOf(StoreUnavailableError)
    await expect(p).rejects.toMatchObject({ code: 'store_unavailable', cause: boom })
  })

  it('a non-Error thrown value is wrapped with it as cause', async () => {
    const meter = createMeter({
      store: failingStore('socket closed', ['execute']),
      clock: () => T0,
    })
    await expect(meter.grant('a', 1)).rejects.toMatchObject({
      code: 'store_unavailable',
      cause: 'socket closed',
    })
  })

  it('a Tollgate error from the store passes through unchanged', async () => {
    const err = new StoreUnavailableError('primary is down')
    const meter = createMeter({ store: failingStore(err, ['execute', 'ledger']), clock: () => T0 })
    await expect(meter.grant('a', 1)).rejects.toBe(err)
    await expect(meter.ledger('a')).rejects.toBe(err)
  })

  it('a failed store call does not touch the cache', async () => {
    const inner = memoryStore()
    let failing = false
    const store: Store = {
      ...failingStore(boom, []),
      execute: async (req) => {
        if (failing) throw boom
        return inner.execute(req)
      },
    }
    const meter = createMeter({ store, clock: () => T0 })
    await meter.grant('a', 10)
    failing = true
    await expect(meter.debit('a', 5)).rejects.toMatchObject({ code: 'store_unavailable' })
    expect((await meter.balance('a')).total).toBe(10)
  })
})

// ------------------------------------------------------------------ close

describe('per-call timeoutMs', () => {
  /** The memory store, with the timeoutMs of every request it receives recorded. */
  function recording() {
    const inner = memoryStore()
    const timeouts: (number | undefined)[] = []
    const store: Store = {
      ...countingStore(inner),
      execute: (req) => {
        timeouts.push(req.timeoutMs)
        return inner.execute(req)
      },
    }
    return { store, timeouts }
  }

  it('travels with every operation to the store; without it the store decides', async () => {
    const { store, timeouts } = recording()
    const meter = createMeter({ store, clock: () => T0 })
    const t = { timeoutMs: 1_234 }
    await meter.grant('a', 100, t)
    await meter.debit('a', 1, t)
    await meter.adjust('a', 1, t)
    const hold = await meter.reserve('a', 5, t)
    await hold.extend(5_000, t)
    await hold.commit(2, t)
    await (await meter.reserve('a', 5, t)).release(t)
    await meter.balance('a', { fresh: true, ...t })
    await meter.configure('a', { lowBalanceThreshold: 3, ...t })
    await meter.startCycle('a', { amount: 1, every: 'day', ...t })
    await meter.stopCycle('a', t)
    const { codes } = await meter.createCodes({ credits: 5, count: 1 })
    await meter.redeem('b', codes[0]!, t)
    expect(timeouts).toEqual(Array(13).fill(1_234))
    await meter.grant('a', 1)
    expect(timeouts.at(-1)).toBeUndefined()
  })

  it('is not an engine setting: a configure with it stores only the settings', async () => {
    const { store } = recording()
    const meter = createMeter({ store, clock: () => T0 })
    const out = await meter.configure('a', { overdraftLimit: 7, timeoutMs: 500 })
    expect(out).toMatchObject({ overdraftLimit: 7 })
    expect(out).not.toHaveProperty('timeoutMs')
  })

  it.each([0, -1, 1.5, Number.NaN, 3_600_001, '100'])(
    'timeoutMs %s is InvalidInputError naming it',
    async (bad) => {
      const meter = createMeter({ store: memoryStore(), clock: () => T0 })
      await expect(meter.debit('a', 0, { timeoutMs: bad as number })).rejects.toMatchObject({
        code: 'invalid_input',
        field: 'timeoutMs',
      })
    },
  )
})

describe('close', () => {
  it('closes the store once; closing again is a no-op', async () => {
    const { meter, store } = setup()
    await meter.close()
    await meter.close()
    expect(store.calls.close).toBe(1)
  })

  it.each([
    ['grant', (m: Meter) => m.grant('a', 1)],
    ['debit', (m: Meter) => m.debit('a', 1)],
    ['adjust', (m: Meter) => m.adjust('a', 1)],
    ['reserve', (m: Meter) => m.reserve('a', 1)],
    ['commit', (m: Meter) => m.commit('hld_x')],
    ['release', (m: Meter) => m.release('hld_x')],
    ['extend', (m: Meter) => m.extend('hld_x', 5_000)],
    ['balance (cached before close)', (m: Meter) => m.balance('a')],
    ['balance fresh', (m: Meter) => m.balance('a', { fresh: true })],
    ['configure', (m: Meter) => m.configure('a', {})],
    ['startCycle', (m: Meter) => m.startCycle('a', { amount: 1, every: 'day' })],
    ['stopCycle', (m: Meter) => m.stopCycle('a')],
    ['redeem', (m: Meter) => m.redeem('a', generateCode('TG'))],
    ['ledger', (m: Meter) => m.ledger('a')],
    ['createCodes', (m: Meter) => m.createCodes({ credits: 1, count: 1 })],
    ['sweep', (m: Meter) => m.sweep()],
  ])('a closed meter refuses %s with StoreUnavailableError', async (_n, call) => {
    const { meter, store } = setup()
    await meter.grant('a', 10)
    await meter.balance('a')
    await meter.close()
    const before = { ...store.calls }
    await expect(call(meter)).rejects.toMatchObject({ code: 'store_unavailable', status: 503 })
    expect(store.calls).toEqual(before)
  })

  it('a hold of a closed meter cannot be settled', async () => {
    const { meter } = setup()
    await meter.grant('a', 10)
    const hold = await meter.reserve('a', 5)
    await meter.close()
    await expect(hold.commit()).rejects.toBeInstanceOf(StoreUnavailableError)
    await expect(hold.release()).rejects.toBeInstanceOf(StoreUnavailableError)
  })

  it('listeners are dropped on close', async () => {
    const { meter } = setup()
    const fn = vi.fn()
    meter.on('granted', fn)
    await meter.close()
    await meter.grant('a', 1).catch(() => undefined)
    expect(fn).not.toHaveBeenCalled()
  })
})

// ------------------------------------------------------------------ events

describe('events and listeners', () => {
  it('a listener that throws does not fail the operation; the error is reported as a warning', async () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    const { meter } = setup()
    const after = vi.fn()
    meter.on('granted', () => {
      throw new Error('listener bug')
    })
    meter.on('granted', after)
    const g = await meter.grant('a', 10)
    expect(g.amount).toBe(10)
    expect((await meter.balance('a', { fresh: true })).total).toBe(10)
    expect(after).toHaveBeenCalledTimes(1) // the other listeners still run
    expect(warn).toHaveBeenCalledTimes(1)
    expect(String(warn.mock.calls[0]![0])).toContain('granted')
    expect(String(warn.mock.calls[0]![0])).toContain('listener bug')
  })

  it('a throwing listener on a failing operation does not replace its error', async () => {
    vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    const { meter, clock } = setup()
    await meter.grant('a', 10, { expiresAt: T0 + 1_000 })
    meter.on('expired', () => {
      throw new Error('x')
    })
    clock.now = T0 + 2_000
    // the expiry is applied (and its event fires) in the same operation that is refused
    await expect(meter.debit('a', 1)).rejects.toBeInstanceOf(InsufficientCreditsError)
  })

  it('on() returns an unsubscribe that works and leaves other listeners in place', async () => {
    const { meter } = setup()
    const a = vi.fn()
    const b = vi.fn()
    const offA = meter.on('granted', a)
    meter.on('granted', b)
    await meter.grant('x', 1)
    offA()
    offA() // twice is harmless
    await meter.grant('x', 2)
    expect(a).toHaveBeenCalledTimes(1)
    expect(b).toHaveBeenCalledTimes(2)
    expect(b.mock.calls[1]![0]).toMatchObject({
      type: 'granted',
      account: 'x',
      amount: 2,
      tenant: 'default',
      at: T0,
    })
  })

  it('off() removes a listener', async () => {
    const { meter } = setup()
    const fn = vi.fn()
    meter.on('committed', fn)
    meter.off('committed', fn)
    await meter.grant('x', 5)
    await (await meter.reserve('x', 2)).commit()
    expect(fn).not.toHaveBeenCalled()
  })

  it('the same function on two events is unsubscribed from one only', async () => {
    const { meter } = setup()
    const fn = vi.fn()
    const off = meter.on('granted', fn)
    meter.on('released', fn)
    off()
    await meter.grant('x', 5)
    await (await meter.reserve('x', 2)).release()
    expect(fn).toHaveBeenCalledTimes(1)
    expect(fn.mock.calls[0]![0]).toMatchObject({ type: 'released', freed: 2 })
  })

  it('low, depleted and recovered fire once per crossing', async () => {
    const { meter } = setup({ lowBalanceThreshold: 10 })
    const events: string[] = []
    const log = (e: { type: string; available: number }) => events.push(`${e.type}:${e.available}`)
    meter.on('low', log)
    meter.on('depleted', log)
    meter.on('recovered', log)
    await meter.grant('a', 100) // first evaluation: no event
    await meter.debit('a', 85) // 15: still ok
    await meter.debit('a', 5) // 10: low
    await meter.debit('a', 5) // 5: still low
    await meter.debit('a', 5) // 0: depleted
    await meter.debit('a', 0) // 0: still depleted
    await meter.grant('a', 3) // 3: low again (depleted → low is no event)
    await meter.grant('a', 50) // 53: recovered
    await meter.debit('a', 53) // 0: low then depleted
    expect(events).toEqual(['low:10', 'depleted:0', 'recovered:53', 'low:0', 'depleted:0'])
  })

  it('committed, released and expired carry their figures', async () => {
    const { meter, clock } = setup()
    const seen: unknown[] = []
    meter.on('committed', (e) => seen.push(e))
    meter.on('released', (e) => seen.push(e))
    meter.on('expired', (e) => seen.push(e))
    await meter.grant('a', 10)
    const h1 = await meter.reserve('a', 4)
    await h1.commit(3)
    const h2 = await meter.reserve('a', 2)
    await h2.release()
    const h3 = await meter.reserve('a', 1, { ttlMs: 1_000 })
    clock.now = T0 + 1_000
    await meter.balance('a', { fresh: true })
    expect(seen).toEqual([
      {
        type: 'committed',
        account: 'a',
        holdId: h1.id,
        charged: 3,
        shortfall: 0,
        at: T0,
        tenant: 'default',
      },
      { type: 'released', account: 'a', holdId: h2.id, freed: 2, at: T0, tenant: 'default' },
      {
        type: 'expired',
        account: 'a',
        kind: 'hold',
        id: h3.id,
        amount: 1,
        at: T0 + 1_000,
        tenant: 'default',
      },
    ])
  })
})

// ------------------------------------------------------------------ holds

describe('Hold', () => {
  it('toJSON() has the hold data and replayed, not the balance', async () => {
    const { meter } = setup()
    const g = await meter.grant('a', 10)
    const hold = await meter.reserve('a', 4, { ttlMs: 30_000, metadata: { route: '/x' } })
    expect(hold).toBeInstanceOf(Hold)
    const json = hold.toJSON()
    expect(json).toEqual({
      id: hold.id,
      account: 'a',
      amount: 4,
      expiresAt: T0 + 30_000,
      createdAt: T0,
      allocations: [{ bucketId: g.id, amount: 4 }],
      metadata: { route: '/x' },
      replayed: false,
    })
    expect(JSON.parse(JSON.stringify(hold))).toEqual(json)
    expect(hold.id).toMatch(/^hld_/)
    expect(hold.balance).toMatchObject({ total: 10, held: 4, available: 6 })
  })

  it('commit, release and extend on the hold go to the meter', async () => {
    const { meter, clock } = setup()
    await meter.grant('a', 10)
    const h1 = await meter.reserve('a', 4)
    clock.now = T0 + 10_000
    const ext = await h1.extend(120_000)
    expect(ext).toMatchObject({ id: h1.id, expiresAt: T0 + 130_000, replayed: false })
    expect(await h1.commit(1)).toMatchObject({ holdId: h1.id, charged: 1, freed: 3, shortfall: 0 })
    const h2 = await meter.reserve('a', 2)
    expect(await h2.release()).toMatchObject({ holdId: h2.id, freed: 2 })
    expect(await meter.balance('a', { fresh: true })).toMatchObject({ total: 9, held: 0 })
  })
})

// ------------------------------------------------------------------ ledger rules through the meter

describe('ledger rules through the meter', () => {
  it('debit spends in burn order, all or nothing', async () => {
    const { meter } = setup()
    const paid = await meter.grant('a', 10)
    const promo = await meter.grant('a', 10, { category: 'promotional' })
    const soon = await meter.grant('a', 5, { validityDays: 1 })
    const first = await meter.grant('a', 3, { priority: 1 })
    const d = await meter.debit('a', 12)
    expect(d.allocations).toEqual([
      { bucketId: first.id, amount: 3 },
      { bucketId: soon.id, amount: 5 },
      { bucketId: promo.id, amount: 4 },
    ])
    await expect(meter.debit('a', 17)).rejects.toMatchObject({ required: 17, available: 16 })
    const b = await meter.balance('a', { fresh: true })
    expect(b.buckets.map((x) => [x.id, x.remaining])).toEqual([
      [promo.id, 6],
      [paid.id, 10],
    ])
  })

  it('commit under the hold spends the first allocations and frees the rest', async () => {
    const { meter } = setup()
    const x = await meter.grant('a', 3, { priority: 1 })
    const y = await meter.grant('a', 10)
    const h = await meter.reserve('a', 8)
    expect(h.allocations).toEqual([
      { bucketId: x.id, amount: 3 },
      { bucketId: y.id, amount: 5 },
    ])
    await h.commit(4)
    const b = await expectLedgerReplays(meter, 'a')
    expect(b.buckets.map((k) => [k.id, k.remaining, k.held])).toEqual([[y.id, 9, 0]])
  })

  it('overage: reject leaves the hold, clamp reports the shortfall, overdraft makes debt', async () => {
    const { meter } = setup({ overage: 'reject' })
    await meter.grant('a', 10)
    const h = await meter.reserve('a', 4)
    await expect(h.commit(6)).rejects.toMatchObject({
      code: 'overage',
      status: 409,
      held: 4,
      actual: 6,
    })
    expect(await meter.balance('a', { fresh: true })).toMatchObject({ held: 4, total: 10 })
    expect(await h.commit(12, { overage: 'clamp' })).toMatchObject({
      charged: 10,
      shortfall: 2,
      debt: 0,
      freed: 0,
    })
    await meter.grant('b', 5)
    await meter.configure('b', { overdraftLimit: 3 })
    const hb = await meter.reserve('b', 5)
    expect(await hb.commit(10, { overage: 'overdraft' })).toMatchObject({
      charged: 8,
      debt: 3,
      shortfall: 2,
    })
    expect(await expectLedgerReplays(meter, 'b')).toMatchObject({ total: 0, debt: 3, available: 0 })
    const g = await meter.grant('b', 5)
    expect(g.repaidDebt).toBe(3)
    expect(await expectLedgerReplays(meter, 'b')).toMatchObject({ total: 2, debt: 0, available: 2 })
  })

  it('a hold resolves once; the same idempotency key replays', async () => {
    const { meter } = setup()
    await meter.grant('a', 10)
    const h = await meter.reserve('a', 4)
    const first = await h.commit(2, { idempotencyKey: 'c1' })
    const again = await h.commit(2, { idempotencyKey: 'c1' })
    expect(again).toMatchObject({ replayed: true, charged: 2, holdId: h.id })
    expect(first.replayed).toBe(false)
    await expect(h.commit(2)).rejects.toMatchObject({
      code: 'hold_resolved',
      resolution: 'committed',
    })
    await expect(h.release()).rejects.toBeInstanceOf(HoldResolvedError)
    await expect(h.commit(3, { idempotencyKey: 'c1' })).rejects.toMatchObject({
      code: 'idempotency_conflict',
    })
    expect(await expectLedgerReplays(meter, 'a')).toMatchObject({ total: 8, held: 0 })
  })

  it('past its TTL a hold is released lazily; commit, release and extend are HoldExpiredError', async () => {
    const { meter, clock } = setup()
    await meter.grant('a', 10)
    const h = await meter.reserve('a', 4, { ttlMs: 5_000 })
    clock.now = T0 + 5_000
    await expect(h.commit()).rejects.toBeInstanceOf(HoldExpiredError)
    await expect(h.extend(5_000)).rejects.toMatchObject({ code: 'hold_expired', status: 410 })
    await expect(h.release()).rejects.toMatchObject({ code: 'hold_expired' })
    const b = await expectLedgerReplays(meter, 'a')
    expect(b).toMatchObject({ total: 10, held: 0, available: 10 })
    const release = (await fullLedger(meter, 'a')).find((e) => e.type === 'release')
    expect(release).toMatchObject({ reason: 'hold_ttl', heldDelta: -4, at: T0 + 5_000 })
  })

  it('extend keeps a hold alive past its first TTL', async () => {
    const { meter, clock } = setup()
    await meter.grant('a', 10)
    const h = await meter.reserve('a', 4, { ttlMs: 5_000 })
    clock.now = T0 + 4_000
    await h.extend(5_000)
    clock.now = T0 + 8_000
    expect(await h.commit()).toMatchObject({ charged: 4 })
  })

  it('an unknown hold id is NotFoundError; a hold of another tenant too', async () => {
    const store = memoryStore()
    const m1 = createMeter({ store, clock: () => T0 })
    const m2 = createMeter({ store, clock: () => T0, tenant: 'other' })
    await m1.grant('a', 10)
    const h = await m1.reserve('a', 1)
    await expect(m1.commit('hld_nope')).rejects.toBeInstanceOf(NotFoundError)
    await expect(m2.commit(h.id)).rejects.toMatchObject({ code: 'not_found', status: 404 })
    expect((await m2.balance('a', { fresh: true })).total).toBe(0)
  })

  it('a bucket past expiry leaves the balance with an expire entry; its held part stays with the hold', async () => {
    const { meter, clock } = setup()
    const g = await meter.grant('a', 10, { expiresAt: T0 + 1_000 })
    const h = await meter.reserve('a', 4, { ttlMs: 60_000 })
    clock.now = T0 + 1_000
    expect(await meter.balance('a', { fresh: true })).toMatchObject({
      total: 4,
      held: 4,
      available: 0,
    })
    await h.commit(1)
    const b = await expectLedgerReplays(meter, 'a')
    expect(b).toMatchObject({ total: 0, held: 0 })
    const expires = (await fullLedger(meter, 'a')).filter((e) => e.type === 'expire')
    expect(expires.map((e) => [e.delta, e.at, e.grantId])).toEqual([
      [-6, T0 + 1_000, g.id],
      [-3, T0 + 1_000, g.id],
    ])
  })

  it('ledger pages newest first with an opaque cursor and filters', async () => {
    const { meter, clock } = setup()
    for (let i = 1; i <= 7; i++) {
      clock.now = T0 + i
      await meter.grant('a', i)
    }
    await meter.debit('a', 1)
    const p1 = await meter.ledger('a', { limit: 3 })
    expect(p1.entries.map((e) => e.type)).toEqual(['debit', 'grant', 'grant'])
    expect(p1.entries.map((e) => e.delta)).toEqual([-1, 7, 6])
    expect(p1.nextCursor).not.toBeNull()
    const p2 = await meter.ledger('a', { limit: 3, cursor: p1.nextCursor! })
    expect(p2.entries.map((e) => e.delta)).toEqual([5, 4, 3])
    const p3 = await meter.ledger('a', { limit: 3, cursor: p2.nextCursor! })
    expect(p3.entries.map((e) => e.delta)).toEqual([2, 1])
    expect(p3.nextCursor).toBeNull()
    const grants = await meter.ledger('a', { types: ['debit'] })
    expect(grants.entries).toHaveLength(1)
    const window = await meter.ledger('a', { from: T0 + 2, to: T0 + 4 })
    expect(window.entries.map((e) => e.delta)).toEqual([3, 2])
    expect((await meter.ledger('nobody')).entries).toEqual([])
  })

  it('cycles grant per period lazily and stopCycle keeps the current credits', async () => {
    const { meter, clock } = setup()
    const c = await meter.startCycle('a', { amount: 100, every: 'day', rollover: { max: 30 } })
    expect(c.cycle).toMatchObject({ amount: 100, anchor: T0, periodStart: T0, periodEnd: T0 + DAY })
    await meter.debit('a', 60) // 40 left, 30 roll over
    clock.now = T0 + 2 * DAY + 5
    const b = await expectLedgerReplays(meter, 'a')
    // day 1: 100 + 30 carried; nothing spent, so day 2: 100 + 30 carried
    expect(b).toMatchObject({ total: 130 })
    const grants = (await fullLedger(meter, 'a')).filter((e) => e.type === 'cycle_grant')
    expect(grants.map((e) => [e.delta, e.at])).toEqual([
      [100, T0],
      [130, T0 + DAY],
      [130, T0 + 2 * DAY],
    ])
    await meter.stopCycle('a')
    await expect(meter.stopCycle('a')).rejects.toBeInstanceOf(NotFoundError)
    clock.now = T0 + 3 * DAY - 1
    expect((await meter.balance('a', { fresh: true })).total).toBe(130)
    clock.now = T0 + 5 * DAY
    expect((await meter.balance('a', { fresh: true })).total).toBe(0)
  })

  it('codes: redeem once per account, exhausted, expired, rate limited', async () => {
    const { meter, clock } = setup({ redeemAttempts: { max: 3, windowMs: 2 * DAY } })
    const batch = await meter.createCodes({
      credits: 25,
      count: 2,
      maxRedemptions: 2,
      validityDays: 7,
      codeExpiresAt: T0 + DAY,
    })
    expect(batch.codes).toHaveLength(2)
    const [c1, c2] = batch.codes as [string, string]
    const r = await meter.redeem('a', c1.toLowerCase().replace(/-/g, ''))
    expect(r).toMatchObject({ creditsGranted: 25, newBalance: 25, expiresAt: T0 + 7 * DAY })
    await expect(meter.redeem('a', c1)).rejects.toMatchObject({
      code: 'code_unavailable',
      reason: 'already_redeemed',
    })
    await meter.redeem('b', c1)
    await expect(meter.redeem('c', c1)).rejects.toMatchObject({ reason: 'exhausted' })
    clock.now = T0 + DAY
    await expect(meter.redeem('c', c2)).rejects.toMatchObject({ reason: 'expired' })
    await expect(meter.redeem('c', generateCode('TG'))).rejects.toMatchObject({
      code: 'invalid_input',
    })
    // three failures for c in the window (exhausted, expired, unknown): the fourth try is refused
    await expect(meter.redeem('c', c2)).rejects.toMatchObject({
      code: 'rate_limited',
      status: 429,
      retryAfterMs: DAY,
    })
    // a has had one failure only
    await expect(meter.redeem('a', c2)).rejects.toMatchObject({ reason: 'expired' })
    clock.now = T0 + 2 * DAY
    await expect(meter.redeem('c', c2)).rejects.toMatchObject({ reason: 'expired' })
  })

  it('createCodes with a used idempotency key returns the batch without the codes', async () => {
    const { meter } = setup()
    const first = await meter.createCodes({ credits: 5, count: 3, idempotencyKey: 'batch-1' })
    const again = await meter.createCodes({ credits: 5, count: 3, idempotencyKey: 'batch-1' })
    expect(first.codes).toHaveLength(3)
    expect(again).toEqual({ ...first, codes: [], replayed: true })
    await expect(
      meter.createCodes({ credits: 6, count: 3, idempotencyKey: 'batch-1' }),
    ).rejects.toMatchObject({
      code: 'idempotency_conflict',
    })
  })

  it('sweep applies what is due on every account', async () => {
    const { meter, clock } = setup()
    await meter.grant('a', 10, { expiresAt: T0 + 1_000 })
    await meter.grant('b', 10)
    await meter.reserve('b', 3, { ttlMs: 1_000 })
    clock.now = T0 + 2_000
    expect(await meter.sweep()).toMatchObject({ accounts: 2 })
    const types = (await fullLedger(meter, 'a')).map((e) => e.type)
    expect(types).toEqual(['grant', 'expire'])
    expect((await fullLedger(meter, 'b')).map((e) => e.type)).toEqual(['grant', 'hold', 'release'])
    expect(await meter.sweep()).toMatchObject({ accounts: 0 })
  })

  it('tenants do not see each other', async () => {
    const store = memoryStore()
    const t1 = createMeter({ store, clock: () => T0, tenant: 't1' })
    const t2 = createMeter({ store, clock: () => T0, tenant: 't2' })
    await t1.grant('a', 10)
    expect((await t2.balance('a', { fresh: true })).total).toBe(0)
    expect((await t2.ledger('a')).entries).toEqual([])
    expect(t1.tenant).toBe('t1')
  })

  it('a balance never leaves the safe-integer range (a grant past it is refused, not rounded)', async () => {
    const { meter } = setup()
    await meter.grant('a', Number.MAX_SAFE_INTEGER)
    const second = await meter.grant('a', 2).then(
      (g) => g.balance.total,
      (err: unknown) => err,
    )
    const b = await meter.balance('a', { fresh: true })
    // Either refused (and nothing changed) or exact; 2^53 + 1 is not representable.
    expect(Number.isSafeInteger(b.total)).toBe(true)
    expect(typeof second === 'number' ? Number.isSafeInteger(second) : second).toMatchObject({
      code: 'invalid_input',
    })
  })

  it('meter.now() and store are exposed', () => {
    const { meter, store, clock } = setup()
    clock.now = T0 + 42
    expect(meter.now()).toBe(T0 + 42)
    expect(meter.store).toBe(store)
  })
})

describe('migrations', () => {
  /** A memory store with a `migrate` that fails `failures` times, then succeeds. */
  function migratingStore(failures: number) {
    const inner = countingStore()
    let attempts = 0
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    const store: Store & { attempts: () => number; open: () => void } = {
      ...inner,
      attempts: () => attempts,
      open: () => release(),
      migrate: async () => {
        attempts++
        await gate
        if (attempts <= failures) throw new Error('database is starting up')
      },
    }
    return { store, inner }
  }

  it('runs store.migrate() once, before the first operation reaches the store', async () => {
    const { store, inner } = migratingStore(0)
    const meter = createMeter({ store })
    const granted = meter.grant('a', 5)
    const debited = meter.debit('a', 2)
    await new Promise((r) => setTimeout(r, 5))
    expect(inner.calls.execute).toBe(0)
    store.open()
    await granted
    expect((await debited).balance.available).toBe(3)
    await meter.ledger('a')
    await meter.sweep()
    expect(store.attempts()).toBe(1)
  })

  it('reports a failed migration as store_unavailable and retries it on the next operation', async () => {
    const { store, inner } = migratingStore(1)
    store.open()
    const meter = createMeter({ store })
    await expect(meter.grant('a', 5)).rejects.toBeInstanceOf(StoreUnavailableError)
    expect(inner.calls.execute).toBe(0)
    expect((await meter.grant('a', 5)).balance.available).toBe(5)
    expect(store.attempts()).toBe(2)
  })

  it('skips migrations with migrate: false', async () => {
    const { store } = migratingStore(0)
    const meter = createMeter({ store, migrate: false })
    expect((await meter.grant('a', 5)).balance.available).toBe(5)
    expect(store.attempts()).toBe(0)
  })
})
