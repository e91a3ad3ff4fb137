/**
 * The server's brakes on guessing redeem codes, on top of the engine's per-account limit
 * (`meter.redeemAttempts`, kept in the store: it holds across processes but costs a store round
 * trip per guess). Two limits, both per fixed one-minute window by the server's clock:
 *
 * - **per account**: after `accountFailuresPerMinute` failed redemptions, that account gets 429
 *   until its window ends, without a store round trip;
 * - **per tenant, on distinct failing accounts**: once `failingAccountsPerMinute` accounts of a
 *   tenant have failed in the window, the tenant is being guessed at from many accounts, and
 *   every further account that fails is stopped at its first failure instead of after
 *   `accountFailuresPerMinute`. Accounts that redeem correctly are never refused, so neither one
 *   attacker account nor many lock the tenant's other users out.
 *
 * An attempt is counted synchronously before the store is asked (and given back when it did not
 * fail), so concurrent guesses cannot overshoot a limit. Memory is bounded: accounts and tenants
 * are kept in LRU maps, and an account leaves as soon as it has no failure and nothing in flight.
 * The state is per process (see docs/decisions.md).
 */
import { RateLimitedError } from '@tollgate/core'
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
}

interface TenantWindow {
  start: number
  /** Distinct accounts that failed in this window. */
  failing: number
}

/** One counted attempt; settle it once, when the outcome is known. */
export interface RedeemAttempt {
  /** `failed`: the redemption counts as a failed guess (see {@link isFailedRedemption}). */
  settle(failed: boolean): void
}

/** Per-process redeem limits; see the module comment. */
export class RedeemLimiter {
  readonly #limits: RedeemLimits
  readonly #clock: () => number
  readonly #accounts: LRUCache<string, AccountWindow>
  readonly #tenants: LRUCache<string, TenantWindow>

  constructor(limits: RedeemLimits, clock: () => number) {
    this.#limits = limits
    this.#clock = clock
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
      a = { start: now, failures: 0, pending: 0, strict: false }
      this.#accounts.set(key, a)
    } else {
      roll(a, now)
    }
    const t = this.#tenant(tenant, now)
    const strict =
      a.strict || (a.failures === 0 && t.failing >= this.#limits.failingAccountsPerMinute)
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
        if (settled) return
        settled = true
        entry.pending--
        const at = this.#clock()
        roll(entry, at)
        if (failed) {
          if (entry.failures === 0) {
            const tw = this.#tenant(tenant, at)
            entry.strict = tw.failing >= this.#limits.failingAccountsPerMinute
            tw.failing++
          }
          entry.failures++
        } else if (entry.failures === 0 && entry.pending === 0) {
          // Nothing to remember: the account leaves (unless a newer entry replaced it).
          if (this.#accounts.peek(key) === entry) this.#accounts.delete(key)
        }
      },
    }
  }

  #tenant(tenant: string, now: number): TenantWindow {
    let t = this.#tenants.get(tenant)
    if (t === undefined || now - t.start >= MINUTE_MS || now < t.start) {
      t = { start: now, failing: 0 }
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
