import { describe, expect, it } from 'vitest'
import { isTollgateError, OverageError } from '../errors.js'
import { createMeter, type Meter } from '../meter/meter.js'
import { memoryStore } from '../store/memory-store.js'
import type { OveragePolicy } from '../types.js'
import { type HoldSettlement, overdraftRoom, settleHold } from './settle.js'

const HOLD = { id: 'hld_1', amount: 10 }
const POLICIES: OveragePolicy[] = ['reject', 'clamp', 'overdraft']

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
const int = (r: () => number, max: number) => Math.floor(r() * (max + 1))

describe('settleHold', () => {
  it('actual within the hold: spends it, frees the rest, whatever the policy', () => {
    for (const policy of POLICIES) {
      const room = { available: 100, overdraft: 100 }
      expect(settleHold(HOLD, 7, policy, room)).toEqual({
        fromHold: 7,
        fromAvailable: 0,
        debt: 0,
        charged: 7,
        shortfall: 0,
        freed: 3,
      })
      // No actual: the held amount.
      expect(settleHold(HOLD, undefined, policy, room)).toMatchObject({ charged: 10, freed: 0 })
      expect(settleHold(HOLD, 0, policy, room)).toMatchObject({ charged: 0, freed: 10 })
    }
  })

  it("'reject' refuses an actual above the hold with an OverageError, settling nothing", () => {
    const out = settleHold(HOLD, 11, 'reject', { available: 100, overdraft: 100 })
    expect(out).toBeInstanceOf(OverageError)
    expect((out as OverageError).toJSON()).toMatchObject({ holdId: 'hld_1', held: 10, actual: 11 })
  })

  it("'clamp' takes the excess from what is available and reports the rest as shortfall", () => {
    expect(settleHold(HOLD, 15, 'clamp', { available: 3, overdraft: 100 })).toEqual({
      fromHold: 10,
      fromAvailable: 3,
      debt: 0,
      charged: 13,
      shortfall: 2,
      freed: 0,
    })
    expect(settleHold(HOLD, 15, 'clamp', { available: 9, overdraft: 0 })).toMatchObject({
      charged: 15,
      shortfall: 0,
    })
  })

  it("'overdraft' adds what is not available as debt, up to the room, beyond it as clamp", () => {
    expect(settleHold(HOLD, 20, 'overdraft', { available: 3, overdraft: 4 })).toEqual({
      fromHold: 10,
      fromAvailable: 3,
      debt: 4,
      charged: 17,
      shortfall: 3,
      freed: 0,
    })
    // With no room it is clamp.
    expect(settleHold(HOLD, 20, 'overdraft', { available: 3, overdraft: 0 })).toEqual(
      settleHold(HOLD, 20, 'clamp', { available: 3, overdraft: 0 }),
    )
  })

  it('keeps its sums on 20,000 random settlements', () => {
    const r = random(7)
    // Checked without expect() per case (20,000 × 10 of them take seconds); one expect at the end.
    const broken: string[] = []
    const check = (ok: boolean, what: string, c: unknown) => {
      if (!ok && broken.length < 5) broken.push(`${what}: ${JSON.stringify(c)}`)
    }
    let overages = 0
    let shortfalls = 0
    for (let i = 0; i < 20_000; i++) {
      const hold = { id: 'h', amount: int(r, 50) }
      const actual = r() < 0.1 ? undefined : int(r, 80)
      const policy = POLICIES[int(r, 2)]!
      const room = { available: int(r, 30), overdraft: int(r, 30) }
      const out = settleHold(hold, actual, policy, room)
      const used = actual ?? hold.amount
      const c = { hold, actual, policy, room, out }
      if (out instanceof OverageError) {
        overages++
        check(policy === 'reject' && used > hold.amount, 'refused only under reject', c)
        continue
      }
      const s: HoldSettlement = out
      check(s.charged === s.fromHold + s.fromAvailable + s.debt, 'charged adds up', c)
      check(s.charged + s.shortfall === used, 'charged + shortfall = actual', c)
      check(s.fromHold + s.freed === hold.amount, 'the hold is spent or freed', c)
      check(s.fromAvailable <= room.available, 'no more than available', c)
      check(s.debt <= (policy === 'overdraft' ? room.overdraft : 0), 'debt within room', c)
      check(
        Object.values(s).every((v) => v >= 0),
        'no negative figure',
        c,
      )
      if (s.shortfall > 0) {
        shortfalls++
        // Shortfall only when nothing more could be had.
        check(s.fromAvailable === room.available, 'shortfall after all available', c)
        if (policy === 'overdraft') check(s.debt === room.overdraft, 'and all the room', c)
      }
    }
    expect(broken).toEqual([])
    expect(overages).toBeGreaterThan(1_000)
    expect(shortfalls).toBeGreaterThan(1_000)
  })
})

