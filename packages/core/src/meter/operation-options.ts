/** Options of the meter's operations (`grant`, `reserve`, `commit`…), as an app passes them. */
import type { CycleEvery, Metadata, OveragePolicy } from '../types.js'

/** The option of every call that goes to the store. */
export interface CallOptions {
  /**
   * How long to wait for the store, in ms. Past it the call fails with `StoreUnavailableError`
   * and the operation is not applied: a store with deadlines (PostgreSQL, PGlite, a Tollgate
   * server) never starts it later, nor commits it after. Calls served from a lease or the cache
   * do not wait for the store.
   * @default the store's own (5_000 for postgresStore and pgliteStore)
   * @example await meter.debit('user_1', 5, { timeoutMs: 1_000 })
   */
  timeoutMs?: number
}

/** Options of {@link Meter.grant}. */
export interface GrantOptions extends CallOptions {
  /** When the credits expire (ms since epoch or Date); must be in the future. */
  expiresAt?: number | Date
  /** Alternative to `expiresAt`: expire this many days from now. */
  validityDays?: number
  /** Lower burns first. @default 50 */
  priority?: number
  /** @default 'paid' */
  category?: 'paid' | 'promotional'
  metadata?: Metadata
  idempotencyKey?: string
}

/** Options of {@link Meter.reserve}. */
export interface ReserveOptions extends CallOptions {
  /** 1 s to 24 h. @default 60_000 */
  ttlMs?: number
  metadata?: Metadata
  idempotencyKey?: string
}

/** Options of commit. */
export interface CommitOptions extends CallOptions {
  /** Overrides the meter's overage policy for this commit. */
  overage?: OveragePolicy
  metadata?: Metadata
  idempotencyKey?: string
}

/** Options of release, debit. */
/** Options of {@link Meter.increase}. */
export interface IncreaseOptions extends CallOptions {
  /**
   * Grow by what is available when that is less than `n` (the result's `added` says how much,
   * possibly 0) instead of refusing with `InsufficientCreditsError`.
   * @default false
   */
  partial?: boolean
  idempotencyKey?: string
}

export interface MutationOptions extends CallOptions {
  metadata?: Metadata
  idempotencyKey?: string
}

/** Options of {@link Meter.startCycle}. */
export interface StartCycleOptions extends CallOptions {
  amount: number
  every: CycleEvery
  rollover?: { max: number }
  /** @default 50 */
  priority?: number
  /** @default 'paid' */
  category?: 'paid' | 'promotional'
  idempotencyKey?: string
}

/** Options of {@link Meter.createCodes}. */
export interface CreateCodesOptions {
  credits: number
  count: number
  /** 1–10 of A–Z, 0–9. @default 'TG' */
  prefix?: string
  /** After this the code can no longer be redeemed. */
  codeExpiresAt?: number | Date
  /** Credits granted by a redemption expire this many days later. */
  validityDays?: number
  /** @default 1 */
  maxRedemptions?: number
  /** @default 50 */
  priority?: number
  /** @default 'promotional' */
  category?: 'paid' | 'promotional'
  idempotencyKey?: string
}
