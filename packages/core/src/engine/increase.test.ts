import { describe, expect, it } from 'vitest'
import { applyOperation, newAccountState, toLedgerEntry } from './apply.js'
import { fingerprintOf } from './idempotency.js'
import { replayLedger } from './replay.js'
import type {
  AccountState,
  EngineConfig,
  EngineContext,
  IdempotencyRecord,
  Operation,
} from './state.js'

const NOW = Date.UTC(2030, 0, 1)
const CONFIG: EngineConfig = {
  lowBalanceThreshold: null,
  overdraftLimit: null,
  overage: 'clamp',
  redeemMaxFailures: 5,
  redeemWindowMs: 60_000,
}

/** One account driven through the engine, as a store would: entries kept, keys saved. */
class Account {
  state: AccountState = newAccountState('a', NOW)
  entries: ReturnType<typeof toLedgerEntry>[] = []
  keys = new Map<string, IdempotencyRecord>()
  #seq = 0

  apply(op: Operation, now = NOW) {
    const ctx: EngineContext = {
      now,
      config: CONFIG,
      idempotency:
        op.idempotencyKey === undefined ? null : (this.keys.get(op.idempotencyKey) ?? null),
      newId: (prefix) => `${prefix}_${++this.#seq}`,
    }
    const fx = applyOperation(this.state, op, ctx)
    for (const e of fx.entries) this.entries.push(toLedgerEntry({ ...e, id: `e${++this.#seq}` }))
    if (fx.saveIdempotency) this.keys.set(fx.saveIdempotency.key, fx.saveIdempotency)
    return fx
  }

  grant(amount: number, priority = 50, expiresAt: number | null = null): string {
    const fx = this.apply({
      type: 'grant',
      amount,
      expiresAt,
      validityDays: null,
      priority,
      category: 'paid',
      metadata: {},
    })
    return fx.result!.id as string
  }

  reserve(amount: number, ttlMs = 60_000): string {
    const fx = this.apply({ type: 'reserve', amount, ttlMs, metadata: {} })
    return fx.result!.id as string
  }

  increase(holdId: string, amount: number, partial = false, idempotencyKey?: string, now = NOW) {
    return this.apply({ type: 'increase', holdId, amount, partial, idempotencyKey }, now)
  }

  hold(id: string) {
    return this.state.holds.find((h) => h.id === id)!
  }
}

