/**
 * `createMeter()`: the metering client. It validates input, stamps the clock, hands one
 * operation at a time to the store (which runs the engine) and turns outcomes into results,
 * typed errors, cache refreshes and events.
 */
import { BalanceCache, type BalanceCacheOptions } from './balance-cache.js'
import { canonicalCode, generateCode, hashCode } from './codes.js'
import type { CodeRecord, EngineConfig, EngineEvent, Operation } from './engine/state.js'
import {
  IdempotencyConflictError,
  InsufficientCreditsError,
  InvalidInputError,
  isTollgateError,
  StoreUnavailableError,
} from './errors.js'
import { newId } from './ids.js'
import {
  LeaseManager,
  type LeaseOptions,
  type ResolvedLeaseOptions,
  resolveLeaseOptions,
} from './lease.js'
import type { Outcome, Store } from './store.js'
import { decodeCursor } from './store.js'
import type {
  AccountSettings,
  Balance,
  CommitResult,
  CreateCodesResult,
  CycleEvery,
  CycleResult,
  DebitResult,
  Grant,
  HoldData,
  LedgerEntryType,
  LedgerPage,
  LedgerQuery,
  Metadata,
  OveragePolicy,
  RedeemResult,
  ReleaseResult,
} from './types.js'
import {
  adjustOptionsSchema,
  balanceOptionsSchema,
  checkAccount,
  checkAmount,
  checkHoldId,
  commitOptionsSchema,
  configureSchema,
  createCodesSchema,
  debitOptionsSchema,
  extendOptionsSchema,
  grantOptionsSchema,
  ledgerQuerySchema,
  metadataOf,
  parse,
  parseReserveOptions,
  redeemOptionsSchema,
  releaseOptionsSchema,
  startCycleSchema,
  stopCycleSchema,
  sweepOptionsSchema,
  ttlSchema,
} from './validation.js'

const DAY_MS = 86_400_000
/** Operations that never give an account credits back (so leave other meters' figures valid). */
const TAKES_ONLY: ReadonlySet<Operation['type']> = new Set([
  'reserve',
  'debit',
  'balance',
  'extend',
])

/** The balance caches of every meter on one store, by tenant: a grant through one clears the rest. */
const CACHES = new WeakMap<Store, Map<string, Set<BalanceCache>>>()

function siblingCaches(store: Store, tenant: string): Set<BalanceCache> {
  let byTenant = CACHES.get(store)
  if (!byTenant) {
    byTenant = new Map()
    CACHES.set(store, byTenant)
  }
  let set = byTenant.get(tenant)
  if (!set) {
    set = new Set()
    byTenant.set(tenant, set)
  }
  return set
}

/** Accounts `sweep()` touches at once. */
const SWEEP_CONCURRENCY = 32

/** Options of {@link createMeter}. */
export interface MeterOptions {
  /** Where the credits live. @example memoryStore() */
  store: Store
  /** The tenant this meter sees; nothing crosses tenants. @default 'default' */
  tenant?: string
  /** ms since epoch. Inject a fake clock to test expiry without sleeping. @default Date.now */
  clock?: () => number
  /** The balance cache, or `false` for none. @default { max: 10_000, ttlMs: 1_000 } */
  cache?: BalanceCacheOptions | false
  /** `low` is `available ≤ this`; per-account settings override it. @default null (off) */
  lowBalanceThreshold?: number | null
  /** Most debt an overdraft commit may create; per-account settings override. @default null (no limit) */
  overdraftLimit?: number | null
  /** What a commit above its hold does. @default 'clamp' */
  overage?: OveragePolicy
  /** Hold TTL when `reserve` is not given one. @default 60_000 */
  defaultTtlMs?: number
  /** Failed redeem attempts allowed per account and window. @default { max: 10, windowMs: 3_600_000 } */
  redeemAttempts?: { max?: number; windowMs?: number }
  /** How long idempotency keys and resolved holds are kept (at least 48 h). @default 172_800_000 */
  retentionMs?: number
  /**
   * Run `store.migrate()` before the first operation. Turn it off when migrations run as a
   * deploy step. @default true
   */
  migrate?: boolean
  /**
   * Serve reserves from a block of each active account's credits held in this process
   * (DESIGN §2): no store round trip per request. Usage settles to the store every `flushMs`,
   * when a lease runs out and on `close()`; a process that dies loses at most its unsettled
   * usage (one lease per account). Reserves larger than `size`, or with an idempotency key or
   * metadata, go to the store. Not with `overage: 'overdraft'`. @default off
   * @example createMeter({ store, lease: { size: 1_000, ttlMs: 30_000, flushMs: 1_000 } })
   */
  lease?: LeaseOptions
}

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

