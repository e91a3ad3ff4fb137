/**
 * Where a meter's holds live. A reserve is served from a lease when it can be (no round
 * trip), else by the store, and refused without a round trip when the cache knows the account
 * is short; commit, release, extend and increase follow the hold to where it lives.
 */
import { InsufficientCreditsError, InvalidInputError, isTollgateError } from '../errors.js'
import {
  checkAccount,
  checkAmount,
  checkHoldId,
  commitOptionsSchema,
  extendOptionsSchema,
  increaseOptionsSchema,
  metadataOf,
  parse,
  parseReserveOptions,
  releaseOptionsSchema,
  ttlSchema,
} from '../protocol/validation.js'
import type { Outcome } from '../store/store.js'
import type { CommitResult, HoldData, IncreaseResult, ReleaseResult } from '../types.js'
import { type ExtendResult, Hold } from './hold.js'
import type { LeaseManager } from './lease.js'
import type { Meter } from './meter.js'
import type {
  CallOptions,
  CommitOptions,
  IncreaseOptions,
  MutationOptions,
  ReserveOptions,
} from './operation-options.js'
import type { SharedCache } from './shared-cache.js'
import { result, type StoreClient } from './store-client.js'

export class Holds {
  readonly #meter: Meter
  readonly #client: StoreClient
  readonly #cache: SharedCache
  readonly #leases: LeaseManager | null
  readonly #defaultTtlMs: number

  constructor(
    meter: Meter,
    client: StoreClient,
    cache: SharedCache,
    leases: LeaseManager | null,
    defaultTtlMs: number,
  ) {
    this.#meter = meter
    this.#client = client
    this.#cache = cache
    this.#leases = leases
    this.#defaultTtlMs = defaultTtlMs
  }

  /** See {@link Meter.tryReserve}. */
  reserve(account: string, amount: number, options?: ReserveOptions): Hold | Promise<Hold> {
    checkAccount(account)
    checkAmount(amount)
    const o = parseReserveOptions(options)
    const ttlMs = o?.ttlMs ?? this.#defaultTtlMs
    const leases = this.#leases
    if (leases?.eligible(amount) && o?.idempotencyKey === undefined && o?.metadata === undefined) {
      this.#client.checkOpen()
      const counts = this.#client.counts
      const now = leases.reserveNow(account, amount, ttlMs)
      if (now !== undefined) {
        counts.leaseServes++
        return new Hold(this.#meter, now.data, now.balance, false)
      }
      return leases.reserve(account, amount, ttlMs).then(
        (leased) => {
          // The leases cannot serve it within their loss bound now: an ordinary store hold.
          if (leased === null) return this.#reserveInStore(account, amount, ttlMs, o)
          counts.leaseServes++
          return new Hold(this.#meter, leased.data, leased.balance, false)
        },
        (err: unknown) => {
          if (isTollgateError(err, 'insufficient_credits')) {
            counts.refusals++
            counts.leaseRefusals++
          }
          throw err
        },
      )
    }
    return this.#reserveInStore(account, amount, ttlMs, o)
  }

  /** A reserve as an ordinary store hold. */
  #reserveInStore(
    account: string,
    amount: number,
    ttlMs: number,
    o: ReturnType<typeof parseReserveOptions>,
  ): Hold | Promise<Hold> {
    // A keyed reserve may be a replay (or a conflict): only the store knows.
    if (amount > 0 && o?.idempotencyKey === undefined) this.#refuseIfKnownShort(account, amount)
    const out = this.#client.execute(
      account,
      {
        type: 'reserve',
        amount,
        ttlMs,
        metadata: metadataOf(o?.metadata),
        idempotencyKey: o?.idempotencyKey,
      },
      o?.timeoutMs,
    )
    if (out instanceof Promise) return out.then((r) => this.#hold(r))
    return this.#hold(out)
  }

  #hold(out: Outcome): Hold {
    return new Hold(this.#meter, out.result as unknown as HoldData, out.balance!, out.replayed)
  }

  /**
   * The cached fast path: an account whose cached balance cannot cover `amount`, with nothing
   * held that could come back, is refused without a round trip. A figure is only ever used to
   * refuse, never to grant credit; a grant, release or redemption through any meter on this
   * store clears it, else it lasts the cache TTL.
   */
  #refuseIfKnownShort(account: string, amount: number): void {
    const available = this.#cache.shortOf(account, amount)
    if (available !== undefined) {
      const counts = this.#client.counts
      counts.refusals++
      counts.cacheRefusals++
      throw new InsufficientCreditsError(account, amount, Math.max(0, available))
    }
  }

