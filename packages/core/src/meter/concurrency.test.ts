import { describe, expect, it } from 'vitest'
import { InsufficientCreditsError, isTollgateError } from '../errors.js'
import { memoryStore } from '../store/memory-store.js'
import type { Store } from '../store/store.js'
import { expectLedgerReplays, fullLedger } from '../test-support.js'
import type { Balance } from '../types.js'
import { createMeter, type Hold, type Meter } from './meter.js'

const T0 = Date.UTC(2030, 0, 1)

function newMeter(store: Store = memoryStore()): Meter {
  const now = T0
  return createMeter({ store, clock: () => now })
}

/**
 * A store whose calls are delayed by a random number of microtask turns before and after the
 * operation runs, so concurrent operations reach it, and their answers come back, in shuffled
 * order (as with a remote store). No timers, no sleeping.
 */
function jitteryStore(seed: number): Store {
  const inner = memoryStore()
  const rand = rng(seed)
  const yieldSome = async () => {
    const turns = Math.floor(rand() * 20)
    for (let i = 0; i < turns; i++) await Promise.resolve()
  }
  return {
    kind: 'jittery',
    execute: async (req) => {
      await yieldSome()
      const out = await inner.execute(req)
      await yieldSome()
      return out
    },
    ledger: (t, a, r) => inner.ledger(t, a, r),
    createCodes: (t, b) => inner.createCodes(t, b),
    dueAccounts: (t, n, l) => inner.dueAccounts(t, n, l),
    prune: (t, b) => inner.prune(t, b),
    close: () => inner.close(),
  }
}

function expectSane(b: Balance): void {
  expect(b.total).toBeGreaterThanOrEqual(0)
  expect(b.held).toBeGreaterThanOrEqual(0)
  expect(b.available).toBeGreaterThanOrEqual(0)
  expect(b.held).toBeLessThanOrEqual(b.total)
  expect(b.available).toBe(b.total - b.held)
  expect(b.buckets.reduce((s, x) => s + x.remaining, 0)).toBe(b.total)
  expect(b.buckets.reduce((s, x) => s + x.held, 0)).toBe(b.held)
  for (const x of b.buckets) {
    expect(x.held).toBeGreaterThanOrEqual(0)
    expect(x.held).toBeLessThanOrEqual(x.remaining)
  }
}

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

describe('concurrent reserves against a limited balance', () => {
  it.each([
    ['memory store', () => memoryStore()],
    ['a store answering out of order', () => jitteryStore(7)],
  ])(
    '200 concurrent reserve(1) against 50 credits: exactly 50 holds and 150 InsufficientCreditsErrors (%s)',
    async (_name, makeStore) => {
      const meter = newMeter(makeStore())
      await meter.grant('a', 50)
      const settled = await Promise.allSettled(
        Array.from({ length: 200 }, () => meter.reserve('a', 1)),
      )
      const holds = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []))
      const errors = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as unknown] : []))
      expect(holds).toHaveLength(50)
      expect(errors).toHaveLength(150)
      for (const err of errors) {
        expect(err).toBeInstanceOf(InsufficientCreditsError)
        expect(err).toMatchObject({
          code: 'insufficient_credits',
          status: 402,
          required: 1,
          available: 0,
        })
      }
      expect(new Set(holds.map((h) => h.id)).size).toBe(50)
      for (const h of holds) {
        expect(h.amount).toBe(1)
        expectSane(h.balance)
      }
      // The holds saw the balance shrink one at a time.
      expect(holds.map((h) => h.balance.available).sort((x, y) => x - y)).toEqual(
        Array.from({ length: 50 }, (_, i) => i),
      )

      const mid = await meter.balance('a', { fresh: true })
      expect(mid).toMatchObject({ total: 50, held: 50, available: 0 })

      const commits = await Promise.all(holds.map((h) => h.commit()))
      for (const c of commits) expect(c).toMatchObject({ charged: 1, shortfall: 0, freed: 0 })
      const end = await expectLedgerReplays(meter, 'a')
      expect(end).toMatchObject({ total: 0, held: 0, available: 0, debt: 0 })

      const entries = await fullLedger(meter, 'a')
      expect(entries.filter((e) => e.type === 'hold')).toHaveLength(50)
      expect(entries.filter((e) => e.type === 'commit')).toHaveLength(50)
      expect(entries).toHaveLength(101)
    },
  )

  it('concurrent debits never overspend', async () => {
    const meter = newMeter()
    await meter.grant('a', 100)
    const settled = await Promise.allSettled(Array.from({ length: 60 }, () => meter.debit('a', 3)))
    const ok = settled.filter((s) => s.status === 'fulfilled')
    expect(ok).toHaveLength(33)
    const end = await expectLedgerReplays(meter, 'a')
    expect(end).toMatchObject({ total: 1, held: 0, available: 1 })
  })
})