/** Payloads of {@link Meter.on}, by event name. */
export type MeterEvents = {
  [K in EngineEvent['type']]: (K extends AlertEventType
    ? Omit<Extract<EngineEvent, { type: AlertEventType }>, 'type'> & { type: K }
    : Extract<EngineEvent, { type: K }>) & { tenant: string }
}
type AlertEventType = 'low' | 'depleted' | 'recovered'
export type MeterEventName = keyof MeterEvents

/** The result of extend: the hold as it is now. */
export interface ExtendResult extends HoldData {
  replayed: boolean
  balance: Balance
}

/** A pending hold, as `reserve` returns it; settle it with `commit` or `release`. */
export class Hold implements HoldData {
  readonly id: string
  readonly account: string
  readonly amount: number
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

interface ResolvedMeterOptions {
  store: Store
  tenant: string
  clock: () => number
  cache: Required<BalanceCacheOptions> | false
  config: EngineConfig
  defaultTtlMs: number
  retentionMs: number
  migrate: boolean
  lease: ResolvedLeaseOptions | null
}

const MIN_RETENTION_MS = 2 * DAY_MS
const METER_OPTION_KEYS = new Set([
  'store',
  'tenant',
  'clock',
  'cache',
  'lowBalanceThreshold',
  'overdraftLimit',
  'overage',
  'defaultTtlMs',
  'redeemAttempts',
  'retentionMs',
  'migrate',
  'lease',
])

function resolveOptions(options: MeterOptions): ResolvedMeterOptions {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidInputError('options', 'createMeter needs an options object with a store')
  }
  for (const key of Object.keys(options)) {
    if (!METER_OPTION_KEYS.has(key)) {
      process.emitWarning(`createMeter: unknown option "${key}" is ignored`, 'TollgateWarning')
    }
  }
  const store = options.store
  if (typeof store !== 'object' || store === null || typeof store.execute !== 'function') {
    throw new InvalidInputError('store', 'must be a Tollgate store, e.g. memoryStore()')
  }
  const tenant = checkAccount(options.tenant ?? 'default', 'tenant')
  const clock = options.clock ?? Date.now
  if (typeof clock !== 'function') throw new InvalidInputError('clock', 'must be a function')
  const nullableAmount = (v: unknown, field: string) =>
    v === undefined || v === null ? null : checkAmount(v, field)
  const overage = options.overage ?? 'clamp'
  if (overage !== 'reject' && overage !== 'clamp' && overage !== 'overdraft') {
    throw new InvalidInputError('overage', "must be 'reject', 'clamp' or 'overdraft'")
  }
  const redeem = options.redeemAttempts ?? {}
  const retentionMs = options.retentionMs ?? MIN_RETENTION_MS
  if (checkAmount(retentionMs, 'retentionMs') < MIN_RETENTION_MS) {
    throw new InvalidInputError('retentionMs', 'must be at least 48 hours')
  }
  const defaultTtlMs = parse(ttlSchema, options.defaultTtlMs ?? 60_000, 'defaultTtlMs')
  let cache: Required<BalanceCacheOptions> | false = false
  if (options.cache !== false) {
    cache = {
      max: checkAmount(options.cache?.max ?? 10_000, 'cache.max', 1),
      ttlMs: checkAmount(options.cache?.ttlMs ?? 1_000, 'cache.ttlMs', 1),
    }
  }
  const migrate = options.migrate ?? true
  if (typeof migrate !== 'boolean') throw new InvalidInputError('migrate', 'must be a boolean')
  const lease = options.lease === undefined ? null : resolveLeaseOptions(options.lease)
  if (lease !== null && overage === 'overdraft') {
    // Debt is the store's to record: a lease can only spend what it holds.
    throw new InvalidInputError('lease', "cannot be combined with overage: 'overdraft'")
  }
  return {
    lease,
    store,
    tenant,
    clock,
    cache,
    defaultTtlMs,
    retentionMs,
    migrate,
    config: {
      lowBalanceThreshold: nullableAmount(options.lowBalanceThreshold, 'lowBalanceThreshold'),
      overdraftLimit: nullableAmount(options.overdraftLimit, 'overdraftLimit'),
      overage,
      redeemMaxFailures: checkAmount(redeem.max ?? 10, 'redeemAttempts.max', 1),
      redeemWindowMs: checkAmount(redeem.windowMs ?? 3_600_000, 'redeemAttempts.windowMs', 1),
    },
  }
}

