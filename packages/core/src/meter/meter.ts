/**
 * `createMeter()` and the `Meter` class: the metering client. It orchestrates the parts beside
 * it: options (options.ts), each call's input as an engine operation (operations.ts), the
 * store path (store-client.ts), holds served from a lease or the store (holds.ts, hold.ts),
 * the cache shared with sibling meters (shared-cache.ts) and events (events.ts).
 */

import { IdempotencyConflictError, InvalidInputError } from '../errors.js'
import { checkInt, readOptions } from '../options-kit.js'
import {
  accountsQuerySchema,
  balanceOptionsSchema,
  checkAccount,
  ledgerQuerySchema,
  parse,
  sweepOptionsSchema,
  usageRequestOf,
} from '../protocol/validation.js'
import type { Store, StoredEvent } from '../store/store.js'
import { decodeCursor } from '../store/store.js'
import type {
  AccountSettings,
  AccountSettingsView,
  AccountsPage,
  AccountsQuery,
  Balance,
  CommitResult,
  CreateCodesResult,
  CycleResult,
  DebitResult,
  Grant,
  IncreaseResult,
  LedgerEntryType,
  LedgerPage,
  LedgerQuery,
  Metadata,
  RedeemResult,
  ReleaseResult,
  UsageOptions,
  UsageReport,
} from '../types.js'
import { joinChangeFeed } from './change-feed.js'
import { MeterEmitter, type MeterEventName, type MeterListener } from './events.js'
import { type ExtendResult, Hold } from './hold.js'
import { Holds } from './holds.js'
import { LeaseManager } from './lease.js'
import type {
  CallOptions,
  CommitOptions,
  CreateCodesOptions,
  GrantOptions,
  IncreaseOptions,
  MutationOptions,
  ReserveOptions,
  StartCycleOptions,
} from './operation-options.js'
import {
  adjustOperation,
  codeBatch,
  configureOperation,
  debitOperation,
  grantOperation,
  parseCreateCodes,
  redeemOperation,
  startCycleOperation,
  stopCycleOperation,
} from './operations.js'
import { type MeterOptions, type ResolvedMeterOptions, resolveMeterOptions } from './options.js'
import { checkSettings } from './settings.js'
import { SharedCache } from './shared-cache.js'
import type { MeterStats } from './stats.js'
import { leaseBackend, result, StoreClient } from './store-client.js'
import { type EventSubscription, type SubscribeOptions, subscribe } from './subscribe.js'

// The names code that knows the meter by this module imports from it.
export { Hold } from './hold.js'
export type { MeterOptions } from './options.js'

/** Accounts per `accounts()` page when the query names no limit. */
const DEFAULT_ACCOUNTS_LIMIT = 100

/** Accounts `sweep()` touches at once. */
const SWEEP_CONCURRENCY = 32

/** The metering client. Create it with {@link createMeter}. */
export class Meter {
  readonly tenant: string
  readonly #o: ResolvedMeterOptions
  readonly #client: StoreClient
  readonly #cache: SharedCache
  readonly #events: MeterEmitter
  #closing: Promise<void> | null = null
  /** Leases, when the meter has them (`createMeter({ lease })`). */
  readonly #leases: LeaseManager | null
  readonly #holds: Holds
  /** Leaves the store's change feed; a no-op for a meter without a cache. */
  readonly #leaveFeed: () => Promise<void>

