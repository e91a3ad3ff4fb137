import { describe, expect, it } from 'vitest'
import { NumberColumn } from './number-column.js'

describe('NumberColumn', () => {
  it('keeps every value in order across the first chunk growing and later chunks', () => {
    const column = new NumberColumn()
    // Past two full chunks: the first grows from 64 by doubling, the next ones start full.
    const n = 65_536 * 2 + 10
    for (let i = 0; i < n; i++) column.push(i * 3 - 1)
    expect(column.length).toBe(n)
    for (const i of [0, 63, 64, 65, 1_000, 65_535, 65_536, 65_537, 131_071, 131_072, n - 1]) {
      expect(column.at(i)).toBe(i * 3 - 1)
    }
  })

  it('holds any safe integer, negatives included', () => {
    const column = new NumberColumn()
    column.push(-1)
    column.push(Number.MAX_SAFE_INTEGER)
    expect([column.at(0), column.at(1)]).toEqual([-1, Number.MAX_SAFE_INTEGER])
  })

  it('starts over after clear()', () => {
    const column = new NumberColumn()
    for (let i = 0; i < 100; i++) column.push(i)
    column.clear()
    expect(column.length).toBe(0)
    column.push(7)
    expect(column.at(0)).toBe(7)
  })
})
