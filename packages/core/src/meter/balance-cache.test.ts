import { describe, expect, it } from 'vitest'
import type { Balance, BalanceBucket } from '../types.js'
import { BalanceCache } from './balance-cache.js'

const T0 = Date.UTC(2030, 0, 1)

function balance(
  account: string,
  total: number,
  expiries: (number | null)[] = [null],
  asOf = T0,
): Balance {
  const buckets: BalanceBucket[] = expiries.map((expiresAt, i) => ({
    id: `grt_${account}_${i}`,
    remaining: i === 0 ? total : 0,
    held: 0,
    expiresAt,
    priority: 50,
    category: 'paid',
  }))
  return { account, total, held: 0, available: total, debt: 0, low: false, buckets, asOf }
}

function setup(options: { max?: number; ttlMs?: number } = {}) {
  const clock = { now: T0 }
  const cache = new BalanceCache(
    { max: options.max ?? 100, ttlMs: options.ttlMs ?? 1_000 },
    () => clock.now,
  )
  return { cache, clock }
}

describe('BalanceCache basics', () => {
  it('misses an unknown account and hits a cached one', () => {
    const { cache } = setup()
    expect(cache.get('a')).toBeUndefined()
    const b = balance('a', 10)
    cache.set(b)
    expect(cache.get('a')).toEqual(b)
    expect(cache.get('b')).toBeUndefined()
  })

  it('a newer set replaces the entry', () => {
    const { cache } = setup()
    cache.set(balance('a', 10))
    cache.set(balance('a', 7))
    expect(cache.get('a')?.total).toBe(7)
  })

  it('delete and clear', () => {
    const { cache } = setup()
    cache.set(balance('a', 1))
    cache.set(balance('b', 2))
    cache.delete('a')
    expect(cache.get('a')).toBeUndefined()
    expect(cache.get('b')?.total).toBe(2)
    cache.clear()
    expect(cache.get('b')).toBeUndefined()
  })
})

describe('BalanceCache TTL by the injected clock', () => {
  it('answers within ttlMs', () => {
    const { cache, clock } = setup({ ttlMs: 1_000 })
    cache.set(balance('a', 10))
    clock.now = T0 + 999
    expect(cache.get('a')?.total).toBe(10)
  })

  it('expires after ttlMs (first read after expiry)', () => {
    const { cache, clock } = setup({ ttlMs: 1_000 })
    cache.set(balance('a', 10))
    clock.now = T0 + 5_000
    expect(cache.get('a')).toBeUndefined()
  })

  it('expires after ttlMs even when it was read before (same tick)', () => {
    const { cache, clock } = setup({ ttlMs: 1_000 })
    cache.set(balance('a', 10))
    clock.now = T0 + 500
    expect(cache.get('a')?.total).toBe(10)
    clock.now = T0 + 5_000
    expect(cache.get('a')).toBeUndefined()
  })

  it('a read of one account does not freeze the clock for another', () => {
    const { cache, clock } = setup({ ttlMs: 1_000 })
    cache.set(balance('a', 10))
    expect(cache.get('a')?.total).toBe(10)
    clock.now = T0 + 10_000
    cache.set(balance('b', 3, [null], clock.now)) // fresh entry, computed at T0 + 10 s
    expect(cache.get('a')).toBeUndefined()
    expect(cache.get('b')?.total).toBe(3)
  })
})

describe('BalanceCache and bucket expiry', () => {
  it('is not cached past the first bucket expiry (read after it)', () => {
    const { cache, clock } = setup({ ttlMs: 1_000 })
    cache.set(balance('a', 10, [T0 + 300, null]))
    clock.now = T0 + 301
    expect(cache.get('a')).toBeUndefined()
  })

  it('is dropped at the bucket expiry itself (expiresAt ≤ now is expired)', () => {
    const { cache, clock } = setup({ ttlMs: 1_000 })
    cache.set(balance('a', 10, [T0 + 300]))
    clock.now = T0 + 300
    expect(cache.get('a')).toBeUndefined()
  })

  it('answers before the bucket expiry', () => {
    const { cache, clock } = setup({ ttlMs: 1_000 })
    cache.set(balance('a', 10, [T0 + 300]))
    clock.now = T0 + 299
    expect(cache.get('a')?.total).toBe(10)
  })

  it('the earliest of several bucket expiries counts, wherever it is in the list', () => {
    const { cache, clock } = setup({ ttlMs: 1_000 })
    cache.set(balance('a', 10, [null, T0 + 800, T0 + 200, T0 + 600]))
    clock.now = T0 + 250
    expect(cache.get('a')).toBeUndefined()
  })

  it('a bucket expiring after the TTL does not extend the TTL', () => {
    const { cache, clock } = setup({ ttlMs: 1_000 })
    cache.set(balance('a', 10, [T0 + 60_000]))
    clock.now = T0 + 1_500
    expect(cache.get('a')).toBeUndefined()
  })

  it('a balance with an already expired bucket is not cached, and drops the older entry', () => {
    const { cache, clock } = setup({ ttlMs: 1_000 })
    cache.set(balance('a', 10))
    clock.now = T0 + 100
    cache.set(balance('a', 4, [T0 + 100]))
    expect(cache.get('a')).toBeUndefined()
    cache.set(balance('b', 4, [T0 + 50]))
    expect(cache.get('b')).toBeUndefined()
  })
})

describe('BalanceCache max (LRU)', () => {
  it('holds at most max accounts, evicting the least recently used', () => {
    const { cache } = setup({ max: 2 })
    cache.set(balance('a', 1))
    cache.set(balance('b', 2))
    expect(cache.get('a')?.total).toBe(1) // a is now more recent than b
    cache.set(balance('c', 3))
    expect(cache.get('b')).toBeUndefined()
    expect(cache.get('a')?.total).toBe(1)
    expect(cache.get('c')?.total).toBe(3)
  })

  it('max 1 keeps only the last', () => {
    const { cache } = setup({ max: 1 })
    for (const [i, name] of ['a', 'b', 'c', 'd'].entries()) cache.set(balance(name, i))
    expect(cache.get('a')).toBeUndefined()
    expect(cache.get('c')).toBeUndefined()
    expect(cache.get('d')?.total).toBe(3)
  })

  it('many accounts under max are all kept', () => {
    const { cache } = setup({ max: 500 })
    for (let i = 0; i < 500; i++) cache.set(balance(`u${i}`, i))
    for (let i = 0; i < 500; i++) expect(cache.get(`u${i}`)?.total).toBe(i)
    cache.set(balance('extra', 1))
    expect(cache.get('u0')).toBeUndefined()
  })
})

describe('BalanceCache updates in place', () => {
  it('follows the bucket count down and up, and never changes a copy it handed out', () => {
    const { cache } = setup({ ttlMs: 1_000 })
    cache.set(balance('a', 10, [null, null]))
    const first = cache.get('a')!
    expect(first.buckets).toHaveLength(2)
    cache.set(balance('a', 7, [null]))
    const second = cache.get('a')!
    expect(second.total).toBe(7)
    expect(second.buckets).toHaveLength(1)
    cache.set(balance('a', 5, [null, null, null]))
    expect(cache.get('a')!.buckets.map((b) => b.remaining)).toEqual([5, 0, 0])
    // Earlier copies are the caller's: later writes do not reach them.
    expect(first.total).toBe(10)
    expect(first.buckets).toHaveLength(2)
    expect(second.buckets).toHaveLength(1)
  })
})
