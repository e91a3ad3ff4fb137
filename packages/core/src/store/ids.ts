import { randomBytes } from 'node:crypto'

/** Crockford base32: no I, L, O, U. */
export const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'

const POOL_CHARS = 4096
let pool = ''
let poolAt = POOL_CHARS

/** `n` (≤ 64) random Crockford characters, cut from a pooled random string: ids stay cheap. */
export function randomChars(n: number): string {
  if (poolAt + n > pool.length) {
    const bytes = randomBytes(POOL_CHARS)
    let chars = ''
    // 256 is a multiple of 32, so `byte & 31` is uniform.
    for (let i = 0; i < POOL_CHARS; i++) chars += CROCKFORD[bytes[i]! & 31]
    pool = chars
    poolAt = 0
  }
  const out = pool.slice(poolAt, poolAt + n)
  poolAt += n
  return out
}

let lastMs = 0
let lastTime = '0000000000'
let counter = 0

/**
 * A new id: `prefix_` + 10 chars of time + 4 of a per-process counter + 8 random. Ids made by
 * one process sort in creation order, which breaks burn-order ties ("created first, then id").
 * `now` (ms) saves a clock read when the caller has one; time never runs backwards here.
 */
export function newId(prefix: string, now: number = Date.now()): string {
  if (now > lastMs) {
    lastMs = now
    counter = 0
    lastTime = timeChars(now)
  } else if (++counter > 0xfffff) {
    // A million ids in one millisecond: borrow the next one, so order still holds.
    lastMs += 1
    counter = 0
    lastTime = timeChars(lastMs)
  }
  const c = counter
  const seq =
    CROCKFORD[(c >>> 15) & 31]! +
    CROCKFORD[(c >>> 10) & 31]! +
    CROCKFORD[(c >>> 5) & 31]! +
    CROCKFORD[c & 31]!
  return `${prefix}_${lastTime}${seq}${randomChars(8)}`
}

function timeChars(ms: number): string {
  let t = ms
  let time = ''
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[t % 32]! + time
    t = Math.floor(t / 32)
  }
  return time
}

/**
 * The id of the durable event at store sequence `seq`: stable across reads and processes (a
 * webhook's `webhook-id`). `scope` tells apart stores whose sequences restart (a memory store's
 * tag); stores whose sequence never restarts (a database) leave it out.
 */
export function eventId(seq: number, scope = ''): string {
  return scope === '' ? `evt_${seq}` : `evt_${scope}_${seq}`
}
