import { describe, expect, it } from 'vitest'
import type { EngineConfig } from '../engine/state.js'
import { newId } from '../store/ids.js'
import { memoryStore } from '../store/memory-store.js'
import type { Store } from '../store/store.js'
import { createMeter } from './meter.js'

const T0 = Date.UTC(2030, 0, 1)
const CONFIG: EngineConfig = {
  lowBalanceThreshold: null,
  overdraftLimit: null,
  overage: 'clamp',
  redeemMaxFailures: 10,
  redeemWindowMs: 3_600_000,
}

/** A grant applied on the store directly, as another process (or a server's store route) would. */
function grantElsewhere(store: Store, tenant: string, account: string, amount: number) {
  return store.execute({
    tenant,
    account,
    op: {
      type: 'grant',
      amount,
      expiresAt: null,
      validityDays: null,
      priority: 50,
      category: 'paid',
      metadata: {},
    },
    now: T0,
    config: CONFIG,
    newId,
  })
}

/** Lets the store's queued change reach its watchers (the memory store tells them in a microtask). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('the meter on the change feed', () => {
  it('serves an account another process paid for on its next request, not after the TTL', async () => {
    const store = memoryStore()
    // A clock that never moves: only the feed can make the cached refusal go.
    const meter = createMeter({ store, clock: () => T0, cache: { ttlMs: 60_000 } })
    await expect(meter.reserve('u', 5)).rejects.toMatchObject({ code: 'insufficient_credits' })
    // The refusal is cached: asked again, the meter refuses without the store.
    await expect(meter.reserve('u', 5)).rejects.toMatchObject({ code: 'insufficient_credits' })
    await settle()
    const out = await grantElsewhere(store, 'default', 'u', 10)
    expect(out.error).toBeNull()
    await settle()
    const hold = await meter.reserve('u', 5)
    expect(hold.amount).toBe(5)
    await meter.close()
  })

  it('drops the cached balance a read would answer', async () => {
    const store = memoryStore()
    const meter = createMeter({ store, clock: () => T0, cache: { ttlMs: 60_000 } })
    await meter.grant('u', 3)
    expect((await meter.balance('u')).available).toBe(3)
    await settle()
    await grantElsewhere(store, 'default', 'u', 10)
    await settle()
    expect((await meter.balance('u')).available).toBe(13)
    await meter.close()
  })

  it('keeps the changes of one tenant to that tenant', async () => {
    const store = memoryStore()
    const a = createMeter({ store, tenant: 'a', clock: () => T0, cache: { ttlMs: 60_000 } })
    const b = createMeter({ store, tenant: 'b', clock: () => T0, cache: { ttlMs: 60_000 } })
    await a.grant('u', 1)
    await b.grant('u', 1)
    await settle()
    await grantElsewhere(store, 'a', 'u', 10)
    await settle()
    expect((await a.balance('u')).available).toBe(11)
    // b's cached figure of its own 'u' is still served (the change was a's).
    expect((await b.balance('u')).available).toBe(1)
    await b.close()
  })

  it('subscribes once per store for all its meters, and leaves with the last one', async () => {
    const store = memoryStore()
    let subscriptions = 0
    let closed = 0
    const watch = store.watch!.bind(store)
    store.watch = async (listener) => {
      subscriptions++
      const sub = await watch(listener)
      return {
        close: async () => {
          closed++
          await sub.close()
        },
      }
    }
    const one = createMeter({ store, clock: () => T0 })
    const two = createMeter({ store, clock: () => T0, tenant: 'other' })
    const none = createMeter({ store, clock: () => T0, cache: false })
    await settle()
    expect(subscriptions).toBe(1)
    // Closing a meter closes its store too: keep this one open to count what the meters do.
    store.close = async () => {}
    await none.close()
    expect(closed).toBe(0)
    await one.close()
    expect(closed).toBe(0)
    await two.close()
    expect(closed).toBe(1)
  })
})
