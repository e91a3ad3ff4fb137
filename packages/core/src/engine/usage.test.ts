import { describe, expect, it } from 'vitest'
import type { LedgerEntryType } from '../types.js'
import {
  compareCodePoints,
  MAX_USAGE_DIMENSIONS,
  usageDimensions,
  usageOf,
  usagePeriodIndex,
  usageWindow,
} from './usage.js'

const e = (type: LedgerEntryType, delta: number, heldDelta = 0) => ({ type, delta, heldDelta })

describe('usageOf', () => {
  it('maps each entry type, and granted − spent − expired is always the delta', () => {
    const cases: [ReturnType<typeof e>, [number, number, number, number]][] = [
      [e('grant', 100), [100, 0, 0, 0]],
      [e('redeem', 7), [7, 0, 0, 0]],
      [e('cycle_grant', 30), [30, 0, 0, 0]],
      [e('adjust', -12), [-12, 0, 0, 0]],
      [e('debit', -10), [0, 10, 0, 0]],
      [e('hold', 0, 20), [0, 0, 0, 0]],
      [e('commit', -15, -20), [0, 15, 5, 0]],
      [e('commit', -30, -10), [0, 30, 0, 0]],
      [e('release', 0, -10), [0, 0, 10, 0]],
      [e('expire', -75), [0, 0, 0, 75]],
    ]
    for (const [entry, [granted, spent, released, expired]] of cases) {
      const f = usageOf(entry)
      expect(f, entry.type).toEqual({ granted, spent, released, expired })
      expect(f.granted - f.spent - f.expired).toBe(entry.delta)
    }
  })
})

describe('usageDimensions', () => {
  it('keeps scalar values as JSON writes them, the first keys in code point order, bounded', () => {
    const many = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`k${i + 10}`, i]))
    expect(usageDimensions(many).map(([k]) => k)).toHaveLength(MAX_USAGE_DIMENSIONS)
    expect(
      usageDimensions({ b: true, a: 1.5, c: null, d: [1], e: 'x', ['k'.repeat(65)]: 'y' }),
    ).toEqual([
      ['a', '1.5'],
      ['b', 'true'],
      ['e', 'x'],
    ])
    const [[, cut]] = usageDimensions({ s: '𝄞'.repeat(150) }) as [[string, string]]
    expect([...cut]).toHaveLength(100)
  })

  it('compares by code point as PostgreSQL "C" does', () => {
    expect(['\uffff', '𝄞', 'a'].sort(compareCodePoints)).toEqual(['a', '\uffff', '𝄞'])
  })
})

describe('usageWindow', () => {
  it('widens to whole UTC periods; months are calendar months', () => {
    const w = usageWindow({
      interval: 'month',
      from: Date.UTC(2028, 0, 31, 12),
      to: Date.UTC(2028, 2, 1),
    })
    expect(w.starts).toEqual([Date.UTC(2028, 0, 1), Date.UTC(2028, 1, 1)])
    expect(w.to).toBe(Date.UTC(2028, 2, 1))
    expect(usagePeriodIndex(w, Date.UTC(2028, 1, 29, 23))).toBe(1)
    expect(usagePeriodIndex(w, Date.UTC(2028, 2, 1))).toBe(-1)
  })
})
