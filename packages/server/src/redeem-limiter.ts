/**
 * The server's brakes on guessing redeem codes, on top of the engine's per-account limit
 * (`meter.redeemAttempts`, kept in the store: it holds across processes but costs a store round
 * trip per guess). Two limits, both per fixed one-minute window by the server's clock:
 *
 * - **per account**: after `accountFailuresPerMinute` failed redemptions, that account gets 429
 *   until its window ends, without a store round trip (per process);
 * - **per tenant, on distinct failing accounts**: once `failingAccountsPerMinute` accounts of a
 *   tenant have failed in the window, the tenant is being guessed at from many accounts, and
 *   every further account that fails is stopped at its first failure instead of after
 *   `accountFailuresPerMinute`. Accounts that redeem correctly are never refused, so neither one
 *   attacker account nor many lock the tenant's other users out. Shared across processes: each
 *   process reports an account's first failure in the tenant's window to the store
 *   (`Store.noteRedeemFailure`), which answers the distinct count of every process; the larger
 *   of that and the local count decides. Tenant windows are aligned to the minute, so every
 *   process names the same one.
 *
 * An attempt is counted synchronously before the store is asked (and given back when it did not
 * fail), so concurrent guesses cannot overshoot a limit in one process; the shared count only
 * tightens that. A store that cannot report (no method, or an error) leaves the local count.
 * Memory is bounded: accounts and tenants are kept in LRU maps, and an account leaves as soon as
 * it has no failure and nothing in flight. See docs/decisions.md.
 */
import { RateLimitedError, type Store } from '@tollgate/core'
import { LRUCache } from 'lru-cache'

const MINUTE_MS = 60_000
/** How long an account blocked only by attempts still in flight is told to wait. */
const IN_FLIGHT_RETRY_MS = 1_000

/** Limits of {@link RedeemLimiter}. */
export interface RedeemLimits {
  /** Failed redemptions per account per minute before that account gets 429. */
  accountFailuresPerMinute: number
  /** Distinct failing accounts per tenant per minute before failing accounts get one attempt. */
  failingAccountsPerMinute: number
  /** Accounts tracked at once (LRU). @default 100_000 */
  maxAccounts?: number
  /** Tenants tracked at once (LRU). @default 10_000 */
  maxTenants?: number
}

interface AccountWindow {
  start: number
  failures: number
  /** Attempts counted but not yet settled. */
  pending: number
  /** Failed first while its tenant was over the distinct-accounts limit: one attempt only. */
  strict: boolean
  /** The tenant window this account was last counted (and reported) in as failing; -1: none. */
  counted: number
}

interface TenantWindow {
  /** Aligned to the minute: the same in every process. */
  start: number
  /** Distinct accounts that failed in this window, in this process. */
  failing: number
  /** The largest count of distinct failing accounts the store answered for this window. */
  shared: number
}

/** Where the tenant limit is shared across processes, and where a failure to share it goes. */
export interface RedeemLimiterSharing {
  /** The store of every server process; its `noteRedeemFailure`, when it has one, is used. */
  store: Pick<Store, 'noteRedeemFailure'>
  /** Told when reporting a failure to the store failed (the local count decides then). */
  onError(error: unknown): void
}

/** One counted attempt; settle it once, when the outcome is known. */
export interface RedeemAttempt {
  /**
   * `failed`: the redemption counts as a failed guess (see {@link isFailedRedemption}). The
   * local count changes at once; the promise settles when the store was told (an account's first
   * failure in the tenant's window) and never rejects.
   */
  settle(failed: boolean): Promise<void>
}

const DONE: Promise<void> = Promise.resolve()

/** Redeem limits; see the module comment. */
export class RedeemLimiter {
  readonly #limits: RedeemLimits
  readonly #clock: () => number
  readonly #accounts: LRUCache<string, AccountWindow>
  readonly #tenants: LRUCache<string, TenantWindow>
  readonly #sharing: RedeemLimiterSharing | null

  constructor(
    limits: RedeemLimits,
    clock: () => number,
    sharing: RedeemLimiterSharing | null = null,
  ) {
    this.#limits = limits
    this.#clock = clock
    // Without the store method each process counts alone (e.g. on `httpStore()`).
    this.#sharing = sharing?.store.noteRedeemFailure === undefined ? null : sharing
    this.#accounts = new LRUCache({ max: limits.maxAccounts ?? 100_000 })
    this.#tenants = new LRUCache({ max: limits.maxTenants ?? 10_000 })
  }