describe('concurrent mixed operations on one account', () => {
  for (const [seed, jitter] of [
    [1, false],
    [2, false],
    [3, true],
    [4, true],
    [5, true],
  ] as const) {
    it(`never overspend and end with exact totals (seed ${seed}${jitter ? ', out-of-order store' : ''})`, async () => {
      const meter = newMeter(jitter ? jitteryStore(seed) : memoryStore())
      const rand = rng(seed)
      const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1))
      await meter.grant('a', 500)
      await meter.grant('a', 300, { validityDays: 10, category: 'promotional' })
      let granted = 800
      let spent = 0
      let pendingHeld = 0
      let insufficient = 0
      const seen: Balance[] = []

      const task = async (): Promise<void> => {
        const kind = int(0, 9)
        try {
          if (kind <= 2) {
            const amount = int(0, 40)
            const r = await meter.debit('a', amount)
            spent += amount
            seen.push(r.balance)
          } else if (kind === 3) {
            const amount = int(1, 30)
            const r = await meter.grant('a', amount)
            granted += amount
            seen.push(r.balance)
          } else {
            const amount = int(0, 40)
            const hold: Hold = await meter.reserve('a', amount)
            seen.push(hold.balance)
            const next = int(0, 3)
            if (next === 0) {
              const actual = int(0, amount)
              const r = await hold.commit(actual)
              expect(r).toMatchObject({ charged: actual, shortfall: 0, freed: amount - actual })
              spent += actual
              seen.push(r.balance)
            } else if (next === 1) {
              // Above the hold: the default 'clamp' charges what is there and reports the rest.
              const actual = amount + int(1, 30)
              const r = await hold.commit(actual)
              expect(r.charged + r.shortfall).toBe(actual)
              expect(r.charged).toBeGreaterThanOrEqual(amount)
              expect(r.debt).toBe(0)
              spent += r.charged
              seen.push(r.balance)
            } else if (next === 2) {
              const r = await hold.release()
              expect(r.freed).toBe(amount)
              seen.push(r.balance)
            } else {
              pendingHeld += amount
            }
          }
        } catch (err) {
          if (!isTollgateError(err, 'insufficient_credits')) throw err
          insufficient++
        }
      }

      const settled = await Promise.allSettled(Array.from({ length: 400 }, () => task()))
      const failures = settled.filter((s) => s.status === 'rejected')
      expect(failures.map((f) => String((f as PromiseRejectedResult).reason))).toEqual([])
      expect(insufficient).toBeGreaterThan(0) // the run did reach the bottom of the balance
      for (const b of seen) expectSane(b)

      const end = await expectLedgerReplays(meter, 'a')
      expectSane(end)
      expect(end.total).toBe(granted - spent)
      expect(end.held).toBe(pendingHeld)
      expect(end.available).toBe(granted - spent - pendingHeld)
      expect(end.debt).toBe(0)
    })
  }
})

describe('concurrent operations on many accounts', () => {
  it('100 accounts do not interfere', async () => {
    const meter = newMeter()
    const accounts = Array.from({ length: 100 }, (_, i) => `acct_${i}`)
    await Promise.all(accounts.map((a, i) => meter.grant(a, 10 + i)))

    // Per account i: 15 reserves of 1 (i+10 credits → min(15, i+10) succeed), a debit of 2
    // that may fail when the holds took everything; then commit every second hold.
    const perAccount = await Promise.all(
      accounts.map(async (a) => {
        const settled = await Promise.allSettled(
          Array.from({ length: 15 }, () => meter.reserve(a, 1)),
        )
        return settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []))
      }),
    )
    const debits = await Promise.allSettled(accounts.map((a) => meter.debit(a, 2)))
    await Promise.all(
      perAccount.flatMap((holds) => holds.filter((_, j) => j % 2 === 0).map((h) => h.commit())),
    )

    for (let i = 0; i < accounts.length; i++) {
      const a = accounts[i]!
      const granted = 10 + i
      const holds = perAccount[i]!
      expect(holds).toHaveLength(Math.min(15, granted))
      expect(holds.every((h) => h.account === a)).toBe(true)
      const debited = debits[i]!.status === 'fulfilled' ? 2 : 0
      expect(debited).toBe(granted - holds.length >= 2 ? 2 : 0)
      const committed = Math.ceil(holds.length / 2)
      const end = await expectLedgerReplays(meter, a)
      expect(end).toMatchObject({
        account: a,
        total: granted - debited - committed,
        held: holds.length - committed,
        available: granted - debited - holds.length,
      })
    }
  })

  it('interleaved reserves and commits across accounts keep each ledger separate', async () => {
    const meter = newMeter()
    const accounts = Array.from({ length: 100 }, (_, i) => `u${i}`)
    await Promise.all(accounts.map((a) => meter.grant(a, 5)))
    const results = await Promise.all(
      accounts.flatMap((a) =>
        [1, 2].map(async (amount) => {
          const h = await meter.reserve(a, amount)
          return h.commit()
        }),
      ),
    )
    expect(results).toHaveLength(200)
    for (const r of results) expect(r.shortfall).toBe(0)
    for (const a of accounts) {
      const b = await expectLedgerReplays(meter, a)
      expect(b).toMatchObject({ total: 2, held: 0, available: 2 })
      const entries = await fullLedger(meter, a)
      expect(entries.map((e) => e.type).sort()).toEqual([
        'commit',
        'commit',
        'grant',
        'hold',
        'hold',
      ])
    }
  })
})
