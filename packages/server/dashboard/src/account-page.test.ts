import { describe, expect, it } from 'vitest'
import { burnOrder, pendingHolds } from './account-page.js'
import type { Bucket, LedgerEntry } from './types.js'

const bucket = (id: string, o: Partial<Bucket>): Bucket => ({
  id,
  remaining: 1,
  held: 0,
  expiresAt: null,
  priority: 50,
  category: 'paid',
  ...o,
})

const entry = (
  type: LedgerEntry['type'],
  holdId: string,
  heldDelta: number,
  at: number,
): LedgerEntry => ({
  id: `${type}-${holdId}-${at}`,
  account: 'a',
  type,
  delta: 0,
  heldDelta,
  debtDelta: 0,
  balanceAfter: 0,
  holdId,
  metadata: {},
  at,
})

describe('burnOrder', () => {
  it('orders by priority, then expiry (none last), then promotional before paid', () => {
    const order = burnOrder([
      bucket('never', {}),
      bucket('late', { expiresAt: 200 }),
      bucket('paid-early', { expiresAt: 100 }),
      bucket('promo-early', { expiresAt: 100, category: 'promotional' }),
      bucket('first', { priority: 1 }),
    ]).map((b) => b.id)
    expect(order).toEqual(['first', 'promo-early', 'paid-early', 'late', 'never'])
  })
})

describe('pendingHolds', () => {
  it('keeps holds without a commit or release, summing their increases', () => {
    // Newest first, as the ledger pages.
    const holds = pendingHolds([
      entry('hold', 'h1', 5, 4),
      entry('commit', 'h2', -3, 3),
      entry('hold', 'h2', 3, 2),
      entry('hold', 'h1', 10, 1),
    ])
    expect(holds).toEqual([{ id: 'h1', amount: 15, at: 1 }])
  })
})
