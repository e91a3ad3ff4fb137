/**
 * One meter's path to its store: the store's migrations run once, before the first operation;
 * each operation is stamped with the meter's clock and engine config and handed to the store;
 * its outcome is settled into the shared cache, the listeners and a result or a typed error.
 * Anything else the store fails with becomes a `StoreUnavailableError`.
 */
import type { Operation } from '../engine/state.js'
import { isTollgateError, StoreUnavailableError } from '../errors.js'
import { warn } from '../options-kit.js'
import { metadataOf } from '../protocol/validation.js'
import { newId } from '../store/ids.js'
import type { Outcome, Store } from '../store/store.js'
import type { HoldData } from '../types.js'
import type { MeterEmitter } from './events.js'
import type { LeaseBackend } from './lease.js'
import type { ResolvedMeterOptions } from './options.js'
import type { SharedCache } from './shared-cache.js'
import { MeterCounters } from './stats.js'

/** Code of the warning a lease's failed flush, refill or settlement raises. */
const LEASE_FAILURE_WARNING = 'TOLLGATE_LEASE_FAILURE'

export class StoreClient {
  readonly #o: ResolvedMeterOptions
  readonly #store: Store
  readonly #cache: SharedCache
  readonly #events: MeterEmitter
  /** The meter's counters (`meter.stats()`), kept here on the store path. */
  readonly counts = new MeterCounters()
  #closed = false
  /** True once the store's migrations ran, or when there are none to run. */
  #migrated: boolean
  /** The migration in flight; a failed one is dropped so that the next operation retries. */
  #migration: Promise<void> | null = null

  constructor(o: ResolvedMeterOptions, cache: SharedCache, events: MeterEmitter) {
    this.#o = o
    this.#store = o.store
    this.#cache = cache
    this.#events = events
    this.#migrated = !o.migrate || typeof this.#store.migrate !== 'function'
    // Start at once so the first request does not wait for all of it; a failure here is
    // reported to the operations that wait for it.
    if (!this.#migrated) this.#whenMigrated()?.catch(() => {})
  }

  /** Throws once the meter is closed. */
  checkOpen(): void {
    if (this.#closed) throw new StoreUnavailableError('meter is closed')
  }

  /** Open and migrated: what a store call that is not an operation waits for. */
  async ready(): Promise<void> {
    this.checkOpen()
    await this.#whenMigrated()
  }

  /** Undefined when the store is ready (the hot path pays one boolean check), else a promise. */
  #whenMigrated(): Promise<void> | undefined {
    if (this.#migrated) return undefined
    if (this.#migration === null) {
      const store = this.#store
      this.#migration = (async () => {
        try {
          await store.migrate?.()
          this.#migrated = true
        } catch (err) {
          throw storeFailure(err)
        } finally {
          this.#migration = null
        }
      })()
    }
    return this.#migration
  }

  /**
   * Hands one operation to the store. Returns the outcome directly when the store answered at
   * once, so a synchronous store costs no extra promise; throws the outcome's domain error.
   * `lease`: the leases' own reserve, whose refusal is no caller's (not counted as one).
   */
  execute(
    account: string | undefined,
    op: Operation,
    timeoutMs?: number,
    lease = false,
  ): Outcome | Promise<Outcome> {
    this.checkOpen()
    const migrating = this.#whenMigrated()
    if (migrating) return migrating.then(() => this.execute(account, op, timeoutMs, lease))
    const counts = this.counts
    counts.storeOperations++
    let pending: Outcome | Promise<Outcome>
    try {
      pending = this.#store.execute({
        tenant: this.#o.tenant,
        account,
        op,
        now: this.#o.clock(),
        config: this.#o.config,
        newId,
        timeoutMs,
      })
    } catch (err) {
      counts.storeErrors++
      throw storeFailure(err)
    }
    if (pending instanceof Promise) {
      // Timed from here: what a store answering at once (memory) costs is the caller's own
      // time, and reading the clock twice per operation is not free on that path.
      const started = performance.now()
      return pending.then(
        (out) => {
          counts.storeSeconds += (performance.now() - started) / 1_000
          return this.#settle(out, op.type, lease)
        },
        (err: unknown) => {
          counts.storeErrors++
          counts.storeSeconds += (performance.now() - started) / 1_000
          throw storeFailure(err)
        },
      )
    }
    return this.#settle(pending, op.type, lease)
  }

  #settle(out: Outcome, type: Operation['type'], lease: boolean): Outcome {
    this.#cache.record(out, type)
    if (out.events.length > 0 && this.#events.listening) this.#events.emit(out.events)
    if (out.error) {
      if (!lease && out.error.code === 'insufficient_credits') this.counts.refusals++
      throw out.error
    }
    return out
  }

  /** Runs a store call that is not an operation (a ledger page, codes, a sweep). */
  async call<T>(fn: (store: Store) => Promise<T>): Promise<T> {
    try {
      return await fn(this.#store)
    } catch (err) {
      throw storeFailure(err)
    }
  }

  /** Refuses everything from now on and closes the store. */
  close(): Promise<void> {
    this.#closed = true
    return this.#store.close()
  }
}

/** The operation's result with `balance` and `replayed`; completed in place, it is ours. */
export function result<T>(out: Outcome): T {
  const r = out.result as Record<string, unknown>
  r.balance = out.balance
  r.replayed = out.replayed
  return r as T
}

function storeFailure(err: unknown): unknown {
  return isTollgateError(err) ? err : new StoreUnavailableError('store failed', { cause: err })
}

/** The store path of a lease's hold: its reserve, its settling commit and its extensions. */
export function leaseBackend(client: StoreClient, o: ResolvedMeterOptions): LeaseBackend {
  return {
    now: o.clock,
    overage: o.config.overage,
    reserve: async (account, amount, ttlMs) => {
      const op: Operation = {
        type: 'reserve',
        amount,
        ttlMs,
        metadata: metadataOf({ lease: true }),
        idempotencyKey: undefined,
      }
      const out = await client.execute(account, op, undefined, true)
      client.counts.leaseGrants++
      const h = out.result as unknown as HoldData
      return { id: h.id, amount: h.amount, expiresAt: h.expiresAt, balance: out.balance! }
    },
    commit: async (holdId, actual) => {
      let out: Outcome
      try {
        out = await client.execute(undefined, {
          type: 'commit',
          holdId,
          actual,
          overage: 'reject',
          metadata: metadataOf(undefined),
          idempotencyKey: undefined,
        })
      } catch (err) {
        client.counts.leaseSettleFailures++
        throw err
      }
      client.counts.leaseSettles++
      return out.balance!
    },
    extend: async (holdId, ttlMs) => {
      const out = await client.execute(undefined, {
        type: 'extend',
        holdId,
        ttlMs,
        idempotencyKey: undefined,
      })
      return { expiresAt: (out.result as { expiresAt: number }).expiresAt, balance: out.balance! }
    },
    warn: (message) => warn(`Tollgate: ${message}`, LEASE_FAILURE_WARNING),
  }
}
