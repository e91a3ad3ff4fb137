/**
 * Redeem codes: `PFX-XXXX-XXXX-XXXX-C`, twelve random Crockford base32 characters (60 bits) in
 * three groups and a Luhn mod 32 check character, so a typo is caught without a lookup.
 * Only the SHA-256 of the canonical form is stored.
 */
import { createHash } from 'node:crypto'
import { InvalidInputError } from '../errors.js'
import { CROCKFORD, randomChars } from '../store/ids.js'

const PREFIX = /^[A-Z0-9]{1,10}$/
const VALUE: Record<string, number> = {}
for (let i = 0; i < CROCKFORD.length; i++) VALUE[CROCKFORD[i]!] = i
// Crockford decoding tolerates the look-alikes people type.
VALUE.O = 0
VALUE.I = 1
VALUE.L = 1

/** The Luhn mod 32 check character of Crockford data characters. */
export function checkCharacter(data: string): string {
  let factor = 2
  let sum = 0
  for (let i = data.length - 1; i >= 0; i--) {
    let addend = factor * VALUE[data[i]!]!
    factor = factor === 2 ? 1 : 2
    addend = Math.floor(addend / 32) + (addend % 32)
    sum += addend
  }
  return CROCKFORD[(32 - (sum % 32)) % 32]!
}

/** A new code with the given prefix, in canonical form. */
export function generateCode(prefix: string): string {
  const data = randomChars(12)
  return `${prefix}-${data.slice(0, 4)}-${data.slice(4, 8)}-${data.slice(8, 12)}-${checkCharacter(data)}`
}

/**
 * The canonical form of a typed code: case, spaces and hyphens are forgiven and I/L/O read as
 * 1/1/0 in the random part. Throws {@link InvalidInputError} (field `code`) when malformed.
 */
export function canonicalCode(input: unknown): string {
  if (typeof input !== 'string' || input.length === 0 || input.length > 64) {
    throw new InvalidInputError('code', 'must be a redeem code like TG-XXXX-XXXX-XXXX-C')
  }
  const compact = input.toUpperCase().replace(/[\s-]/g, '')
  if (compact.length < 14) {
    throw new InvalidInputError('code', 'is too short to be a redeem code')
  }
  const prefix = compact.slice(0, -13)
  const body = compact.slice(-13)
  if (!PREFIX.test(prefix)) throw new InvalidInputError('code', 'has a malformed prefix')
  let data = ''
  for (const ch of body) {
    const v = VALUE[ch]
    if (v === undefined) throw new InvalidInputError('code', `has an invalid character "${ch}"`)
    data += CROCKFORD[v]
  }
  const check = data.slice(12)
  data = data.slice(0, 12)
  if (checkCharacter(data) !== check) {
    throw new InvalidInputError('code', 'check character does not match (typo?)')
  }
  return `${prefix}-${data.slice(0, 4)}-${data.slice(4, 8)}-${data.slice(8, 12)}-${check}`
}

/** SHA-256 hex of a canonical code: what stores keep instead of the code. */
export function hashCode(canonical: string): string {
  return createHash('sha256').update(canonical).digest('hex')
}

/** True when `prefix` is usable in codes (1–10 of A–Z, 0–9). */
export function isValidPrefix(prefix: string): boolean {
  return PREFIX.test(prefix)
}