describe('overdraftRoom', () => {
  const config = { overdraftLimit: 50 }
  it("the account's limit, else the meter's, less the debt; never negative", () => {
    expect(overdraftRoom({ debt: 10, overdraftLimit: null }, config)).toBe(40)
    expect(overdraftRoom({ debt: 10, overdraftLimit: 15 }, config)).toBe(5)
    expect(overdraftRoom({ debt: 10, overdraftLimit: 0 }, config)).toBe(0)
    expect(overdraftRoom({ debt: 80, overdraftLimit: null }, config)).toBe(0)
    // No limit anywhere: up to 2^53 − 1.
    expect(overdraftRoom({ debt: 1, overdraftLimit: null }, { overdraftLimit: null })).toBe(
      Number.MAX_SAFE_INTEGER - 1,
    )
  })
})

// ---------------------------------------------------------------- both kinds of hold

const T0 = Date.UTC(2030, 0, 1)

/** The store's own balance under a meter: what its leases settled, not its local view. */
async function plainView(meter: Meter) {
  const view = createMeter({ store: meter.store, clock: () => T0, cache: false })
  return view.balance('a', { fresh: true })
}

/** A commit's figures, or its error code. */
async function commitOutcome(
  meter: Meter,
  amount: number,
  actual: number,
  overage: 'reject' | 'clamp',
): Promise<unknown> {
  const hold = await meter.reserve('a', amount, { ttlMs: 10_000 })
  try {
    const r = await hold.commit(actual, { overage })
    return { charged: r.charged, shortfall: r.shortfall, debt: r.debt, freed: r.freed }
  } catch (err) {
    if (isTollgateError(err)) return err.code
    throw err
  }
}

describe('a leased (local) hold and a store hold settle alike', () => {
  it('on random commits: the same figures as settleHold, through a lease and through the store', async () => {
    const r = random(3)
    for (let i = 0; i < 60; i++) {
      // All of the account's credits fit in one lease, so the lease has what the store has
      // (a reserve of 0 takes no lease: at least 1).
      const credits = 1 + int(r, 29)
      const amount = 1 + int(r, credits - 1)
      const actual = int(r, credits + 10)
      const overage = r() < 0.3 ? 'reject' : 'clamp'
      const clock = () => T0
      const leased = createMeter({
        store: memoryStore(),
        clock,
        lease: { size: 30, ttlMs: 60_000, flushMs: 30_000 },
      })
      const plain = createMeter({ store: memoryStore(), clock, cache: false })
      try {
        await leased.grant('a', credits)
        await plain.grant('a', credits)
        const viaLease = await commitOutcome(leased, amount, actual, overage)
        const viaStore = await commitOutcome(plain, amount, actual, overage)
        const s = settleHold({ id: 'h', amount }, actual, overage, {
          available: credits - amount,
          overdraft: 0,
        })
        const expected =
          s instanceof OverageError
            ? 'overage'
            : { charged: s.charged, shortfall: s.shortfall, debt: s.debt, freed: s.freed }
        const label = JSON.stringify({ credits, amount, actual, overage })
        expect(viaLease, label).toEqual(expected)
        expect(viaStore, label).toEqual(expected)
        // What the lease settles to the store is what it charged.
        await leased.flush()
        const spent = typeof expected === 'string' ? 0 : expected.charged
        expect((await plainView(leased)).total, label).toBe(credits - spent)
      } finally {
        await leased.close()
        await plain.close()
      }
    }
  })

  it('a local hold expires at its expiresAt, as a store hold does', async () => {
    const now = { t: T0 }
    const clock = () => now.t
    const leased = createMeter({
      store: memoryStore(),
      clock,
      lease: { size: 30, ttlMs: 60_000, flushMs: 30_000 },
    })
    const plain = createMeter({ store: memoryStore(), clock, cache: false })
    try {
      for (const m of [leased, plain]) await m.grant('a', 20)
      const local = await leased.reserve('a', 5, { ttlMs: 5_000 })
      const stored = await plain.reserve('a', 5, { ttlMs: 5_000 })
      expect(local.id.startsWith('lh_')).toBe(true)
      now.t = T0 + 5_000 - 1
      await local.extend(5_000)
      await stored.extend(5_000)
      now.t += 5_000
      for (const hold of [local, stored]) {
        await expect(hold.commit(), hold.id).rejects.toMatchObject({ code: 'hold_expired' })
      }
    } finally {
      await leased.close()
      await plain.close()
    }
  })
})
