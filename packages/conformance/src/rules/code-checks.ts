/**
 * Checks on redeem codes that the redeem-code rules share, written independently of how the
 * engine computes codes, so that they can catch it out.
 */

/** Crockford base32, as redeem codes use it (no I, L, O, U). */
export const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'

/** `PFX-XXXX-XXXX-XXXX-C` with Crockford groups and check character. */
export function canonicalCodePattern(prefix: string): RegExp {
  const c = '[0-9A-HJKMNP-TV-Z]'
  return new RegExp(`^${prefix}-${c}{4}-${c}{4}-${c}{4}-${c}$`)
}

/**
 * Validates a code's Luhn mod 32 check character the validating way (check character
 * included, sum ≡ 0), independently of how the engine computes it.
 */
export function luhnValid(code: string): boolean {
  const body = code.split('-').slice(1).join('')
  let sum = 0
  let factor = 1
  for (let i = body.length - 1; i >= 0; i--) {
    const v = CROCKFORD.indexOf(body[i]!)
    if (v < 0) return false
    let addend = factor * v
    addend = Math.floor(addend / 32) + (addend % 32)
    sum += addend
    factor = factor === 1 ? 2 : 1
  }
  return sum % 32 === 0
}

/**
 * The code with one character of its random part replaced by another Crockford character of a
 * different value: a typo the check character must catch.
 */
export function withTypo(code: string): string {
  const parts = code.split('-')
  const group = parts[2]!
  const ch = group[1]!
  const replacement = CROCKFORD[(CROCKFORD.indexOf(ch) + 7) % 32]!
  parts[2] = group[0] + replacement + group.slice(2)
  return parts.join('-')
}
