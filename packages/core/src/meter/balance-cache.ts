/**
 * The balance cache: the last balance this process saw for each account, refreshed from the
 * result of every operation the meter runs. It answers `balance()` reads and refuses reserves
 * it knows the account cannot cover; it is never used to grant credit.
 */
import { LRUCache } from 'lru-cache'
import { checkInt, type OptionDefaults, readOptions } from '../options-kit.js'
import type { Balance } from '../types.js'

/** Options of the balance cache (`createMeter({ cache })`). */
export interface BalanceCacheOptions {
  /** Accounts kept at most. @default 10_000 */
  max?: number
  /** How long a cached balance answers reads, in ms. @default 1_000 */
  ttlMs?: number
}

const CACHE_DEFAULTS = { max: 10_000, ttlMs: 1_000 } satisfies OptionDefaults<BalanceCacheOptions>

/** Checks `cache` options of `owner` (e.g. `createMeter`): `false` turns the cache off. */
export function resolveCacheOptions(
  cache: BalanceCacheOptions | false | undefined,
  owner: string,
): Required<BalanceCacheOptions> | false {
  if (cache === false) return false
  const o = readOptions(cache ?? {}, { owner, field: 'cache', defaults: CACHE_DEFAULTS })
  return { max: checkInt(o.max, 'cache.max', 1), ttlMs: checkInt(o.ttlMs, 'cache.ttlMs', 1) }
}

interface Entry {
  balance: Balance
  /** Clock reading from which this entry no longer answers. */
  staleAt: number
}

export class BalanceCache {
  readonly #lru: LRUCache<string, Entry>
  readonly #ttl: number
  readonly #clock: () => number

  constructor(options: Required<BalanceCacheOptions>, clock: () => number) {
    this.#ttl = options.ttlMs
    this.#clock = clock
    // lru-cache bounds the size; expiry is ours, computed from the balance's own `asOf`, so
    // caching a balance reads no clock (a clock read is ~100 ns on some VMs).
    this.#lru = new LRUCache<string, Entry>({ max: options.max })
  }

  /** A copy of the cached balance: results belong to the caller, who may change them. */
  get(account: string): Balance | undefined {
    const entry = this.#lru.get(account)
    if (!entry || this.#clock() >= entry.staleAt) return undefined
    return copyBalance(entry.balance)
  }

  /**
   * The cached `available` of an account known to be short of `amount`: fresh, below `amount`,
   * and with nothing held (a pending hold, or a commit still on its way, could free credits at
   * any moment; a grant clears the entry). Undefined otherwise. The clock is read last, only
   * for a figure that would refuse: a reserve the cache cannot refuse costs no clock read.
   */
  shortOf(account: string, amount: number): number | undefined {
    // peek: recency is the write's business (every operation caches its answer right after).
    const entry = this.#lru.peek(account)
    if (entry === undefined) return undefined
    const { held, available } = entry.balance
    if (held !== 0 || available >= amount) return undefined
    return this.#clock() >= entry.staleAt ? undefined : available
  }

  /**
   * Caches a copy of `balance` for `ttlMs` after its `asOf`, and never up to the first expiry
   * of one of its buckets (a bucket is expired at `expiresAt` itself).
   */
  set(balance: Balance): void {
    let staleAt = balance.asOf + this.#ttl
    for (const b of balance.buckets) {
      if (b.expiresAt !== null && b.expiresAt < staleAt) staleAt = b.expiresAt
    }
    if (staleAt <= balance.asOf) {
      this.delete(balance.account)
      return
    }
    const entry = this.#lru.get(balance.account)
    if (entry) {
      // Overwrite our private copy in place: a fresh copy per write would turn every cached
      // (long-lived, so promoted) copy into old-generation garbage.
      copyInto(entry.balance, balance)
      entry.staleAt = staleAt
    } else {
      this.#lru.set(balance.account, { balance: copyBalance(balance), staleAt })
    }
  }

  /**
   * Forgets the account: its entry stays, marked stale, until a newer balance overwrites it or
   * the LRU evicts it. Not `lru.delete()`: deleting its last entry clears the LRU's arrays, a
   * cost of `max` per call, and the change feed forgets the account each operation just cached.
   */
  delete(account: string): void {
    const entry = this.#lru.peek(account)
    if (entry) entry.staleAt = Number.NEGATIVE_INFINITY
  }

  clear(): void {
    this.#lru.clear()
  }
}

function copyBalance(b: Balance): Balance {
  const to: Balance = { ...b, buckets: [] }
  copyInto(to, b)
  return to
}

function copyInto(to: Balance, from: Balance): void {
  to.total = from.total
  to.held = from.held
  to.available = from.available
  to.debt = from.debt
  to.low = from.low
  to.asOf = from.asOf
  const n = from.buckets.length
  if (to.buckets.length > n) to.buckets.length = n
  for (let i = 0; i < n; i++) {
    const x = from.buckets[i]!
    const y = to.buckets[i]
    if (y) {
      y.id = x.id
      y.remaining = x.remaining
      y.held = x.held
      y.expiresAt = x.expiresAt
      y.priority = x.priority
      y.category = x.category
    } else {
      to.buckets.push({ ...x })
    }
  }
}
