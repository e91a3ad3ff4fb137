/** Options of the meter's operations (`grant`, `reserve`, `commit`…), as an app passes them. */
import type { CycleEvery, Metadata, OveragePolicy } from '../types.js'

/** Options of {@link Meter.grant}. */
export interface GrantOptions {
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
export interface ReserveOptions {
  /** 1 s to 24 h. @default 60_000 */
  ttlMs?: number
  metadata?: Metadata
  idempotencyKey?: string
}

/** Options of commit. */
export interface CommitOptions {
  /** Overrides the meter's overage policy for this commit. */
  overage?: OveragePolicy
  metadata?: Metadata
  idempotencyKey?: string
}

/** Options of release, debit. */
export interface MutationOptions {
  metadata?: Metadata
  idempotencyKey?: string
}

/** Options of {@link Meter.startCycle}. */
export interface StartCycleOptions {
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