  commit(holdId: string, actual?: number, options?: CommitOptions): Promise<CommitResult> {
    return promised(() => this.tryCommit(holdId, actual, options))
  }

  /** See {@link Meter.tryCommit}. */
  tryCommit(
    holdId: string,
    actual?: number,
    options?: CommitOptions,
  ): CommitResult | Promise<CommitResult> {
    checkHoldId(holdId)
    if (actual !== undefined) checkAmount(actual, 'actual')
    const o = options === undefined ? undefined : parse(commitOptionsSchema, options)
    if (this.#leases?.owns(holdId)) {
      this.#client.checkOpen()
      if (o?.metadata !== undefined) throw leasedMetadata()
      if (o?.overage === 'overdraft') {
        throw new InvalidInputError('overage', "'overdraft' is not available on a leased hold")
      }
      return this.#leases.commit(holdId, actual, o?.overage, o?.idempotencyKey)
    }
    const out = this.#client.execute(
      undefined,
      {
        type: 'commit',
        holdId,
        actual,
        overage: o?.overage,
        metadata: metadataOf(o?.metadata),
        idempotencyKey: o?.idempotencyKey,
      },
      o?.timeoutMs,
    )
    return out instanceof Promise ? out.then(result<CommitResult>) : result<CommitResult>(out)
  }

  release(holdId: string, options?: MutationOptions): Promise<ReleaseResult> {
    return promised(() => this.tryRelease(holdId, options))
  }

  /** See {@link Meter.tryRelease}. */
  tryRelease(holdId: string, options?: MutationOptions): ReleaseResult | Promise<ReleaseResult> {
    checkHoldId(holdId)
    const o = options === undefined ? undefined : parse(releaseOptionsSchema, options)
    if (this.#leases?.owns(holdId)) {
      this.#client.checkOpen()
      if (o?.metadata !== undefined) throw leasedMetadata()
      return this.#leases.release(holdId, o?.idempotencyKey)
    }
    const out = this.#client.execute(
      undefined,
      {
        type: 'release',
        holdId,
        metadata: metadataOf(o?.metadata),
        idempotencyKey: o?.idempotencyKey,
      },
      o?.timeoutMs,
    )
    return out instanceof Promise ? out.then(result<ReleaseResult>) : result<ReleaseResult>(out)
  }

  async extend(
    holdId: string,
    ttlMs: number,
    options?: { idempotencyKey?: string } & CallOptions,
  ): Promise<ExtendResult> {
    checkHoldId(holdId)
    parse(ttlSchema, ttlMs, 'ttlMs')
    const o = parse(extendOptionsSchema, options)
    if (this.#leases?.owns(holdId)) {
      this.#client.checkOpen()
      return this.#leases.extend(holdId, ttlMs)
    }
    const out = await this.#client.execute(
      undefined,
      {
        type: 'extend',
        holdId,
        ttlMs,
        idempotencyKey: o.idempotencyKey,
      },
      o.timeoutMs,
    )
    return result<ExtendResult>(out)
  }

  async increase(holdId: string, n: number, options?: IncreaseOptions): Promise<IncreaseResult> {
    checkHoldId(holdId)
    checkAmount(n, 'n')
    const o = options === undefined ? undefined : parse(increaseOptionsSchema, options)
    if (this.#leases?.owns(holdId)) {
      this.#client.checkOpen()
      return this.#leases.increase(holdId, n, o?.partial === true, o?.idempotencyKey)
    }
    const out = await this.#client.execute(
      undefined,
      {
        type: 'increase',
        holdId,
        amount: n,
        partial: o?.partial === true,
        idempotencyKey: o?.idempotencyKey,
      },
      o?.timeoutMs,
    )
    return result<IncreaseResult>(out)
  }
}

/** What `fn` returns or throws, as a promise (what the promise-returning methods answer). */
function promised<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    const value = fn()
    return value instanceof Promise ? value : Promise.resolve(value)
  } catch (err) {
    return Promise.reject(err)
  }
}

function leasedMetadata(): InvalidInputError {
  return new InvalidInputError(
    'metadata',
    'cannot be recorded on a hold served from a lease (its usage settles in one commit)',
  )
}
