/**
 * The balance cache: the last balance this process saw for each account, refreshed from the
 * result of every operation the meter runs. It answers `balance()` reads; it is never used to
 * grant credit (reserve and debit always go to the store).
 */
import { LRUCache } from 'lru-cache'
import type { Balance } from './types.js'

/** Options of the balance cache (`createMeter({ cache })`). */
export interface BalanceCacheOptions {
  /** Accounts kept at most. @default 10_000 */
  max?: number
  /** How long a cached balance answers reads, in ms. @default 1_000 */
  ttlMs?: number
}

export class BalanceCache {
  readonly #lru: LRUCache<string, Balance>
  readonly #ttl: number
  readonly #clock: () => number

  constructor(options: Required<BalanceCacheOptions>, clock: () => number) {
    this.#ttl = options.ttlMs
    this.#clock = clock
    this.#lru = new LRUCache<string, Balance>({
      max: options.max,
      ttl: options.ttlMs,
      // The meter's clock, read on every check (no 1 ms memo), so an injected clock ages entries.
      perf: { now: clock },
      ttlResolution: 0,
    })
  }

  /** A copy of the cached balance: results belong to the caller, who may change them. */
  get(account: string): Balance | undefined {
    const cached = this.#lru.get(account)
    return cached && copyBalance(cached)
  }

  /**
   * Caches a copy of `balance` until the first expiry of one of its buckets at the latest (an
   * entry is stale once its age exceeds its ttl; a bucket is expired at `expiresAt` itself).
   */
  set(balance: Balance): void {
    let ttl = this.#ttl
    const now = this.#clock()
    for (const b of balance.buckets) {
      if (b.expiresAt !== null && b.expiresAt - now - 1 < ttl) ttl = b.expiresAt - now - 1
    }
    if (ttl < 1) this.#lru.delete(balance.account)
    else this.#lru.set(balance.account, copyBalance(balance), { ttl })
  }

  delete(account: string): void {
    this.#lru.delete(account)
  }

  clear(): void {
    this.#lru.clear()
  }
}

function copyBalance(b: Balance): Balance {
  return {
    account: b.account,
    total: b.total,
    held: b.held,
    available: b.available,
    debt: b.debt,
    low: b.low,
    buckets: b.buckets.map((x) => ({
      id: x.id,
      remaining: x.remaining,
      held: x.held,
      expiresAt: x.expiresAt,
      priority: x.priority,
      category: x.category,
    })),
    asOf: b.asOf,
  }
}
