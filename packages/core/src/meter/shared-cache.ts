/**
 * The balance caches of the meters on one store and tenant, kept in step: a meter caches what
 * its operations answer, and an operation that gives an account credits back (a grant, a
 * release…) clears that account from the other meters' caches, so that none of them refuses a
 * reserve on a figure that has become too low.
 */
import type { Operation } from '../engine/state.js'
import type { Outcome, Store } from '../store/store.js'
import type { Balance } from '../types.js'
import { BalanceCache, type BalanceCacheOptions } from './balance-cache.js'

/** Operations that never give an account credits back (so leave other meters' figures valid). */
const TAKES_ONLY: ReadonlySet<Operation['type']> = new Set([
  'reserve',
  'debit',
  'balance',
  'extend',
  'increase',
])

/** The balance caches of every meter on one store, by tenant. */
const CACHES = new WeakMap<Store, Map<string, Set<BalanceCache>>>()

/**
 * The caches of the meters on `store` and `tenant`, made on first use. Only a meter with a cache
 * makes the set: a server making cache-less meters for many tenants leaves no set per tenant.
 */
function siblingCaches(store: Store, tenant: string): Set<BalanceCache> {
  let byTenant = CACHES.get(store)
  if (!byTenant) {
    byTenant = new Map()
    CACHES.set(store, byTenant)
  }
  let set = byTenant.get(tenant)
  if (!set) {
    set = new Set()
    byTenant.set(tenant, set)
  }
  return set
}

/**
 * Drops `account` of `tenant` from every meter's cache on `store` (the change feed told of a
 * change another process made): the next read or reserve asks the store.
 */
export function forgetAccount(store: Store, tenant: string, account: string): void {
  const set = CACHES.get(store)?.get(tenant)
  if (set === undefined) return
  for (const cache of set) cache.delete(account)
}

/** Empties every meter's cache on `store`: the change feed lost changes it will not replay. */
export function forgetAll(store: Store): void {
  const byTenant = CACHES.get(store)
  if (byTenant === undefined) return
  for (const set of byTenant.values()) for (const cache of set) cache.clear()
}

/** One meter's cache (none with `cache: false`) and the caches of its siblings. */
export class SharedCache {
  readonly #own: BalanceCache | null
  readonly #store: Store
  readonly #tenant: string
  /** Caches of the meters on the same store and tenant (this one's included), if it has one. */
  readonly #siblings: Set<BalanceCache> | null

  constructor(
    store: Store,
    tenant: string,
    options: Required<BalanceCacheOptions> | false,
    clock: () => number,
  ) {
    this.#store = store
    this.#tenant = tenant
    this.#own = options ? new BalanceCache(options, clock) : null
    this.#siblings = this.#own ? siblingCaches(store, tenant) : null
    if (this.#own) this.#siblings?.add(this.#own)
  }

  /** True when this meter has a cache of its own. */
  get enabled(): boolean {
    return this.#own !== null
  }

  /** A copy of the account's cached balance, while it is fresh. */
  get(account: string): Balance | undefined {
    return this.#own?.get(account)
  }

  /** See {@link BalanceCache.shortOf}. */
  shortOf(account: string, amount: number): number | undefined {
    return this.#own?.shortOf(account, amount)
  }

  /** Takes in the balance an operation of `type` answered (not a replay's: that is old news). */
  record(out: Outcome, type: Operation['type']): void {
    if (!out.balance || out.replayed) return
    this.#own?.set(out.balance)
    // Credits that came back make the other meters' figures of this account stale: they must
    // not refuse a reserve on them. (Reserves and debits only take.)
    if (out.error === null && !TAKES_ONLY.has(type)) {
      // A cache-less meter looks the set up: other meters' caches may have come since.
      const siblings = this.#siblings ?? CACHES.get(this.#store)?.get(this.#tenant)
      if (siblings !== undefined) {
        for (const cache of siblings) {
          if (cache !== this.#own) cache.delete(out.balance.account)
        }
      }
    }
  }

  /** Empties this meter's cache and leaves the siblings. */
  close(): void {
    if (this.#own) {
      this.#own.clear()
      this.#siblings?.delete(this.#own)
    }
  }
}
