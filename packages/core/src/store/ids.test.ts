import { describe, expect, it } from 'vitest'
import { CROCKFORD, newId, randomChars } from './ids.js'

describe('newId', () => {
  it('keeps the prefix and has the documented shape', () => {
    const id = newId('hld')
    expect(id).toMatch(/^hld_[0-9A-HJKMNP-TV-Z]{22}$/)
    expect(newId('grt').startsWith('grt_')).toBe(true)
    expect(newId('cdb').startsWith('cdb_')).toBe(true)
  })

  it('encodes the creation time in its first 10 characters', () => {
    const before = Date.now()
    const id = newId('x')
    const after = Date.now()
    let t = 0
    for (const ch of id.slice(2, 12)) t = t * 32 + CROCKFORD.indexOf(ch)
    expect(t).toBeGreaterThanOrEqual(before)
    expect(t).toBeLessThanOrEqual(after)
  })

  it('is unique over 100k ids', () => {
    const ids = new Set<string>()
    for (let i = 0; i < 100_000; i++) ids.add(newId('grt'))
    expect(ids.size).toBe(100_000)
  })

  it('sorts in creation order within the process (100k ids)', () => {
    const ids: string[] = []
    for (let i = 0; i < 100_000; i++) ids.push(newId('grt'))
    let outOfOrder = 0
    for (let i = 1; i < ids.length; i++) if (!(ids[i - 1]! < ids[i]!)) outOfOrder++
    expect(outOfOrder).toBe(0)
  })

  it('stays in creation order across the 20-bit sequence counter wrap (1.1M ids)', () => {
    // The 4-character counter holds 20 bits and wraps after 1,048,575 ids; ids made in the same
    // millisecond around the wrap must still sort in creation order.
    let prev = newId('w')
    let outOfOrder = 0
    let example = ''
    for (let i = 0; i < 1_100_000; i++) {
      const id = newId('w')
      if (!(prev < id)) {
        outOfOrder++
        if (example === '') example = `${prev} !< ${id}`
      }
      prev = id
    }
    expect(example).toBe('')
    expect(outOfOrder).toBe(0)
  })
})

describe('randomChars', () => {
  it('returns n Crockford base32 characters', () => {
    for (const n of [0, 1, 8, 12, 100]) {
      const s = randomChars(n)
      expect(s).toHaveLength(n)
      expect(s).toMatch(/^[0-9A-HJKMNP-TV-Z]*$/)
    }
  })

  it('uses every character of the alphabet', () => {
    const seen = new Set(randomChars(20_000))
    expect([...seen].sort().join('')).toBe(CROCKFORD)
  })

  it('the alphabet is in ascending code-unit order (so ids sort as strings)', () => {
    expect([...CROCKFORD].sort().join('')).toBe(CROCKFORD)
    expect(CROCKFORD).toHaveLength(32)
    expect(CROCKFORD).not.toMatch(/[ILOU]/)
  })
})