  constructor(options: MeterOptions) {
    this.#o = resolveMeterOptions(options)
    this.tenant = this.#o.tenant
    this.#cache = new SharedCache(this.#o.store, this.tenant, this.#o.cache, this.#o.clock)
    this.#events = new MeterEmitter(this.tenant)
    this.#client = new StoreClient(this.#o, this.#cache, this.#events)
    this.#leases = this.#o.lease
      ? new LeaseManager(this.#o.lease, leaseBackend(this.#client, this.#o))
      : null
    this.#holds = new Holds(this, this.#client, this.#cache, this.#leases, this.#o.defaultTtlMs)
    const cache = this.#o.cache
    // Only a cache can go stale: a meter without one has nothing to keep true.
    this.#leaveFeed = cache ? joinChangeFeed(this.#o.store, cache.ttlMs) : async () => {}
    const { config, store } = this.#o
    if (config.lowBalanceThreshold !== null || config.overdraftLimit !== null) {
      // In the background: a meter's creation never waits for the store.
      this.#client
        .ready()
        .then(() => checkSettings(store, this.tenant, config))
        .catch(() => {})
    }
  }

  /** The store this meter runs on. */
  get store(): Store {
    return this.#o.store
  }

  /** Now, by the meter's clock. */
  now(): number {
    return this.#o.clock()
  }

  /**
   * Adds credits in a new bucket (repaying debt first).
   * @example await meter.grant('user_1', 1_000, { validityDays: 30 })
   */
  async grant(account: string, amount: number, options?: GrantOptions): Promise<Grant> {
    const op = grantOperation(account, amount, options, this.#o.clock)
    return result<Grant>(await this.#client.execute(account, op, options?.timeoutMs))
  }

  /**
   * Spends `amount` now, in burn order, all or nothing.
   * @throws InsufficientCreditsError when `available < amount`
   */
  async debit(account: string, amount: number, options?: MutationOptions): Promise<DebitResult> {
    const op = debitOperation(account, amount, options)
    return result<DebitResult>(await this.#client.execute(account, op, options?.timeoutMs))
  }

  /**
   * An operator's correction, written as an `adjust` entry: a positive `delta` adds a
   * non-expiring bucket, a negative one removes available credits (all or nothing).
   */
  async adjust(
    account: string,
    delta: number,
    options?: { reason?: string; metadata?: Metadata; idempotencyKey?: string } & CallOptions,
  ): Promise<DebitResult> {
    const op = adjustOperation(account, delta, options)
    return result<DebitResult>(await this.#client.execute(account, op, options?.timeoutMs))
  }

  /**
   * Earmarks `amount` credits until `commit`, `release` or the TTL.
   * @example
   * const hold = await meter.reserve('user_1', 10)
   * await hold.commit(7) // spends 7, frees 3
   * @throws InsufficientCreditsError when `available < amount`
   */
  reserve(account: string, amount: number, options?: ReserveOptions): Promise<Hold> {
    try {
      const hold = this.tryReserve(account, amount, options)
      return hold instanceof Hold ? Promise.resolve(hold) : hold
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * {@link Meter.reserve} for hot paths: returns the hold itself when it was served at once
   * (from a lease, or by a store that answers synchronously, like `memoryStore()`), else a
   * promise of it. Throws (rather than rejects) what is refused at once. The middleware use it
   * so that a request served from memory costs no promise.
   */
  tryReserve(account: string, amount: number, options?: ReserveOptions): Hold | Promise<Hold> {
    return this.#holds.reserve(account, amount, options)
  }

  /**
   * Settles a hold: spends `actual` (default: the held amount). Above the hold, the overage
   * policy decides; it never throws for insufficiency and reports `{ charged, shortfall }`.
   */
  commit(holdId: string, actual?: number, options?: CommitOptions): Promise<CommitResult> {
    return this.#holds.commit(holdId, actual, options)
  }

  /** Frees a whole hold. */
  release(holdId: string, options?: MutationOptions): Promise<ReleaseResult> {
    return this.#holds.release(holdId, options)
  }

  /**
   * {@link Meter.commit} for hot paths, as {@link Meter.tryReserve} is for reserve: returns the
   * result itself when the store answered at once, else a promise of it; throws (rather than
   * rejects) what is refused at once.
   * @example
   * const r = meter.tryCommit(hold.id, 7)
   * const committed = r instanceof Promise ? await r : r
   */
  tryCommit(
    holdId: string,
    actual?: number,
    options?: CommitOptions,
  ): CommitResult | Promise<CommitResult> {
    return this.#holds.tryCommit(holdId, actual, options)
  }

  /**
   * {@link Meter.release} for hot paths: the result itself when the store answered at once,
   * else a promise of it; throws what is refused at once.
   * @example
   * const r = meter.tryRelease(hold.id)
   * const released = r instanceof Promise ? await r : r
   */
  tryRelease(holdId: string, options?: MutationOptions): ReleaseResult | Promise<ReleaseResult> {
    return this.#holds.tryRelease(holdId, options)
  }

  /** Moves a pending hold's expiry to `now + ttlMs` (1 s–24 h). */
  extend(
    holdId: string,
    ttlMs: number,
    options?: { idempotencyKey?: string } & CallOptions,
  ): Promise<ExtendResult> {
    return this.#holds.extend(holdId, ttlMs, options)
  }

  /**
   * Grows a pending hold by `n` credits, taken in burn order: all or nothing
   * (`InsufficientCreditsError`, the hold untouched), or with `{ partial: true }` by as much as
   * is available up to `n` (`added` says how much). `n = 0` answers the hold as it is. For
   * long work whose cost is learnt as it goes (streams): grow the hold before serving more.
   * @example
   * const hold = await meter.reserve('user_1', 100)
   * const grown = await meter.increase(hold.id, 50, { idempotencyKey: 'chunk-2' })
   * grown.amount // 150
   */
  increase(holdId: string, n: number, options?: IncreaseOptions): Promise<IncreaseResult> {
    return this.#holds.increase(holdId, n, options)
  }

  /**
   * The account's balance: from the cache when this process saw it recently, else from the
   * store (which also applies any expiry that fell due). `{ fresh: true }` skips the cache.
   */
  async balance(account: string, options?: { fresh?: boolean } & CallOptions): Promise<Balance> {
    checkAccount(account)
    const o = options === undefined ? undefined : parse(balanceOptionsSchema, options)
    let balance: Balance | undefined
    if (o?.fresh !== true) {
      balance = this.#cache.get(account)
      if (balance === undefined) this.#client.counts.cacheMisses++
      else this.#client.counts.cacheHits++
    }
    balance ??= (await this.#client.execute(account, { type: 'balance' }, o?.timeoutMs)).balance!
    // Credits this meter leased are counted as what they are: used, in local holds, or free.
    return this.#leases ? this.#leases.adjust(balance) : balance
  }

  /**
   * The meter's own figures since it was created: store operations and their latency, cache
   * hits and refusals, leases. A plain snapshot of monotonic counters (cheap: the meter keeps
   * them as integers); export them with `prometheusCollector()` or `openTelemetryMetrics()`.
   * @example const { refusals, cacheHits } = meter.stats()
   */
  stats(): MeterStats {
    return this.#client.counts.snapshot()
  }

  /**
   * Settles lease usage now: leases used since they were taken, or idle, stop taking holds
   * and commit what they spent once their holds resolve. Leases do it every `flushMs` anyway.
   */
  async flush(): Promise<void> {
    await this.#leases?.flush('now')
  }

  /** A page of the account's ledger, newest first. */
  async ledger(account: string, query?: LedgerQuery): Promise<LedgerPage> {
    checkAccount(account)
    const q = parse(ledgerQuerySchema, query, 'query')
    await this.#client.ready()
    let before: number | null = null
    if (q.cursor !== undefined) {
      before = decodeCursor(q.cursor)
      if (before === null) throw new InvalidInputError('cursor', 'is not a ledger cursor')
    }
    return this.#client.call((store) =>
      store.ledger(this.tenant, account, {
        limit: q.limit ?? 100,
        before,
        types: (q.types as LedgerEntryType[] | undefined) ?? null,
        from: q.from ?? null,
        to: q.to ?? null,
      }),
    )
  }

  /**
   * Usage over time (docs/usage.md): credits granted, spent, released and expired per UTC
   * hour, day or month of one account, or of the whole tenant with `account` null; with
   * `groupBy`, also per value of that metadata key. Every period of the window is listed, zeros
   * included. Throws `InvalidInputError` for a bad option (naming it), and (field `store`) on a
   * store that keeps no usage.
   * @example
   * const { periods } = await meter.usage('acct', { interval: 'day', groupBy: 'feature' })
   * const tenant = await meter.usage(null, { interval: 'month', from: Date.UTC(2026, 0, 1) })
   */
  async usage(account: string | null, options?: UsageOptions): Promise<UsageReport> {
    const request = usageRequestOf(account, options, this.#o.clock())
    const store = this.#o.store
    if (!store.usage) throw new InvalidInputError('store', `${store.kind} store keeps no usage`)
    await this.#client.ready()
    return this.#client.call((s) => s.usage!(this.tenant, request))
  }

  /**
   * A page of this meter's tenant's accounts, for operators: filters combine with AND, pages
   * follow `nextCursor` (see {@link AccountsQuery}). `low` uses the account's threshold, else the
   * tenant's stored default, never this meter's option. A store without `accounts()` is
   * `InvalidInputError` (field `store`).
   * @example
   * const { accounts, nextCursor } = await meter.accounts({ low: true, sort: 'balance' })
   */
  async accounts(query?: AccountsQuery): Promise<AccountsPage> {
    const q = parse(accountsQuerySchema, query, 'query')
    const list = this.#o.store.accounts
    if (typeof list !== 'function') {
      throw new InvalidInputError('store', `${this.#o.store.kind} store cannot list accounts`)
    }
    await this.#client.ready()
    return this.#client.call((store) =>
      list.call(store, this.tenant, { ...q, limit: q.limit ?? DEFAULT_ACCOUNTS_LIMIT }),
    )
  }

  /** Per-account settings; `null` returns a setting to the meter's default. */
  async configure(
    account: string,
    settings: { lowBalanceThreshold?: number | null; overdraftLimit?: number | null } & CallOptions,
  ): Promise<AccountSettings & { balance: Balance }> {
    const op = configureOperation(account, settings)
    const out = await this.#client.execute(account, op, settings?.timeoutMs)
    return result<AccountSettings & { balance: Balance }>(out)
  }

  /**
   * The account's settings: its own (null: none) and the ones in effect for it, which are its
   * own, else the tenant's stored defaults, else this meter's options.
   * @example (await meter.settings('user_1')).effective.lowBalanceThreshold // 20
   */
  async settings(account: string, options?: CallOptions): Promise<AccountSettingsView> {
    checkAccount(account)
    const out = await this.#client.execute(account, { type: 'balance' }, options?.timeoutMs)
    const r = out.result as unknown as AccountSettings & { effective: AccountSettings }
    return {
      account,
      lowBalanceThreshold: r.lowBalanceThreshold,
      overdraftLimit: r.overdraftLimit,
      effective: { ...r.effective },
    }
  }

  /**
   * Grants `amount` at the start of every period, expiring at its end; unspent credits up to
   * `rollover.max` carry into the next period. Replaces an active cycle.
   */
  async startCycle(account: string, options: StartCycleOptions): Promise<CycleResult> {
    const op = startCycleOperation(account, options)
    return result<CycleResult>(await this.#client.execute(account, op, options?.timeoutMs))
  }

  /** Stops future refills; the current period's credits stay until they expire. */
  async stopCycle(
    account: string,
    options?: { idempotencyKey?: string } & CallOptions,
  ): Promise<CycleResult> {
    const op = stopCycleOperation(account, options)
    return result<CycleResult>(await this.#client.execute(account, op, options?.timeoutMs))
  }

  /**
   * Creates redeem codes. The plaintext codes are returned once; only hashes are stored.
   * @example const { codes } = await meter.createCodes({ credits: 500, count: 10 })
   */
  async createCodes(options: CreateCodesOptions): Promise<CreateCodesResult> {
    const o = parseCreateCodes(options)
    await this.#client.ready()
    const { batch, codes, summary } = codeBatch(o, this.#o.clock())
    const outcome = await this.#client.call((store) => store.createCodes(this.tenant, batch))
    if (outcome.status === 'conflict') {
      throw new IdempotencyConflictError(batch.idempotency!.key)
    }
    if (outcome.status === 'replayed') {
      return { ...(outcome.result as typeof summary), codes: [], replayed: true }
    }
    return { ...summary, codes, replayed: false }
  }

  /**
   * Redeems a code for the account.
   * @throws InvalidInputError for a malformed or unknown code
   * @throws CodeUnavailableError when expired, exhausted or already redeemed by this account
   * @throws RateLimitedError after too many failed attempts
   */
  async redeem(
    account: string,
    code: string,
    options?: { idempotencyKey?: string } & CallOptions,
  ): Promise<RedeemResult> {
    const op = redeemOperation(account, code, options)
    const r = result<RedeemResult>(await this.#client.execute(account, op, options?.timeoutMs))
    return { ...r, newBalance: r.balance.available }
  }

  /**
   * Applies everything due (hold TTLs, bucket expiry, cycle periods) on up to `limit`
   * accounts, and prunes idempotency keys and resolved holds past retention.
   */
  async sweep(options?: { limit?: number }): Promise<{ accounts: number; pruned: number }> {
    const limit = parse(sweepOptionsSchema, options).limit ?? 1_000
    await this.#client.ready()
    const now = this.#o.clock()
    return this.#client.call(async (store) => {
      const due = await store.dueAccounts(this.tenant, now, limit)
      // A few at a time: a store that batches (group commit) then shares transactions.
      for (let i = 0; i < due.length; i += SWEEP_CONCURRENCY) {
        await Promise.all(
          due
            .slice(i, i + SWEEP_CONCURRENCY)
            .map((account) => this.#client.execute(account, { type: 'balance' })),
        )
      }
      const pruned = await store.prune(this.tenant, now - this.#o.retentionMs)
      return { accounts: due.length, pruned }
    })
  }

  /**
   * Subscribes to an event; returns the unsubscribe function. `low`, `depleted` and
   * `recovered` fire once per crossing; `granted`, `committed`, `released`, `expired` per change.
   */
  on<K extends MeterEventName>(event: K, listener: MeterListener<K>): () => void {
    this.#events.on(event, listener)
    return () => this.off(event, listener)
  }

  off<K extends MeterEventName>(event: K, listener: MeterListener<K>): void {
    this.#events.off(event, listener)
  }

  /**
   * The tenant's durable events (the store's outbox) with `seq > after`, oldest first: every
   * ledger change and alert, written with the change itself, whichever process or path made it.
   * Throws `InvalidInputError` (field `store`) on a store that keeps none (`httpStore()`).
   * @example const page = await meter.events({ after: lastSeq, limit: 100 })
   */
  async events(options: { after?: number; limit?: number } = {}): Promise<StoredEvent[]> {
    const o = readOptions(options, { owner: 'meter.events', defaults: { after: 0, limit: 100 } })
    const after = checkInt(o.after, 'after')
    const limit = checkInt(o.limit, 'limit', 1, 1000)
    const store = this.#o.store
    if (!store.events) throw new InvalidInputError('store', `${store.kind} store keeps no events`)
    await this.#client.ready()
    return this.#client.call((s) => s.events!({ tenant: this.tenant, after, limit }))
  }

  /**
   * Hands each of the tenant's durable events to `onEvent`, in order, at least once: reads
   * what is there from `after` on, then waits for more (woken by the store's change feed,
   * or a poll). Keep `position` (or the last `event.seq`) to resume after a restart.
   * Unlike {@link on}, it sees changes made by every process sharing the store.
   * @example
   * const sub = meter.subscribe({ after: saved, onEvent: async (e) => save(e.seq, e) })
   * await sub.close()
   */
  subscribe(options: SubscribeOptions): EventSubscription {
    return subscribe(this.#o.store, this.tenant, options, () => this.#client.ready())
  }

  /** Closes the meter and its store. */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close(): Promise<void> {
    try {
      // Usage served from leases is charged before the store goes away.
      await this.#leases?.close()
    } finally {
      this.#events.clear()
      this.#cache.close()
      try {
        await this.#leaveFeed()
      } finally {
        await this.#client.close()
      }
    }
  }
}

/**
 * Creates a meter over a store.
 * @example
 * import { createMeter, memoryStore } from '@tollgate/core'
 * const meter = createMeter({ store: memoryStore() })
 * await meter.grant('user_1', 100)
 * const hold = await meter.reserve('user_1', 10)
 * await hold.commit(4)
 */
export function createMeter(options: MeterOptions): Meter {
  return new Meter(options)
}
