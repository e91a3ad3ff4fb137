/**
 * What committing a hold charges (DESIGN §1, "Hold"): `actual ≤ amount` spends `actual` and
 * frees the rest; above the hold the overage policy decides. One function, used by the engine
 * for store holds and by the lease manager for local holds, so both charge alike.
 */
import { OverageError } from '../errors.js'
import type { OveragePolicy } from '../types.js'
import type { AccountRecord, EngineConfig } from './state.js'

/** What a commit does with a hold's credits and the account's, in credits. */
export interface HoldSettlement {
  /** Spent from the hold itself (`min(actual, amount)`). */
  fromHold: number
  /** Spent from the account's free credits beyond the hold (clamp and overdraft). */
  fromAvailable: number
  /** Added to the account's debt (overdraft only). */
  debt: number
  /** Everything charged: `fromHold + fromAvailable + debt`. */
  charged: number
  /** What was used but could not be charged: `actual − charged`. */
  shortfall: number
  /** Held credits given back: `amount − fromHold`. */
  freed: number
}

/** What the account can give beyond the hold. */
export interface SettleRoom {
  /** Free credits, the hold's own excluded. */
  available: number
  /** Debt the overdraft policy may still add (see {@link overdraftRoom}); 0 where none may. */
  overdraft: number
}

/**
 * Settles a commit of `actual` (undefined: the held amount) against a hold of `hold.amount`.
 * Above the hold: `'reject'` refuses ({@link OverageError}, returned, nothing settled);
 * `'clamp'` spends what is available and reports the rest as shortfall; `'overdraft'` also
 * adds up to `room.overdraft` of debt.
 * @example
 * settleHold({ id, amount: 10 }, 12, 'clamp', { available: 1, overdraft: 0 })
 * // → { fromHold: 10, fromAvailable: 1, debt: 0, charged: 11, shortfall: 1, freed: 0 }
 */
export function settleHold(
  hold: { readonly id: string; readonly amount: number },
  actual: number | undefined,
  policy: OveragePolicy,
  room: SettleRoom,
): HoldSettlement | OverageError {
  const used = actual ?? hold.amount
  if (used <= hold.amount) {
    return {
      fromHold: used,
      fromAvailable: 0,
      debt: 0,
      charged: used,
      shortfall: 0,
      freed: hold.amount - used,
    }
  }
  if (policy === 'reject') return new OverageError(hold.id, hold.amount, used)
  const extra = used - hold.amount
  const fromAvailable = Math.max(0, Math.min(extra, room.available))
  const debt =
    policy === 'overdraft' ? Math.max(0, Math.min(extra - fromAvailable, room.overdraft)) : 0
  const charged = hold.amount + fromAvailable + debt
  return {
    fromHold: hold.amount,
    fromAvailable,
    debt,
    charged,
    shortfall: used - charged,
    freed: 0,
  }
}

/**
 * How much more debt the account may take under the overdraft policy: its overdraft limit
 * (per account, else the meter's; none set: up to 2^53 − 1) less the debt it has.
 */
export function overdraftRoom(
  record: Pick<AccountRecord, 'debt' | 'overdraftLimit'>,
  config: Pick<EngineConfig, 'overdraftLimit'>,
): number {
  const limit = record.overdraftLimit ?? config.overdraftLimit
  const ceiling = Math.min(limit ?? Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)
  return Math.max(0, ceiling - record.debt)
}

/**
 * How much an increase of `n` grows a hold when `available` free credits can back it: all of
 * `n`, or with `partial` as much as there is; null when it must be refused (all or nothing and
 * `n > available`). One function, used by the engine for store holds and by the lease manager
 * for local holds (whose `available` is what their leases can still hold), so both grow alike.
 * @example growth(10, 4, true) // 4
 * @example growth(10, 4, false) // null: InsufficientCreditsError { required: 10, available: 4 }
 */
export function growth(n: number, available: number, partial: boolean): number | null {
  const free = Math.max(0, available)
  if (n <= free) return n
  return partial ? free : null
}