type Listener<K extends MeterEventName> = (event: MeterEvents[K]) => void

/** The metering client. Create it with {@link createMeter}. */
export class Meter {
  readonly tenant: string
  readonly #o: ResolvedMeterOptions
  readonly #store: Store
  readonly #cache: BalanceCache | null
  readonly #listeners = new Map<string, Set<(event: never) => void>>()
  #closed = false
  #closing: Promise<void> | null = null
  /** True once the store's migrations ran, or when there are none to run. */
  #migrated: boolean
  /** The migration in flight; a failed one is dropped so that the next operation retries. */
  #migration: Promise<void> | null = null
  /** Leases, when the meter has them (`createMeter({ lease })`). */
  readonly #leases: LeaseManager | null
  /** Caches of the meters on the same store and tenant (this one's included). */
  readonly #siblings: Set<BalanceCache>

  constructor(options: MeterOptions) {
    this.#o = resolveOptions(options)
    this.#store = this.#o.store
    this.tenant = this.#o.tenant
    this.#cache = this.#o.cache ? new BalanceCache(this.#o.cache, this.#o.clock) : null
    this.#siblings = siblingCaches(this.#store, this.tenant)
    if (this.#cache) this.#siblings.add(this.#cache)
    this.#leases = this.#o.lease ? this.#newLeases(this.#o.lease) : null
    this.#migrated = !this.#o.migrate || typeof this.#store.migrate !== 'function'
    // Start at once so the first request does not wait for all of it; a failure here is
    // reported to the operations that wait for it.
    if (!this.#migrated) this.#whenMigrated()?.catch(() => {})
  }

  #newLeases(options: ResolvedLeaseOptions): LeaseManager {
    return new LeaseManager(options, {
      now: this.#o.clock,
      overage: this.#o.config.overage,
      reserve: async (account, amount, ttlMs) => {
        const out = await this.#execute(account, {
          type: 'reserve',
          amount,
          ttlMs,
          metadata: metadataOf({ lease: true }),
          idempotencyKey: undefined,
        })
        const h = out.result as unknown as HoldData
        return { id: h.id, amount: h.amount, expiresAt: h.expiresAt, balance: out.balance! }
      },
      commit: async (holdId, actual) => {
        const out = await this.#execute(undefined, {
          type: 'commit',
          holdId,
          actual,
          overage: 'reject',
          metadata: metadataOf(undefined),
          idempotencyKey: undefined,
        })
        return out.balance!
      },
      extend: async (holdId, ttlMs) => {
        const out = await this.#execute(undefined, {
          type: 'extend',
          holdId,
          ttlMs,
          idempotencyKey: undefined,
        })
        return { expiresAt: (out.result as { expiresAt: number }).expiresAt, balance: out.balance! }
      },
      warn: (message) => process.emitWarning(`Tollgate: ${message}`, 'TollgateWarning'),
    })
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

  /** The store this meter runs on. */
  get store(): Store {
    return this.#store
  }

  /** Now, by the meter's clock. */
  now(): number {
    return this.#o.clock()
  }

  /**
   * Hands one operation to the store. Returns the outcome directly when the store answered at
   * once, so a synchronous store costs no extra promise; throws the outcome's domain error.
   */
  #checkOpen(): void {
    if (this.#closed) throw new StoreUnavailableError('meter is closed')
  }

  #execute(
    account: string | undefined,
    op: Operation,
    timeoutMs?: number,
  ): Outcome | Promise<Outcome> {
    this.#checkOpen()
    const migrating = this.#whenMigrated()
    if (migrating) return migrating.then(() => this.#execute(account, op, timeoutMs))
    let pending: Outcome | Promise<Outcome>
    try {
      pending = this.#store.execute({
        tenant: this.tenant,
        account,
        op,
        now: this.#o.clock(),
        config: this.#o.config,
        newId,
        timeoutMs,
      })
    } catch (err) {
      throw storeFailure(err)
    }
    if (pending instanceof Promise) {
      return pending.then(
        (out) => this.#settle(out, op.type),
        (err: unknown) => {
          throw storeFailure(err)
        },
      )
    }
    return this.#settle(pending, op.type)
  }

  #settle(out: Outcome, type: Operation['type']): Outcome {
    // A replay carries the balance as it was then: not news for the cache.
    if (out.balance && !out.replayed) {
      this.#cache?.set(out.balance)
      // Credits that came back (a grant, a release…) make the other meters' figures of this
      // account stale: they must not refuse a reserve on them. (Reserves and debits only take.)
      const siblings = this.#siblings
      if (out.error === null && !TAKES_ONLY.has(type) && siblings.size > 0) {
        for (const cache of siblings) {
          if (cache !== this.#cache) cache.delete(out.balance.account)
        }
      }
    }
    if (out.events.length > 0 && this.#listeners.size > 0) this.#emit(out.events)
    if (out.error) throw out.error
    return out
  }

  #emit(events: EngineEvent[]): void {
    for (const event of events) {
      const set = this.#listeners.get(event.type)
      if (!set) continue
      const payload = { ...event, tenant: this.tenant } as never
      for (const fn of set) {
        try {
          fn(payload)
        } catch (err) {
          process.emitWarning(
            `Tollgate ${event.type} listener threw: ${String(err)}`,
            'TollgateWarning',
          )
        }
      }
    }
  }

  /**
   * Adds credits in a new bucket (repaying debt first).
   * @example await meter.grant('user_1', 1_000, { validityDays: 30 })
   */
  async grant(account: string, amount: number, options?: GrantOptions): Promise<Grant> {
    checkAccount(account)
    checkAmount(amount, 'amount', 1)
    const o = parse(grantOptionsSchema, options)
    const expiresAt = o.expiresAt ?? null
    if (expiresAt !== null && expiresAt <= this.#o.clock()) {
      throw new InvalidInputError('expiresAt', 'must be in the future')
    }
    const out = await this.#execute(
      account,
      {
        type: 'grant',
        amount,
        expiresAt,
        validityDays: o.validityDays ?? null,
        priority: o.priority ?? 50,
        category: o.category ?? 'paid',
        metadata: metadataOf(o.metadata),
        idempotencyKey: o.idempotencyKey,
      },
      o.timeoutMs,
    )
    return result<Grant>(out)
  }

  /**
   * Spends `amount` now, in burn order, all or nothing.
   * @throws InsufficientCreditsError when `available < amount`
   */
  async debit(account: string, amount: number, options?: MutationOptions): Promise<DebitResult> {
    checkAccount(account)
    checkAmount(amount)
    const o = options === undefined ? undefined : parse(debitOptionsSchema, options)
    const out = await this.#execute(
      account,
      {
        type: 'debit',
        amount,
        metadata: metadataOf(o?.metadata),
        idempotencyKey: o?.idempotencyKey,
      },
      o?.timeoutMs,
    )
    return result<DebitResult>(out)
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
    checkAccount(account)
    if (!Number.isSafeInteger(delta) || delta === 0) {
      throw new InvalidInputError('delta', 'must be a non-zero safe integer')
    }
    const o = parse(adjustOptionsSchema, options)
    const out = await this.#execute(
      account,
      {
        type: 'adjust',
        delta,
        reason: o.reason ?? 'adjustment',
        metadata: metadataOf(o.metadata),
        idempotencyKey: o.idempotencyKey,
      },
      o.timeoutMs,
    )
    return result<DebitResult>(out)
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
    checkAccount(account)
    checkAmount(amount)
    const o = parseReserveOptions(options)
    const ttlMs = o?.ttlMs ?? this.#o.defaultTtlMs
    const leases = this.#leases
    if (leases?.eligible(amount) && o?.idempotencyKey === undefined && o?.metadata === undefined) {
      this.#checkOpen()
      const now = leases.reserveNow(account, amount, ttlMs)
      if (now !== undefined) return new Hold(this, now.data, now.balance, false)
      return leases
        .reserve(account, amount, ttlMs)
        .then((leased) => new Hold(this, leased.data, leased.balance, false))
    }
    // A keyed reserve may be a replay (or a conflict): only the store knows.
    if (amount > 0 && o?.idempotencyKey === undefined) this.#refuseIfKnownShort(account, amount)
    const out = this.#execute(
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
    return new Hold(this, out.result as unknown as HoldData, out.balance!, out.replayed)
  }

  /**
   * The cached fast path: an account whose cached balance cannot cover `amount`, with nothing
   * held that could come back, is refused without a round trip. A figure is only ever used to refuse, never to grant credit; a grant,
   * release or redemption through any meter on this store clears it, else it lasts the cache TTL.
   */
  #refuseIfKnownShort(account: string, amount: number): void {
    const available = this.#cache?.settledAvailable(account)
    if (available !== undefined && available < amount) {
      throw new InsufficientCreditsError(account, amount, Math.max(0, available))
    }
  }

  /**
   * Settles a hold: spends `actual` (default: the held amount). Above the hold, the overage
   * policy decides; it never throws for insufficiency and reports `{ charged, shortfall }`.
   */
  async commit(holdId: string, actual?: number, options?: CommitOptions): Promise<CommitResult> {
    checkHoldId(holdId)
    if (actual !== undefined) checkAmount(actual, 'actual')
    const o = options === undefined ? undefined : parse(commitOptionsSchema, options)
    if (this.#leases?.owns(holdId)) {
      this.#checkOpen()
      if (o?.metadata !== undefined) throw leasedMetadata()
      if (o?.overage === 'overdraft') {
        throw new InvalidInputError('overage', "'overdraft' is not available on a leased hold")
      }
      return this.#leases.commit(holdId, actual, o?.overage, o?.idempotencyKey)
    }
    const out = await this.#execute(
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
    return result<CommitResult>(out)
  }

  /** Frees a whole hold. */
  async release(holdId: string, options?: MutationOptions): Promise<ReleaseResult> {
    checkHoldId(holdId)
    const o = options === undefined ? undefined : parse(releaseOptionsSchema, options)
    if (this.#leases?.owns(holdId)) {
      this.#checkOpen()
      if (o?.metadata !== undefined) throw leasedMetadata()
      return this.#leases.release(holdId, o?.idempotencyKey)
    }
    const out = await this.#execute(
      undefined,
      {
        type: 'release',
        holdId,
        metadata: metadataOf(o?.metadata),
        idempotencyKey: o?.idempotencyKey,
      },
      o?.timeoutMs,
    )
    return result<ReleaseResult>(out)
  }

  /** Moves a pending hold's expiry to `now + ttlMs` (1 s–24 h). */
  async extend(
    holdId: string,
    ttlMs: number,
    options?: { idempotencyKey?: string } & CallOptions,
  ): Promise<ExtendResult> {
    checkHoldId(holdId)
    parse(ttlSchema, ttlMs, 'ttlMs')
    const o = parse(extendOptionsSchema, options)
    if (this.#leases?.owns(holdId)) {
      this.#checkOpen()
      return this.#leases.extend(holdId, ttlMs)
    }
    const out = await this.#execute(
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

  /**
   * The account's balance: from the cache when this process saw it recently, else from the
   * store (which also applies any expiry that fell due). `{ fresh: true }` skips the cache.
   */
  async balance(account: string, options?: { fresh?: boolean } & CallOptions): Promise<Balance> {
    checkAccount(account)
    const o = options === undefined ? undefined : parse(balanceOptionsSchema, options)
    let balance: Balance | undefined
    if (this.#cache && o?.fresh !== true) balance = this.#cache.get(account)
    balance ??= (await this.#execute(account, { type: 'balance' }, o?.timeoutMs)).balance!
    // Credits this meter leased are counted as what they are: used, in local holds, or free.
    return this.#leases ? this.#leases.adjust(balance) : balance
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
    this.#checkOpen()
    await this.#whenMigrated()
    let before: number | null = null
    if (q.cursor !== undefined) {
      before = decodeCursor(q.cursor)
      if (before === null) throw new InvalidInputError('cursor', 'is not a ledger cursor')
    }
    try {
      return await this.#store.ledger(this.tenant, account, {
        limit: q.limit ?? 100,
        before,
        types: (q.types as LedgerEntryType[] | undefined) ?? null,
        from: q.from ?? null,
        to: q.to ?? null,
      })
    } catch (err) {
      throw storeFailure(err)
    }
  }

  /** Per-account settings; `null` returns a setting to the meter's default. */
  async configure(
    account: string,
    settings: { lowBalanceThreshold?: number | null; overdraftLimit?: number | null } & CallOptions,
  ): Promise<AccountSettings & { balance: Balance }> {
    checkAccount(account)
    const { timeoutMs, ...s } = parse(configureSchema, settings, 'settings')
    const out = await this.#execute(account, { type: 'configure', ...s }, timeoutMs)
    return result<AccountSettings & { balance: Balance }>(out)
  }

  /**
   * Grants `amount` at the start of every period, expiring at its end; unspent credits up to
   * `rollover.max` carry into the next period. Replaces an active cycle.
   */
  async startCycle(account: string, options: StartCycleOptions): Promise<CycleResult> {
    checkAccount(account)
    const o = parse(startCycleSchema, options)
    const out = await this.#execute(
      account,
      {
        type: 'startCycle',
        amount: o.amount,
        every: o.every,
        rolloverMax: o.rollover?.max ?? null,
        priority: o.priority ?? 50,
        category: o.category ?? 'paid',
        idempotencyKey: o.idempotencyKey,
      },
      o.timeoutMs,
    )
    return result<CycleResult>(out)
  }

  /** Stops future refills; the current period's credits stay until they expire. */
  async stopCycle(
    account: string,
    options?: { idempotencyKey?: string } & CallOptions,
  ): Promise<CycleResult> {
    checkAccount(account)
    const o = parse(stopCycleSchema, options)
    const out = await this.#execute(
      account,
      {
        type: 'stopCycle',
        idempotencyKey: o.idempotencyKey,
      },
      o.timeoutMs,
    )
    return result<CycleResult>(out)
  }

  /**
   * Creates redeem codes. The plaintext codes are returned once; only hashes are stored.
   * @example const { codes } = await meter.createCodes({ credits: 500, count: 10 })
   */
  async createCodes(options: CreateCodesOptions): Promise<CreateCodesResult> {
    const o = parse(createCodesSchema, options)
    this.#checkOpen()
    await this.#whenMigrated()
    const now = this.#o.clock()
    const codeExpiresAt = o.codeExpiresAt ?? null
    if (codeExpiresAt !== null && codeExpiresAt <= now) {
      throw new InvalidInputError('codeExpiresAt', 'must be in the future')
    }
    const prefix = o.prefix ?? 'TG'
    const batchId = newId('cdb', now)
    const codes: string[] = []
    const records: CodeRecord[] = []
    const seen = new Set<string>()
    while (codes.length < o.count) {
      const code = generateCode(prefix)
      if (seen.has(code)) continue
      seen.add(code)
      codes.push(code)
      records.push({
        hash: hashCode(code),
        batchId,
        credits: o.credits,
        validityDays: o.validityDays ?? null,
        codeExpiresAt,
        maxRedemptions: o.maxRedemptions ?? 1,
        redemptions: 0,
        priority: o.priority ?? 50,
        category: o.category ?? 'promotional',
        createdAt: now,
      })
    }
    const summary = { batchId, count: o.count, credits: o.credits, codeExpiresAt }
    const { idempotencyKey, ...input } = o
    let outcome: Awaited<ReturnType<Store['createCodes']>>
    try {
      outcome = await this.#store.createCodes(this.tenant, {
        batchId,
        codes: records,
        idempotency:
          idempotencyKey === undefined
            ? null
            : {
                key: idempotencyKey,
                fingerprint: JSON.stringify(['createCodes', input]),
                result: summary,
              },
        now,
      })
    } catch (err) {
      throw storeFailure(err)
    }
    if (outcome.status === 'conflict') throw new IdempotencyConflictError(idempotencyKey!)
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
    checkAccount(account)
    const canonical = canonicalCode(code)
    const o = parse(redeemOptionsSchema, options)
    const out = await this.#execute(
      account,
      {
        type: 'redeem',
        codeHash: hashCode(canonical),
        idempotencyKey: o.idempotencyKey,
      },
      o.timeoutMs,
    )
    const r = result<RedeemResult>(out)
    return { ...r, newBalance: r.balance.available }
  }

  /**
   * Applies everything due (hold TTLs, bucket expiry, cycle periods) on up to `limit`
   * accounts, and prunes idempotency keys and resolved holds past retention.
   */
  async sweep(options?: { limit?: number }): Promise<{ accounts: number; pruned: number }> {
    const limit = parse(sweepOptionsSchema, options).limit ?? 1_000
    this.#checkOpen()
    await this.#whenMigrated()
    const now = this.#o.clock()
    let due: string[]
    let pruned: number
    try {
      due = await this.#store.dueAccounts(this.tenant, now, limit)
      // A few at a time: a store that batches (group commit) then shares transactions.
      for (let i = 0; i < due.length; i += SWEEP_CONCURRENCY) {
        await Promise.all(
          due
            .slice(i, i + SWEEP_CONCURRENCY)
            .map((account) => this.#execute(account, { type: 'balance' })),
        )
      }
      pruned = await this.#store.prune(this.tenant, now - this.#o.retentionMs)
    } catch (err) {
      throw storeFailure(err)
    }
    return { accounts: due.length, pruned }
  }

  /**
   * Subscribes to an event; returns the unsubscribe function. `low`, `depleted` and
   * `recovered` fire once per crossing; `granted`, `committed`, `released`, `expired` per change.
   */
  on<K extends MeterEventName>(event: K, listener: Listener<K>): () => void {
    let set = this.#listeners.get(event)
    if (!set) {
      set = new Set()
      this.#listeners.set(event, set)
    }
    set.add(listener as (event: never) => void)
    return () => this.off(event, listener)
  }

  off<K extends MeterEventName>(event: K, listener: Listener<K>): void {
    const set = this.#listeners.get(event)
    if (!set) return
    set.delete(listener as (event: never) => void)
    if (set.size === 0) this.#listeners.delete(event)
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
      this.#closed = true
      this.#listeners.clear()
      if (this.#cache) {
        this.#cache.clear()
        this.#siblings.delete(this.#cache)
      }
      await this.#store.close()
    }
  }
}

/** The operation's result with `balance` and `replayed`; completed in place, it is ours. */
function result<T>(out: Outcome): T {
  const r = out.result as Record<string, unknown>
  r.balance = out.balance
  r.replayed = out.replayed
  return r as T
}

function leasedMetadata(): InvalidInputError {
  return new InvalidInputError(
    'metadata',
    'cannot be recorded on a hold served from a lease (its usage settles in one commit)',
  )
}

function storeFailure(err: unknown): unknown {
  return isTollgateError(err) ? err : new StoreUnavailableError('store failed', { cause: err })
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
