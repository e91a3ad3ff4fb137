import { describe, expect, it } from 'vitest'
import { applyOperation, newAccountState } from './apply.js'
import {
  DUE_RULES,
  holdsToLoad,
  isAccountDue,
  isBucketDue,
  isCycleDue,
  isDue,
  isHoldDue,
  matchesDueRule,
  nextCycleAt,
} from './due.js'
import { periodStart } from './periods.js'
import type {
  AccountRecord,
  AccountState,
  BucketState,
  CycleState,
  EngineConfig,
  HoldState,
  HoldStatus,
  Operation,
} from './state.js'

const NOW = Date.UTC(2030, 0, 1)
const DAY = 86_400_000
const STATUSES: HoldStatus[] = ['pending', 'committed', 'released', 'expired']

/** A small seeded generator (mulberry32): the random cases are the same on every run. */
function random(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}
const pick = <T>(r: () => number, list: readonly T[]): T => list[Math.floor(r() * list.length)]!
/** A time at, just around or far from `now`: the boundary is where rules go wrong. */
const near = (r: () => number, now: number) => now + pick(r, [-DAY, -1, 0, 0, 1, DAY])

function hold(id: string, over: Partial<HoldState> = {}): HoldState {
  return {
    id,
    account: 'a',
    amount: 5,
    expiresAt: NOW,
    createdAt: NOW - 1_000,
    status: 'pending',
    allocations: [],
    metadata: {},
    resolvedAt: null,
    ...over,
  }
}

function bucket(over: Partial<BucketState> = {}): BucketState {
  return {
    id: 'grt_1',
    amount: 10,
    remaining: 10,
    held: 0,
    expiresAt: null,
    priority: 50,
    category: 'paid',
    createdAt: NOW - DAY,
    expired: false,
    cycleId: null,
    ...over,
  }
}

function cycle(over: Partial<CycleState> = {}): CycleState {
  return {
    id: 'cyc_1',
    amount: 10,
    every: 'day',
    rolloverMax: null,
    priority: 50,
    category: 'paid',
    anchor: NOW - DAY,
    period: 0,
    active: true,
    bucketId: null,
    ...over,
  }
}

const record = (c: CycleState | null): Pick<AccountRecord, 'cycle'> => ({ cycle: c })

describe('isDue', () => {
  it('a deadline is reached at the deadline itself, not a millisecond before; none never is', () => {
    expect(isDue(NOW, NOW)).toBe(true)
    expect(isDue(NOW - 1, NOW)).toBe(true)
    expect(isDue(NOW + 1, NOW)).toBe(false)
    expect(isDue(null, NOW)).toBe(false)
    expect(isDue(Number.POSITIVE_INFINITY, NOW)).toBe(false)
  })
})

describe('isHoldDue', () => {
  it('only a pending hold, from its expiresAt on', () => {
    expect(isHoldDue(hold('h', { expiresAt: NOW }), NOW)).toBe(true)
    expect(isHoldDue(hold('h', { expiresAt: NOW + 1 }), NOW)).toBe(false)
    for (const status of STATUSES.filter((s) => s !== 'pending')) {
      expect(isHoldDue(hold('h', { status, expiresAt: NOW - DAY }), NOW), status).toBe(false)
    }
  })
})

describe('isBucketDue', () => {
  it('a bucket past expiry whose remainder has not left yet; never one without expiry', () => {
    expect(isBucketDue(bucket({ expiresAt: NOW }), NOW)).toBe(true)
    expect(isBucketDue(bucket({ expiresAt: NOW + 1 }), NOW)).toBe(false)
    expect(isBucketDue(bucket({ expiresAt: NOW - DAY, expired: true }), NOW)).toBe(false)
    expect(isBucketDue(bucket({ expiresAt: null }), NOW)).toBe(false)
  })
})

