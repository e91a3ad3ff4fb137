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
      // The meter's clock, so an injected test clock ages entries too.
      perf: { now: clock },
    })
  }

  get(account: string): Balance | undefined {
    return this.#lru.get(account)
  }

  /** Caches `balance`, but never past the first expiry of one of its buckets. */
  set(balance: Balance): void {
    let ttl = this.#ttl
    const now = this.#clock()
    for (const b of balance.buckets) {
      if (b.expiresAt !== null && b.expiresAt - now < ttl) ttl = b.expiresAt - now
    }
    if (ttl <= 0) this.#lru.delete(balance.account)
    else this.#lru.set(balance.account, balance, { ttl })
  }

  delete(account: string): void {
    this.#lru.delete(account)
  }

  clear(): void {
    this.#lru.clear()
  }
}
