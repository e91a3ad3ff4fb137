/**
 * `Hold`: a pending hold as `reserve` returns it. It carries the hold's data and settles
 * through the meter that made it, so `hold.commit()` and `meter.commit(hold.id)` are one path.
 */

import type {
  Balance,
  CommitResult,
  HoldData,
  IncreaseResult,
  Metadata,
  ReleaseResult,
} from '../types.js'
import type { Meter } from './meter.js'
import type {
  CallOptions,
  CommitOptions,
  IncreaseOptions,
  MutationOptions,
} from './operation-options.js'

/** The result of extend: the hold as it is now. */
export interface ExtendResult extends HoldData {
  replayed: boolean
  balance: Balance
}

/** A pending hold, as `reserve` returns it; settle it with `commit` or `release`. */
export class Hold implements HoldData {
  readonly id: string
  readonly account: string
  /** What is held: the reserved amount, plus what {@link Hold.increase} through it added. */
  amount: number
  readonly expiresAt: number
  readonly createdAt: number
  readonly allocations: HoldData['allocations']
  readonly metadata: Metadata
  readonly replayed: boolean
  /** The balance right after the reserve. */
  readonly balance: Balance
  readonly #meter: Meter

  constructor(meter: Meter, data: HoldData, balance: Balance, replayed: boolean) {
    this.#meter = meter
    this.id = data.id
    this.account = data.account
    this.amount = data.amount
    this.expiresAt = data.expiresAt
    this.createdAt = data.createdAt
    this.allocations = data.allocations
    this.metadata = data.metadata
    this.balance = balance
    this.replayed = replayed
  }

  /** Spends `actual` (default: the held amount) and frees the rest. */
  commit(actual?: number, options?: CommitOptions): Promise<CommitResult> {
    return this.#meter.commit(this.id, actual, options)
  }

  /** Frees the whole hold. */
  release(options?: MutationOptions): Promise<ReleaseResult> {
    return this.#meter.release(this.id, options)
  }

  /** Moves the expiry to `now + ttlMs`: a heartbeat for long work. */
  extend(
    ttlMs: number,
    options?: { idempotencyKey?: string } & CallOptions,
  ): Promise<ExtendResult> {
    return this.#meter.extend(this.id, ttlMs, options)
  }

  /**
   * Grows the hold by `n` credits (see {@link Meter.increase}); on success `amount` follows.
   * `allocations` stay as reserved.
   * @example if ((await hold.increase(10, { partial: true })).added < 10) stopServing()
   */
  async increase(n: number, options?: IncreaseOptions): Promise<IncreaseResult> {
    const out = await this.#meter.increase(this.id, n, options)
    // A hold only grows: an answer overtaken by a later one must not shrink it.
    this.amount = Math.max(this.amount, out.amount)
    return out
  }

  toJSON(): HoldData & { replayed: boolean } {
    return {
      id: this.id,
      account: this.account,
      amount: this.amount,
      expiresAt: this.expiresAt,
      createdAt: this.createdAt,
      allocations: this.allocations,
      metadata: this.metadata,
      replayed: this.replayed,
    }
  }
}