describe('nextCycleAt and isCycleDue', () => {
  it('the next period start of an active cycle; null without one', () => {
    const c = cycle({ anchor: NOW - DAY, period: 0, every: 'day' })
    expect(nextCycleAt(record(c))).toBe(periodStart(c.anchor, 'day', 1))
    expect(nextCycleAt(record(c))).toBe(NOW)
    expect(isCycleDue(record(c), NOW)).toBe(true)
    expect(isCycleDue(record(c), NOW - 1)).toBe(false)
    expect(nextCycleAt(record(cycle({ active: false })))).toBeNull()
    expect(isCycleDue(record(cycle({ active: false, anchor: NOW - 9 * DAY })), NOW)).toBe(false)
    expect(nextCycleAt(record(null))).toBeNull()
  })
})

describe('isAccountDue', () => {
  it('due for any one of: a hold past TTL, a bucket past expiry, a period to materialise', () => {
    const quiet = {
      rec: record(null),
      buckets: [bucket()],
      holds: [hold('h', { expiresAt: NOW + 1 })],
    }
    expect(isAccountDue(quiet.rec, quiet.buckets, quiet.holds, NOW)).toBe(false)
    expect(isAccountDue(quiet.rec, quiet.buckets, [...quiet.holds, hold('x')], NOW)).toBe(true)
    expect(
      isAccountDue(quiet.rec, [...quiet.buckets, bucket({ expiresAt: NOW })], quiet.holds, NOW),
    ).toBe(true)
    expect(isAccountDue(record(cycle()), quiet.buckets, quiet.holds, NOW)).toBe(true)
    // Resolved holds among the ones given are ignored.
    expect(isAccountDue(quiet.rec, [], [hold('c', { status: 'committed' })], NOW)).toBe(false)
  })
})

describe('holdsToLoad', () => {
  it('the named hold first, whatever its status, then every due pending hold, once each', () => {
    const named = hold('named', { status: 'committed', expiresAt: NOW + DAY })
    const due1 = hold('due1', { expiresAt: NOW - 5 })
    const due2 = hold('due2', { expiresAt: NOW })
    const later = hold('later', { expiresAt: NOW + 1 })
    const done = hold('done', { status: 'expired', expiresAt: NOW - DAY })
    const all = [due1, named, later, done, due2]
    expect(holdsToLoad(named, all, NOW).map((h) => h.id)).toEqual(['named', 'due1', 'due2'])
    expect(holdsToLoad(undefined, all, NOW).map((h) => h.id)).toEqual(['due1', 'due2'])
    // A named hold that is itself due is not loaded twice.
    expect(holdsToLoad(due2, all, NOW).map((h) => h.id)).toEqual(['due2', 'due1'])
  })
})

describe('DUE_RULES (the same rules as data, for query languages)', () => {
  it('agree with the functions on 5,000 random rows, boundaries included', () => {
    const r = random(11)
    let dueHolds = 0
    let dueBuckets = 0
    let dueCycles = 0
    for (let i = 0; i < 5_000; i++) {
      const now = NOW + Math.floor(r() * 10) - 5
      const h = hold('h', { status: pick(r, STATUSES), expiresAt: near(r, now) })
      const b = bucket({ expired: r() < 0.3, expiresAt: r() < 0.2 ? null : near(r, now) })
      const c = r() < 0.3 ? null : cycle({ active: r() < 0.8, anchor: near(r, now) - DAY })
      const rec = record(c)
      expect(matchesDueRule(DUE_RULES.hold, h, now)).toBe(isHoldDue(h, now))
      expect(matchesDueRule(DUE_RULES.bucket, b, now)).toBe(isBucketDue(b, now))
      expect(matchesDueRule(DUE_RULES.account, { nextCycleAt: nextCycleAt(rec) }, now)).toBe(
        isCycleDue(rec, now),
      )
      if (isHoldDue(h, now)) dueHolds++
      if (isBucketDue(b, now)) dueBuckets++
      if (isCycleDue(rec, now)) dueCycles++
    }
    // Both answers occur often: the comparison above is not all one-sided.
    for (const n of [dueHolds, dueBuckets, dueCycles]) {
      expect(n).toBeGreaterThan(300)
      expect(n).toBeLessThan(4_700)
    }
  })

  it('a rule that says otherwise is caught (the check above can fail)', () => {
    const wrong = [{ field: 'expiresAt', dueAt: 'now' }] as const
    const resolved = hold('h', { status: 'committed', expiresAt: NOW - 1 })
    expect(matchesDueRule(wrong, resolved, NOW)).not.toBe(isHoldDue(resolved, NOW))
  })
})

