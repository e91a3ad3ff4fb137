import { describe, expect, it } from 'vitest'
import { createMeter } from '../meter/meter.js'
import { memoryStore } from '../store/memory-store.js'
import { fullLedger } from '../test-support.js'
import type { LedgerEntry } from '../types.js'
import { replayLedger } from './replay.js'

function entry(over: Partial<LedgerEntry>): LedgerEntry {
  return {
    id: 'e1',
    account: 'a',
    type: 'grant',
    delta: 10,
    heldDelta: 0,
    debtDelta: 0,
    balanceAfter: 10,
    metadata: {},
    at: 1_000,
    ...over,
  }
}

describe('replayLedger', () => {
  it('an empty ledger is an empty balance', () => {
    expect(replayLedger([])).toEqual({ total: 0, held: 0, available: 0, debt: 0 })
  })

  it('reproduces the balance a meter reports, through grants, holds, commits and debt', async () => {
    let now = 1_000
    const meter = createMeter({ store: memoryStore(), cache: false, clock: () => now })
    await meter.grant('a', 10)
    const hold = await meter.reserve('a', 8)
    now += 1
    await meter.reserve('a', 1)
    await hold.commit(12, { overage: 'overdraft' })
    await meter.grant('a', 5)
    const balance = await meter.balance('a', { fresh: true })
    // Enough happened for the figures to be worth checking: debt repaid, a hold still pending.
    expect(balance).toMatchObject({ total: 3, held: 1, available: 2, debt: 0 })
    const { total, held, available, debt } = balance
    expect(replayLedger(await fullLedger(meter, 'a'))).toEqual({ total, held, available, debt })
  })

  it('counts debt into total: the net balance is total − debt', () => {
    const entries = [
      entry({ id: 'e1', delta: 5, balanceAfter: 5 }),
      entry({ id: 'e2', type: 'commit', delta: -8, debtDelta: 3, balanceAfter: -3 }),
    ]
    expect(replayLedger(entries)).toEqual({ total: 0, held: 0, available: 0, debt: 3 })
  })

  it('accepts an entry stamped earlier than the one before it (applied later)', () => {
    const entries = [entry({ id: 'e1' }), entry({ id: 'e2', delta: 0, balanceAfter: 10, at: 999 })]
    expect(replayLedger(entries).total).toBe(10)
  })

  it.each([
    [
      'a balanceAfter that is not the running balance',
      [entry({ balanceAfter: 9 })],
      /balanceAfter/,
    ],
    [
      'an entry of another account',
      [entry({ id: 'e1' }), entry({ id: 'e2', account: 'b', delta: 0 })],
      /account b/,
    ],
    ['an id seen twice', [entry({ id: 'e1' }), entry({ id: 'e1', delta: 0 })], /twice/],
    ['held below zero', [entry({ heldDelta: -1 })], /held goes below zero/],
    ['debt below zero', [entry({ delta: 11, balanceAfter: 11, debtDelta: -1 })], /debt goes/],
  ])('throws on %s, naming the entry', (_name, entries, message) => {
    expect(() => replayLedger(entries)).toThrow(message)
    expect(() => replayLedger(entries)).toThrow(/ledger entry e\d \(grant\)/)
  })
})