  /** Accounts and tenants tracked now (for tests of the bounds). */
  get size(): { accounts: number; tenants: number } {
    return { accounts: this.#accounts.size, tenants: this.#tenants.size }
  }

  /**
   * Counts one attempt of `account` before the store is asked. Throws {@link RateLimitedError}
   * when the account may not try now.
   */
  begin(tenant: string, account: string): RedeemAttempt {
    const now = this.#clock()
    // Length-prefixed: no tenant/account pair can collide with another.
    const key = `${tenant.length}:${tenant}${account}`
    let a = this.#accounts.get(key)
    if (a === undefined) {
      a = { start: now, failures: 0, pending: 0, strict: false, counted: -1 }
      this.#accounts.set(key, a)
    } else {
      roll(a, now)
    }
    const t = this.#tenant(tenant, now)
    const strict =
      a.strict ||
      (a.failures === 0 && Math.max(t.failing, t.shared) >= this.#limits.failingAccountsPerMinute)
    const allowance = strict ? 1 : this.#limits.accountFailuresPerMinute
    if (a.failures + a.pending >= allowance) {
      const retryAfter = a.failures >= allowance ? a.start + MINUTE_MS - now : IN_FLIGHT_RETRY_MS
      throw new RateLimitedError(Math.max(1, retryAfter))
    }
    a.pending++
    const entry = a
    let settled = false
    return {
      settle: (failed) => {
        if (settled) return DONE
        settled = true
        entry.pending--
        const at = this.#clock()
        roll(entry, at)
        if (failed) {
          const tw = this.#tenant(tenant, at)
          const first = entry.failures === 0
          // Counted once per tenant window: the count is of distinct accounts.
          const fresh = entry.counted !== tw.start
          if (first) {
            entry.strict =
              fresh && Math.max(tw.failing, tw.shared) >= this.#limits.failingAccountsPerMinute
          }
          entry.failures++
          if (fresh) {
            entry.counted = tw.start
            tw.failing++
            if (this.#sharing !== null) {
              return this.#share(this.#sharing, tenant, account, entry, tw, first)
            }
          }
        } else if (entry.failures === 0 && entry.pending === 0) {
          // Nothing to remember: the account leaves (unless a newer entry replaced it).
          if (this.#accounts.peek(key) === entry) this.#accounts.delete(key)
        }
        return DONE
      },
    }
  }

  /**
   * Reports an account's first failure in the tenant's window to the store and takes its count
   * of every process: the tenant's window learns it (for accounts that begin later), and the
   * account becomes strict if it came after the limit.
   */
  async #share(
    sharing: RedeemLimiterSharing,
    tenant: string,
    account: string,
    entry: AccountWindow,
    tw: TenantWindow,
    first: boolean,
  ): Promise<void> {
    const accountWindow = entry.start
    let n: number
    try {
      n = await sharing.store.noteRedeemFailure!(tenant, account, tw.start)
    } catch (err) {
      // The redemption's answer does not change; the limit falls back to this process's count.
      sharing.onError(err)
      return
    }
    if (n > tw.shared) tw.shared = n
    // The store's count includes this account: it came after the limit when n exceeds it.
    if (first && entry.start === accountWindow && n > this.#limits.failingAccountsPerMinute) {
      entry.strict = true
    }
  }

  #tenant(tenant: string, now: number): TenantWindow {
    // Aligned, so that every process reports failures into the same window.
    const start = Math.floor(now / MINUTE_MS) * MINUTE_MS
    let t = this.#tenants.get(tenant)
    if (t === undefined || t.start !== start) {
      t = { start, failing: 0, shared: 0 }
      this.#tenants.set(tenant, t)
    }
    return t
  }
}

/** Starts a new window when the account's is over (or the clock went back). */
function roll(a: AccountWindow, now: number): void {
  if (now - a.start >= MINUTE_MS || now < a.start) {
    a.start = now
    a.failures = 0
    a.strict = false
  }
}

/**
 * True for the outcomes that count as a failed guess: a malformed or unknown code
 * (`invalid_input`), an unavailable one, or the engine's own per-account refusal (each of those
 * still cost a store round trip).
 */
export function isFailedRedemption(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return code === 'invalid_input' || code === 'code_unavailable' || code === 'rate_limited'
}
