import { describe, expect, it } from 'vitest'
import { compareBuckets, ensureBurnOrder, insertBucket } from './burn-order.js'
import type { BucketState } from './state.js'

function bucket(id: string, over: Partial<BucketState> = {}): BucketState {
  return {
    id,
    amount: 10,
    remaining: 10,
    held: 0,
    expiresAt: null,
    priority: 50,
    category: 'paid',
    createdAt: 1_000,
    expired: false,
    cycleId: null,
    ...over,
  }
}

const sign = (n: number) => Math.sign(n)

describe('compareBuckets', () => {
  it('lower priority burns first, whatever the other fields say', () => {
    const a = bucket('z', { priority: 10, expiresAt: null, category: 'paid', createdAt: 9_999 })
    const b = bucket('a', { priority: 20, expiresAt: 5, category: 'promotional', createdAt: 1 })
    expect(sign(compareBuckets(a, b))).toBe(-1)
    expect(sign(compareBuckets(b, a))).toBe(1)
  })

  it('at equal priority, earlier expiry burns first and no expiry burns last', () => {
    const soon = bucket('z', { expiresAt: 2_000 })
    const later = bucket('y', { expiresAt: 3_000 })
    const never = bucket('a', { expiresAt: null, category: 'promotional', createdAt: 0 })
    expect(sign(compareBuckets(soon, later))).toBe(-1)
    expect(sign(compareBuckets(later, soon))).toBe(1)
    expect(sign(compareBuckets(later, never))).toBe(-1)
    expect(sign(compareBuckets(never, later))).toBe(1)
    // a far-future expiry still burns before no expiry
    expect(sign(compareBuckets(bucket('q', { expiresAt: 8.64e15 }), never))).toBe(-1)
  })

  it('then promotional before paid', () => {
    const promo = bucket('z', { category: 'promotional', createdAt: 5_000 })
    const paid = bucket('a', { category: 'paid', createdAt: 1 })
    expect(sign(compareBuckets(promo, paid))).toBe(-1)
    expect(sign(compareBuckets(paid, promo))).toBe(1)
  })

  it('then created first', () => {
    const older = bucket('z', { createdAt: 1 })
    const newer = bucket('a', { createdAt: 2 })
    expect(sign(compareBuckets(older, newer))).toBe(-1)
    expect(sign(compareBuckets(newer, older))).toBe(1)
  })

  it('then id', () => {
    expect(sign(compareBuckets(bucket('grt_A'), bucket('grt_B')))).toBe(-1)
    expect(sign(compareBuckets(bucket('grt_B'), bucket('grt_A')))).toBe(1)
    expect(compareBuckets(bucket('grt_A'), bucket('grt_A'))).toBe(0)
  })

  it('ignores amount, remaining, held, expired and cycleId', () => {
    const a = bucket('x', { amount: 1, remaining: 1, held: 1, expired: true, cycleId: 'c' })
    const b = bucket('x', { amount: 99, remaining: 50, held: 0, expired: false, cycleId: null })
    expect(compareBuckets(a, b)).toBe(0)
  })

  it('is a total order: antisymmetric and transitive over a grid of buckets', () => {
    const all: BucketState[] = []
    let n = 0
    for (const priority of [0, 50, 100])
      for (const expiresAt of [null, 1_000, 2_000])
        for (const category of ['paid', 'promotional'] as const)
          for (const createdAt of [1, 2])
            for (const id of ['a', 'b'])
              all.push(bucket(`${id}${n++ % 2}`, { priority, expiresAt, category, createdAt }))
    for (const x of all) {
      for (const y of all) {
        expect(sign(compareBuckets(x, y)) + sign(compareBuckets(y, x))).toBe(0)
        if (x !== y && x.id !== y.id) expect(compareBuckets(x, y)).not.toBe(0)
        for (const z of all) {
          if (compareBuckets(x, y) < 0 && compareBuckets(y, z) < 0) {
            expect(compareBuckets(x, z)).toBeLessThan(0)
          }
        }
      }
    }
  })
})

/** A list that violates each tie-breaker in turn; its burn order is known. */
function expectedOrder(): BucketState[] {
  return [
    bucket('p10', { priority: 10, expiresAt: null }),
    bucket('exp1000-promo', { expiresAt: 1_000, category: 'promotional', createdAt: 5 }),
    bucket('exp1000-paid-old-a', { expiresAt: 1_000, createdAt: 1 }),
    bucket('exp1000-paid-old-b', { expiresAt: 1_000, createdAt: 1 }),
    bucket('exp1000-paid-new', { expiresAt: 1_000, createdAt: 2 }),
    bucket('exp2000', { expiresAt: 2_000 }),
    bucket('never-promo', { category: 'promotional' }),
    bucket('never-paid', {}),
    bucket('p90', { priority: 90, expiresAt: 1 }),
  ]
}

function ids(list: BucketState[]): string[] {
  return list.map((b) => b.id)
}

/** Deterministic shuffle (mulberry32). */
function shuffled<T>(list: T[], seed: number): T[] {
  let s = seed >>> 0
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const out = [...list]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

describe('insertBucket', () => {
  it('inserting in any order yields the burn order', () => {
    const want = ids(expectedOrder())
    for (let seed = 1; seed <= 50; seed++) {
      const list: BucketState[] = []
      for (const b of shuffled(expectedOrder(), seed)) insertBucket(list, b)
      expect(ids(list)).toEqual(want)
    }
  })

  it('appends a bucket that goes last, and puts an earlier one in front', () => {
    const list = [bucket('a', { expiresAt: 1_000 }), bucket('b', { expiresAt: 2_000 })]
    insertBucket(list, bucket('c', { expiresAt: null }))
    expect(ids(list)).toEqual(['a', 'b', 'c'])
    insertBucket(list, bucket('d', { expiresAt: 500 }))
    expect(ids(list)).toEqual(['d', 'a', 'b', 'c'])
    insertBucket(list, bucket('e', { expiresAt: 1_500 }))
    expect(ids(list)).toEqual(['d', 'a', 'e', 'b', 'c'])
  })

  it('inserts into an empty list', () => {
    const list: BucketState[] = []
    insertBucket(list, bucket('only'))
    expect(ids(list)).toEqual(['only'])
  })

  it('keeps the same object (no copy)', () => {
    const b = bucket('x')
    const list: BucketState[] = []
    insertBucket(list, b)
    expect(list[0]).toBe(b)
  })
})

describe('ensureBurnOrder', () => {
  it('sorts a shuffled list into burn order', () => {
    const want = ids(expectedOrder())
    for (let seed = 1; seed <= 50; seed++) {
      const list = shuffled(expectedOrder(), seed)
      ensureBurnOrder(list)
      expect(ids(list)).toEqual(want)
    }
  })

  it('sorts a reversed list', () => {
    const list = expectedOrder().reverse()
    ensureBurnOrder(list)
    expect(ids(list)).toEqual(ids(expectedOrder()))
  })

  it('leaves a sorted list as it is (same array, same objects)', () => {
    const list = expectedOrder()
    const before = [...list]
    ensureBurnOrder(list)
    expect(list).toHaveLength(before.length)
    for (const [i, b] of list.entries()) expect(b).toBe(before[i])
  })

  it('handles empty and single-element lists', () => {
    const empty: BucketState[] = []
    ensureBurnOrder(empty)
    expect(empty).toEqual([])
    const one = [bucket('a')]
    ensureBurnOrder(one)
    expect(ids(one)).toEqual(['a'])
  })
})
