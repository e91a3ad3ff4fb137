import { randomBytes } from 'node:crypto'

/** Crockford base32: no I, L, O, U. */
export const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'

let pool = randomBytes(4096)
let poolAt = 0

/** `n` random Crockford characters, from a pooled buffer so ids stay cheap on the hot path. */
export function randomChars(n: number): string {
  if (poolAt + n > pool.length) {
    pool = randomBytes(4096)
    poolAt = 0
  }
  let out = ''
  // 256 is a multiple of 32, so `byte & 31` is uniform.
  for (let i = 0; i < n; i++) out += CROCKFORD[pool[poolAt++]! & 31]
  return out
}

let lastMs = 0
let counter = 0

/**
 * A new id: `prefix_` + 10 chars of time + 4 of a per-process counter + 8 random. Ids made by
 * one process sort in creation order, which breaks burn-order ties ("created first, then id").
 */
export function newId(prefix: string): string {
  const now = Date.now()
  if (now > lastMs) lastMs = now
  counter = (counter + 1) & 0xfffff
  let t = lastMs
  let time = ''
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[t % 32]! + time
    t = Math.floor(t / 32)
  }
  let c = counter
  let seq = ''
  for (let i = 0; i < 4; i++) {
    seq = CROCKFORD[c & 31]! + seq
    c >>>= 5
  }
  return `${prefix}_${time}${seq}${randomChars(8)}`
}
