/**
 * The per-tenant brake on guessing redeem codes. The engine already limits failed attempts per
 * account; an attacker with many accounts (or many account ids) is slowed down here instead:
 * after `perMinute` failures in a tenant's current minute, redeem answers 429 until it ends.
 */
import { RateLimitedError } from '@tollgate/core'

const MINUTE_MS = 60_000
/** Tenants kept at once; older windows are dropped first, all of them stale anyway. */
const MAX_TENANTS = 10_000

export class RedeemLimiter {
  readonly #perMinute: number
  readonly #windows = new Map<string, { start: number; failures: number }>()

  constructor(perMinute: number) {
    this.#perMinute = perMinute
  }

  /** Throws {@link RateLimitedError} while the tenant is over its limit. */
  check(tenant: string, now: number): void {
    const w = this.#windows.get(tenant)
    if (w === undefined || now - w.start >= MINUTE_MS || now < w.start) return
    if (w.failures >= this.#perMinute) throw new RateLimitedError(w.start + MINUTE_MS - now)
  }

  /** Counts one failed redemption (unknown, malformed or unavailable code). */
  fail(tenant: string, now: number): void {
    let w = this.#windows.get(tenant)
    if (w === undefined || now - w.start >= MINUTE_MS || now < w.start) {
      if (w === undefined && this.#windows.size >= MAX_TENANTS) this.#prune(now)
      w = { start: now, failures: 0 }
      this.#windows.set(tenant, w)
    }
    w.failures++
  }

  #prune(now: number): void {
    for (const [tenant, w] of this.#windows) {
      if (now - w.start >= MINUTE_MS) this.#windows.delete(tenant)
    }
    if (this.#windows.size >= MAX_TENANTS) this.#windows.clear()
  }
}

/** True for the outcomes that count as a failed guess. */
export function isFailedRedemption(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return code === 'invalid_input' || code === 'code_unavailable'
}