describe('increase', () => {
  it('grows a pending hold from free credits in burn order, with a hold entry', () => {
    const a = new Account()
    const first = a.grant(5, 10)
    const second = a.grant(20, 50)
    const id = a.reserve(3)
    const fx = a.increase(id, 6)
    expect(fx.error).toBeNull()
    expect(fx.result).toEqual({
      holdId: id,
      account: 'a',
      amount: 9,
      added: 6,
      expiresAt: NOW + 60_000,
    })
    expect(a.hold(id).allocations).toEqual([
      { bucketId: first, amount: 5 },
      { bucketId: second, amount: 4 },
    ])
    expect(fx.balance).toMatchObject({ total: 25, held: 9, available: 16 })
    const entry = a.entries.at(-1)!
    expect(entry).toMatchObject({ type: 'hold', delta: 0, heldDelta: 6, holdId: id })
    expect(replayLedger(a.entries)).toEqual({ total: 25, held: 9, available: 16, debt: 0 })
  })

  it('is all or nothing: InsufficientCreditsError with required and available, hold untouched', () => {
    const a = new Account()
    a.grant(10)
    const id = a.reserve(4)
    const fx = a.increase(id, 7)
    expect(fx.error?.code).toBe('insufficient_credits')
    expect(fx.error?.toJSON()).toMatchObject({ required: 7, available: 6 })
    expect(a.hold(id).amount).toBe(4)
    expect(fx.entries).toEqual([])
    expect(fx.balance).toMatchObject({ held: 4, available: 6 })
  })

  it('partial: grows by what is available, up to the amount, and reports it', () => {
    const a = new Account()
    a.grant(10)
    const id = a.reserve(4)
    expect(a.increase(id, 7, true).result).toMatchObject({ amount: 10, added: 6 })
    // Nothing left: answers with nothing added and writes no entry.
    const fx = a.increase(id, 3, true)
    expect(fx.result).toMatchObject({ amount: 10, added: 0 })
    expect(fx.entries).toEqual([])
    expect(a.increase(id, 2, true).result).toMatchObject({ added: 0 })
    // Fits: the whole amount.
    a.grant(5)
    expect(a.increase(id, 2, true).result).toMatchObject({ amount: 12, added: 2 })
    expect(replayLedger(a.entries)).toMatchObject({ held: 12, available: 3 })
  })

  it('by zero answers the hold as it is, with no entry', () => {
    const a = new Account()
    a.grant(10)
    const id = a.reserve(4)
    const fx = a.increase(id, 0)
    expect(fx.result).toMatchObject({ amount: 4, added: 0 })
    expect(fx.entries).toEqual([])
  })

  it('keeps allocations in burn order and merges parts of one bucket', () => {
    const a = new Account()
    const late = a.grant(10, 50)
    const id = a.reserve(2)
    // A bucket granted later that burns first: the grown hold lists it first.
    const early = a.grant(3, 1)
    a.increase(id, 5)
    expect(a.hold(id).allocations).toEqual([
      { bucketId: early, amount: 3 },
      { bucketId: late, amount: 4 },
    ])
  })

  it('a commit of the grown hold spends its allocations in burn order and frees the rest', () => {
    const a = new Account()
    const late = a.grant(10, 50)
    const id = a.reserve(2)
    const early = a.grant(3, 1)
    a.increase(id, 5)
    const fx = a.apply({
      type: 'commit',
      holdId: id,
      actual: 4,
      overage: undefined,
      metadata: {},
    })
    expect(fx.result).toMatchObject({ charged: 4, freed: 3 })
    // The early bucket is spent first (3), then one from the late bucket.
    expect(fx.balance.buckets).toEqual([
      expect.objectContaining({ id: late, remaining: 9, held: 0 }),
    ])
    expect(early).toBeTruthy()
    expect(replayLedger(a.entries)).toEqual({ total: 9, held: 0, available: 9, debt: 0 })
  })

  it('a release of the grown hold frees all of it', () => {
    const a = new Account()
    a.grant(10)
    const id = a.reserve(2)
    a.increase(id, 5)
    const fx = a.apply({ type: 'release', holdId: id, metadata: {} })
    expect(fx.result).toMatchObject({ freed: 7 })
    expect(fx.balance).toMatchObject({ total: 10, held: 0 })
    expect(replayLedger(a.entries)).toEqual({ total: 10, held: 0, available: 10, debt: 0 })
  })

  it('a bucket that expires keeps its held part, grown parts included, until the hold resolves', () => {
    const a = new Account()
    const soon = a.grant(10, 50, NOW + 1_000)
    const id = a.reserve(2, 3_600_000)
    a.increase(id, 3)
    const later = a.apply({ type: 'balance' }, NOW + 2_000)
    expect(later.balance).toMatchObject({ total: 5, held: 5, available: 0 })
    const fx = a.apply(
      { type: 'commit', holdId: id, actual: 4, overage: undefined, metadata: {} },
      NOW + 3_000,
    )
    expect(fx.result).toMatchObject({ charged: 4 })
    expect(fx.balance).toMatchObject({ total: 0, held: 0 })
    expect(soon).toBeTruthy()
    expect(replayLedger(a.entries)).toEqual({ total: 0, held: 0, available: 0, debt: 0 })
  })

  it('a resolved hold is HoldResolvedError, an expired one HoldExpiredError, an unknown NotFound', () => {
    const a = new Account()
    a.grant(10)
    const done = a.reserve(1)
    a.apply({ type: 'release', holdId: done, metadata: {} })
    expect(a.increase(done, 1).error?.code).toBe('hold_resolved')
    const old = a.reserve(1, 1_000)
    const late = a.increase(old, 1, false, undefined, NOW + 5_000)
    expect(late.error?.code).toBe('hold_expired')
    expect(late.error?.status).toBe(410)
    expect(a.increase('hld_none', 1).error?.code).toBe('not_found')
  })

  it('replays under the same key and input; another input under the key conflicts', () => {
    const a = new Account()
    a.grant(10)
    const id = a.reserve(1)
    const first = a.increase(id, 3, false, 'k1')
    const again = a.increase(id, 3, false, 'k1')
    expect(again.replayed).toBe(true)
    expect(again.result).toMatchObject({ amount: 4, added: 3 })
    expect(again.entries).toEqual([])
    expect(a.hold(id).amount).toBe(4)
    expect(first.entries[0]?.idempotencyKey).toBe('k1')
    expect(a.increase(id, 2, false, 'k1').error?.code).toBe('idempotency_conflict')
    expect(a.increase(id, 3, true, 'k1').error?.code).toBe('idempotency_conflict')
    expect(a.hold(id).amount).toBe(4)
  })

  it('the fingerprint carries every input field', () => {
    expect(fingerprintOf({ type: 'increase', holdId: 'h', amount: 2, partial: true })).toBe(
      '{"type":"increase","holdId":"h","amount":2,"partial":true}',
    )
  })
})
