import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { CROCKFORD } from '../store/ids.js'
import { canonicalCode, checkCharacter, generateCode, hashCode, isValidPrefix } from './codes.js'

const FORMAT =
  /^TG-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]$/

/** Builds a canonical code from 12 data characters, with the right check character. */
function codeOf(data: string, prefix = 'TG'): string {
  return `${prefix}-${data.slice(0, 4)}-${data.slice(4, 8)}-${data.slice(8, 12)}-${checkCharacter(data)}`
}

/** The 13 characters after the prefix (12 data + check), hyphens removed. */
function bodyOf(code: string): string {
  return code.replace(/-/g, '').slice(-13)
}

function invalidCode(input: unknown): unknown {
  try {
    canonicalCode(input)
  } catch (err) {
    return err
  }
  return null
}

const samples = Array.from({ length: 8 }, () => generateCode('TG'))
// Fixed samples too, so the loops do not depend on chance alone.
samples.push(codeOf('0123456789AB'), codeOf('CDEFGHJKMNPQ'), codeOf('RSTVWXYZ0Z1Y'))

describe('generateCode', () => {
  it('has the canonical format', () => {
    for (let i = 0; i < 200; i++) expect(generateCode('TG')).toMatch(FORMAT)
  })

  it('keeps other prefixes', () => {
    expect(generateCode('PROMO2026')).toMatch(/^PROMO2026-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-.$/)
    expect(generateCode('X')).toMatch(/^X-/)
  })

  it('is already canonical and carries a valid check character', () => {
    for (let i = 0; i < 200; i++) {
      const code = generateCode('TG')
      expect(canonicalCode(code)).toBe(code)
      const body = bodyOf(code)
      expect(checkCharacter(body.slice(0, 12))).toBe(body[12])
    }
  })

  it('does not repeat over 10k codes (60 random bits)', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 10_000; i++) seen.add(generateCode('TG'))
    expect(seen.size).toBe(10_000)
  })
})

describe('checkCharacter', () => {
  it('is a Crockford character and deterministic', () => {
    expect(checkCharacter('000000000000')).toBe('0')
    expect(checkCharacter('0123456789AB')).toBe(checkCharacter('0123456789AB'))
    expect(CROCKFORD).toContain(checkCharacter('ZZZZZZZZZZZZ'))
  })

  it('matches a hand-computed Luhn mod 32 value', () => {
    // data "000000000001": rightmost factor 2 → addend 2 → sum 2 → check (32 − 2) mod 32 = 30 = 'Y'
    expect(checkCharacter('000000000001')).toBe('Y')
    // "000000000010": factor 1 on the second from right → sum 1 → 31 = 'Z'
    expect(checkCharacter('000000000010')).toBe('Z')
    // "00000000000Z": 2 × 31 = 62 → 1 + 30 = 31 → check 1
    expect(checkCharacter('00000000000Z')).toBe('1')
  })
})