// ---------------------------------------------------------------- the engine's housekeeping

const CONFIG: EngineConfig = {
  lowBalanceThreshold: null,
  overdraftLimit: null,
  overage: 'clamp',
  redeemMaxFailures: 10,
  redeemWindowMs: 3_600_000,
}

/** One account as a store keeps it: the state, and every hold ever made. */
class TinyStore {
  readonly state: AccountState = newAccountState('a', NOW)
  readonly holds: HoldState[] = []
  #n = 0

  apply(op: Operation, now: number) {
    const named =
      'holdId' in op
        ? this.holds.find((h) => h.id === (op as { holdId: string }).holdId)
        : undefined
    this.state.holds = holdsToLoad(named, this.holds, now)
    const fx = applyOperation(this.state, op, {
      now,
      config: CONFIG,
      idempotency: null,
      newId: (prefix) => `${prefix}_${++this.#n}`,
    })
    for (const h of fx.touchedHolds) if (!this.holds.includes(h)) this.holds.push(h)
    return fx
  }

  isDue(now: number): boolean {
    return isAccountDue(this.state.record, this.state.buckets, this.holds, now)
  }
}

function randomOp(r: () => number, store: TinyStore, now: number): Operation {
  const pending = store.holds.filter((h) => h.status === 'pending')
  const roll = r()
  if (roll < 0.3) {
    return {
      type: 'grant',
      amount: 1 + Math.floor(r() * 20),
      expiresAt: r() < 0.3 ? null : now + 1 + Math.floor(r() * 3 * DAY),
      validityDays: null,
      priority: 50,
      category: pick(r, ['paid', 'promotional'] as const),
      metadata: {},
    }
  }
  if (roll < 0.55) {
    return {
      type: 'reserve',
      amount: Math.floor(r() * 6),
      ttlMs: 1_000 + Math.floor(r() * DAY),
      metadata: {},
    }
  }
  if (roll < 0.7 && pending.length > 0) {
    const h = pick(r, pending)
    return r() < 0.5
      ? {
          type: 'commit',
          holdId: h.id,
          actual: Math.floor(r() * 8),
          overage: undefined,
          metadata: {},
        }
      : { type: 'release', holdId: h.id, metadata: {} }
  }
  if (roll < 0.75) {
    return {
      type: 'startCycle',
      amount: 5,
      every: { days: 1 + Math.floor(r() * 2) },
      rolloverMax: null,
      priority: 50,
      category: 'paid',
    }
  }
  if (roll < 0.78) return { type: 'stopCycle' }
  return { type: 'debit', amount: Math.floor(r() * 4), metadata: {} }
}

describe('isAccountDue is exactly "the housekeeping has work"', () => {
  it('on random accounts, a read at `now` changes the account if and only if it was due', () => {
    let due = 0
    let quiet = 0
    for (let seed = 1; seed <= 60; seed++) {
      const r = random(seed)
      const store = new TinyStore()
      let now = NOW
      for (let step = 0; step < 40; step++) {
        now += Math.floor(r() * r() * 2 * DAY)
        const probe = now + pick(r, [-1, 0, 0, 1, DAY])
        // A first read settles the alert level, so that only housekeeping can change the next.
        if (probe >= now) {
          store.apply({ type: 'balance' }, now)
          const expected = store.isDue(probe)
          const fx = store.apply({ type: 'balance' }, probe)
          expect(fx.changed, `seed ${seed} step ${step}`).toBe(expected)
          if (expected) {
            due++
            // Applied: nothing is due any more at that time.
            expect(store.isDue(probe)).toBe(false)
            now = probe
          } else quiet++
        }
        store.apply(randomOp(r, store, now), now)
      }
    }
    expect(due).toBeGreaterThan(50)
    expect(quiet).toBeGreaterThan(50)
  })
})
