/**
 * Worked examples of the reference model on its own, so a failing property can be blamed on the
 * engine with some confidence: each case is a rule of DESIGN §1 / docs/decisions.md computed by
 * hand. The property itself runs per store through `describeStoreConformance`.
 */
import { describe, expect, it } from 'vitest'
import { type ModelConfig, periodStartOf, ReferenceModel } from './reference-model.js'

const DAY = 86_400_000
const T0 = Date.UTC(2025, 0, 31, 12)
const CONFIG: ModelConfig = {
  overage: 'clamp',
  overdraftLimit: null,
  lowBalanceThreshold: null,
  redeemMaxFailures: 2,
  redeemWindowMs: 3_600_000,
  retentionMs: 2 * DAY,
}

const totals = (m: ReferenceModel, now: number, account = 'a') => {
  const { total, held, available, debt } = m.balance(now, account)
  return { total, held, available, debt }
}

describe('reference model', () => {
  it('keeps the anchor day of month, clamped to shorter months', () => {
    const days = [1, 2, 3].map((i) => new Date(periodStartOf(T0, 'month', i)).toISOString())
    expect(days).toEqual([
      '2025-02-28T12:00:00.000Z',
      '2025-03-31T12:00:00.000Z',
      '2025-04-30T12:00:00.000Z',
    ])
  })

  it('burns by priority, then expiry (none last), then promotional before paid', () => {
    const m = new ReferenceModel(CONFIG)
    m.grant(T0, 'a', 10, {}, undefined, 'paid-forever')
    m.grant(T0, 'a', 10, { validityDays: 1, category: 'promotional' }, undefined, 'promo')
    m.grant(T0, 'a', 10, { validityDays: 1 }, undefined, 'paid')
    m.grant(T0, 'a', 10, { priority: 99, validityDays: 1 }, undefined, 'last')
    const out = m.debit(T0, 'a', 25, undefined)
    expect(out.kind === 'ok' && out.value.allocations.map((a) => [a.bucket.id, a.amount])).toEqual([
      ['promo', 10],
      ['paid', 10],
      ['paid-forever', 5],
    ])
  })

  it('keeps the held part of an expired bucket until the hold resolves; freed parts leave', () => {
    const m = new ReferenceModel(CONFIG)
    m.grant(T0, 'a', 10, { expiresAt: T0 + 5_000 }, undefined, 'g')
    m.reserve(T0, 'a', 4, 60_000, undefined, 'h')
    expect(totals(m, T0 + 5_000)).toEqual({ total: 4, held: 4, available: 0, debt: 0 })
    expect(m.commit(T0 + 6_000, 'h', 3, undefined, undefined)).toEqual({
      kind: 'ok',
      value: { charged: 3, shortfall: 0, debt: 0, freed: 1 },
    })
    expect(totals(m, T0 + 6_000)).toEqual({ total: 0, held: 0, available: 0, debt: 0 })
    expect(m.release(T0 + 6_000, 'h', undefined)).toEqual({
      kind: 'error',
      codes: ['hold_resolved'],
    })
  })

  it('releases a hold at its TTL; acting on it afterwards is hold_expired', () => {
    const m = new ReferenceModel(CONFIG)
    m.grant(T0, 'a', 10, {}, undefined, 'g')
    m.reserve(T0, 'a', 4, 1_000, undefined, 'h')
    expect(totals(m, T0 + 1_000)).toEqual({ total: 10, held: 0, available: 10, debt: 0 })
    expect(m.commit(T0 + 1_000, 'h', undefined, undefined, undefined).kind).toBe('error')
  })

  it('overdraft: hold, then what is available, then debt up to the limit, then shortfall', () => {
    const m = new ReferenceModel({ ...CONFIG, overage: 'overdraft', overdraftLimit: 5 })
    m.grant(T0, 'a', 10, {}, undefined, 'g')
    m.reserve(T0, 'a', 4, 60_000, undefined, 'h')
    expect(m.commit(T0, 'h', 20, undefined, undefined)).toEqual({
      kind: 'ok',
      value: { charged: 15, shortfall: 5, debt: 5, freed: 0 },
    })
    expect(m.grant(T0, 'a', 7, {}, undefined, 'g2')).toEqual({
      kind: 'ok',
      value: { repaidDebt: 5, expiresAt: null },
    })
    expect(totals(m, T0)).toEqual({ total: 2, held: 0, available: 2, debt: 0 })
  })

  it('rolls over at most rollover.max of the ending period into the next', () => {
    const m = new ReferenceModel(CONFIG)
    m.startCycle(T0, 'a', { amount: 100, every: 'day', rolloverMax: 30 }, undefined, 'c')
    m.debit(T0, 'a', 40, undefined)
    expect(totals(m, T0 + DAY).total).toBe(130)
    expect(totals(m, T0 + 2 * DAY).total).toBe(130)
  })

  it('replays a key with the same input (validityDays as given), conflicts on other input', () => {
    const m = new ReferenceModel(CONFIG)
    m.grant(T0, 'a', 10, { validityDays: 1 }, 'k', 'g')
    expect(m.grant(T0 + 1_000, 'a', 10, { validityDays: 1 }, 'k', 'x')).toEqual({
      kind: 'replay',
      key: 'k',
    })
    expect(m.grant(T0, 'b', 10, { validityDays: 1 }, 'k', 'x').kind).toBe('error')
    expect(m.debit(T0, 'a', 1, 'k')).toEqual({ kind: 'error', codes: ['idempotency_conflict'] })
  })
})