describe('canonicalCode', () => {
  const code = codeOf('AB1C0DEF2GH3')

  it('accepts the canonical form as is', () => {
    expect(canonicalCode(code)).toBe(code)
  })

  it('forgives case, missing hyphens, spaces and extra hyphens', () => {
    const compact = code.replace(/-/g, '')
    for (const input of [
      code.toLowerCase(),
      compact,
      compact.toLowerCase(),
      code.replace(/-/g, ' '),
      `  ${code}  `,
      code.replace(/-/g, ' - '),
      `${compact.slice(0, 5)}\t${compact.slice(5)}`,
      code.replace(/-/g, '--'),
    ]) {
      expect(canonicalCode(input)).toBe(code)
    }
  })

  it('reads I and L as 1 and O as 0 in the random part, any case', () => {
    // data AB1C0DEF2GH3 contains a 1 and a 0
    expect(canonicalCode(code.replace('1', 'I'))).toBe(code)
    expect(canonicalCode(code.replace('1', 'L'))).toBe(code)
    expect(canonicalCode(code.replace('1', 'i'))).toBe(code)
    expect(canonicalCode(code.replace('1', 'l'))).toBe(code)
    expect(canonicalCode(code.replace('-C0', '-CO'))).toBe(code)
    expect(canonicalCode(code.replace('-C0', '-co'))).toBe(code)
  })

  it('reads a look-alike check character too', () => {
    const withOne = codeOf('00000000000Z') // check character '1'
    expect(withOne.endsWith('-1')).toBe(true)
    expect(canonicalCode(`${withOne.slice(0, -1)}I`)).toBe(withOne)
    expect(canonicalCode(`${withOne.slice(0, -1)}l`)).toBe(withOne)
    const withZero = codeOf('000000000000') // check character '0'
    expect(withZero.endsWith('-0')).toBe(true)
    expect(canonicalCode(`${withZero.slice(0, -1)}O`)).toBe(withZero)
  })

  it('keeps a prefix verbatim (look-alikes are only mapped in the random part)', () => {
    const c = codeOf('AB1C0DEF2GH3', 'LO1')
    expect(canonicalCode(c)).toBe(c)
    expect(canonicalCode(c.toLowerCase())).toBe(c)
  })

  it.each([
    ['empty', ''],
    ['too short', 'TG-1234'],
    ['no prefix (13 characters)', bodyOf(codeOf('AB1C0DEF2GH3'))],
    ['bad character U', codeOf('AB1C0DEF2GH3').replace('AB', 'AU')],
    ['bad character *', codeOf('AB1C0DEF2GH3').replace('AB', 'A*')],
    ['bad prefix character', codeOf('AB1C0DEF2GH3', 'T_G')],
    ['prefix of 11 characters', codeOf('AB1C0DEF2GH3', 'ABCDEFGHJKM')],
    ['over 64 characters', `TG-${'0'.repeat(70)}`],
    ['not a string (number)', 123],
    ['not a string (null)', null],
  ])('refuses %s with InvalidInputError on field code', (_name, input) => {
    expect(invalidCode(input)).toMatchObject({ code: 'invalid_input', status: 400, field: 'code' })
  })

  it('refuses a wrong check character', () => {
    for (const c of samples) {
      const body = bodyOf(c)
      for (const wrong of CROCKFORD) {
        if (wrong === body[12]) continue
        expect(invalidCode(`${c.slice(0, -1)}${wrong}`)).toMatchObject({
          code: 'invalid_input',
          field: 'code',
        })
      }
    }
  })

  it('detects every single-character substitution in the random part', () => {
    let checked = 0
    for (const c of samples) {
      const prefix = c.split('-')[0]!
      const body = bodyOf(c)
      for (let i = 0; i < 13; i++) {
        for (const ch of CROCKFORD) {
          if (ch === body[i]) continue
          const typo = body.slice(0, i) + ch + body.slice(i + 1)
          expect(invalidCode(`${prefix}-${typo}`), `${c} → ${typo}`).toMatchObject({
            code: 'invalid_input',
            field: 'code',
          })
          checked++
        }
      }
    }
    expect(checked).toBe(samples.length * 13 * 31)
  })

  it('detects every adjacent transposition except the pair 0/Z (a Luhn mod 32 blind spot)', () => {
    // Luhn mod N misses exactly the swap of the digits worth 0 and N−1 (like 09↔90 in mod 10).
    let detected = 0
    let missed = 0
    const fixtures = [...samples, codeOf('0Z0Z0Z0Z0Z0Z'), codeOf('Z0123Z0456Z0')]
    for (const c of fixtures) {
      const prefix = c.split('-')[0]!
      const body = bodyOf(c)
      for (let i = 0; i < 12; i++) {
        const a = body[i]!
        const b = body[i + 1]!
        if (a === b) continue
        const swapped = body.slice(0, i) + b + a + body.slice(i + 2)
        const err = invalidCode(`${prefix}${swapped}`)
        const blindSpot = (a === '0' && b === 'Z') || (a === 'Z' && b === '0')
        if (blindSpot) {
          // Not caught: the swapped code is valid and canonicalises to a different code.
          expect(err, `${c}: swap ${a}${b} at ${i}`).toBeNull()
          expect(canonicalCode(`${prefix}${swapped}`)).not.toBe(c)
          missed++
        } else {
          expect(err, `${c}: swap ${a}${b} at ${i}`).toMatchObject({ field: 'code' })
          detected++
        }
      }
    }
    expect(detected).toBeGreaterThan(100)
    expect(missed).toBeGreaterThan(0)
  })

  it('checks every transposition of distinct Crockford characters at every position', () => {
    // Exhaustive over the alphabet: only the pair {0, Z} goes undetected.
    const undetected = new Set<string>()
    let tried = 0
    const tryBody = (body: string, i: number) => {
      const a = body[i]!
      const b = body[i + 1]!
      if (a === b) return
      tried++
      const swapped = body.slice(0, i) + b + a + body.slice(i + 2)
      if (invalidCode(`TG${swapped}`) === null) undetected.add([a, b].sort().join(''))
    }
    // Both characters in the random part.
    for (let i = 0; i < 11; i++) {
      for (const a of CROCKFORD) {
        for (const b of CROCKFORD) {
          const data = `${'7'.repeat(i)}${a}${b}${'7'.repeat(10 - i)}`
          tryBody(data + checkCharacter(data), i)
        }
      }
    }
    // The last random character and the check character.
    for (const x of CROCKFORD) {
      for (const y of CROCKFORD) {
        const data = `7777777777${y}${x}`
        tryBody(data + checkCharacter(data), 11)
      }
    }
    expect(tried).toBeGreaterThan(11 * 32 * 31)
    expect([...undetected]).toEqual(['0Z'])
  })
})

describe('hashCode', () => {
  it('is the SHA-256 hex of the canonical code: 64 lowercase hex characters, deterministic', () => {
    const code = codeOf('AB1C0DEF2GH3')
    const h = hashCode(code)
    expect(h).toMatch(/^[0-9a-f]{64}$/)
    expect(h).toBe(hashCode(code))
    expect(h).toBe(createHash('sha256').update(code).digest('hex'))
  })

  it('known vector', () => {
    expect(hashCode('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
  })

  it('differs between codes and equals for inputs with the same canonical form', () => {
    const a = generateCode('TG')
    const b = generateCode('TG')
    expect(hashCode(a)).not.toBe(hashCode(b))
    expect(hashCode(canonicalCode(a.toLowerCase().replace(/-/g, '')))).toBe(hashCode(a))
  })
})

describe('isValidPrefix', () => {
  it('accepts 1–10 of A–Z and 0–9 only', () => {
    for (const p of ['TG', 'X', '1', 'ABCDEFGHIJ', 'PROMO2026']) expect(isValidPrefix(p)).toBe(true)
    for (const p of ['', 'tg', 'ABCDEFGHIJK', 'T-G', 'T G', 'TÉ'])
      expect(isValidPrefix(p)).toBe(false)
  })
})
