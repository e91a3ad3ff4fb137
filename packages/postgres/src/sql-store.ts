/**
 * The one SQL store behind `postgresStore()` and `pgliteStore()`: the Store contract over a
 * {@link SqlDriver}, with group commit in front of `execute`.
 *
 * Faults stay with the operation that caused them (DESIGN section 2):
 * - an operation the database refuses fails alone: its batch is split and the rest run again
 *   without it (a data error is `InvalidInputError`, anything else `StoreUnavailableError`);
 * - an operation has a deadline (`timeoutMs`): it is not started after it, its transaction runs
 *   under `lock_timeout`/`statement_timeout` and sends COMMIT only before it;
 * - a row locked elsewhere holds up only its own account's operations (see batch.ts);
 * - the queue is bounded: when it is full, an operation fails at once.
 * No database message reaches an error's text: the driver's error is its `cause`.
 */

import { createHash } from 'node:crypto'
import {
  type AccountsPage,
  InvalidInputError,
  isTollgateError,
  type LedgerPage,
  NotFoundError,
  type Store,
  StoreUnavailableError,
  type TenantSettings,
  type TollgateError,
  type UsagePeriod,
  type UsageReport,
  type UsageRequest,
} from '@tollgate/core'
import {
  codeBatchRecord,
  decideCodeBatch,
  emptyUsagePeriods,
  entryEvent,
  MAX_USAGE_GROUPS,
  usageReportFrom,
  usageWindow,
} from '@tollgate/core/engine'
import {
  type AccountsRequest,
  type CodeBatch,
  type CodeBatchOutcome,
  checkInt,
  type EventsRequest,
  type ExecuteRequest,
  encodeCursor,
  errorOutcome,
  eventId,
  type KeyRegistry,
  type LedgerRequest,
  type Outcome,
  type StoredEvent,
  type StoredEventType,
  type StoreObserver,
  type WatchListener,
  type WatchSubscription,
  type WebhookRegistry,
} from '@tollgate/core/store'
import {
  type AccountRow,
  type AccountsStatements,
  accountsPage,
  accountsQuery,
  accountsStatements,
} from './accounts-sql.js'
import { type BatchItem, type BatchResult, FailedOperationError, runBatch } from './batch.js'
import { ChangeFeed, channelOf } from './change-feed.js'
import {
  isDataError,
  isOperationError,
  isRetryable,
  isTimeout,
  type SqlClient,
  type SqlDriver,
  type Statement,
  sqlState,
} from './driver.js'
import { emptyStats, GroupCommit, type StoreStats, sizeRange } from './group-commit.js'
import { HoldAccounts } from './hold-accounts.js'
import { sqlKeyRegistry } from './key-registry.js'
import { type MigrationStatements, migrate, migrationStatements } from './migrations.js'
import { Notifier } from './notifier.js'
import type { ResolvedSqlStoreOptions } from './options.js'
import { entryFrom, type LedgerRow, tenantSettingsFrom } from './rows.js'
import { buildStatements, GUARD_UNIT, type Statements } from './statements.js'
import { sqlTenantList } from './tenant-list.js'
import { sqlWebhookRegistry } from './webhook-registry.js'

/** A Tollgate store on PostgreSQL or PGlite, as both factories return it. */
export interface PostgresStore extends Store {
  /** `'postgres'` or `'pglite'`. */
  readonly kind: string
  /**
   * Creates the schema or brings it up to date: versioned migrations, recorded in
   * `<schema>.schema_migrations`, applied under an advisory lock so that processes starting
   * together are safe. Idempotent and cheap once up to date. `createMeter` calls it before the
   * first operation unless `migrate: false`.
   */
  migrate(): Promise<void>
  /** The outbox (docs/store.md, "Outbox and change feed"): always present on SQL stores. */
  events(request: EventsRequest): Promise<StoredEvent[]>
  /** The change feed over LISTEN/NOTIFY: always present on SQL stores. */
  watch(listener: WatchListener): Promise<WatchSubscription>
  /** The webhooks of a Tollgate server on this store (migration 5; see docs/webhooks.md). */
  readonly webhooks: WebhookRegistry
  /** Group-commit counters and the batch-size histogram (a snapshot). */
  stats(): StoreStats
  /** Zeroes the counters (the histogram included). */
  resetStats(): void
  /**
   * Reports each committed batch to `observer` (its size and duration), for a metrics
   * exporter; returns the function that stops it. Costs one call per batch, no allocation.
   * @example const stop = store.observe({ batchCommitted: (size) => sizes.observe(size) })
   */
  observe(observer: StoreObserver): () => void
}

/** Rows per prune statement, and statements per table per `prune()` call. */
const PRUNE_BATCH = 1_000
const PRUNE_ROUNDS = 20
/** A JS string PostgreSQL text cannot hold: NUL, or a lone surrogate (not UTF-8). */
const NOT_TEXT = /\0|\p{Cs}/u
/**
 * The least time a code batch's transaction gets: a batch holds up to 100,000 codes, which
 * takes seconds to insert.
 */
const CODES_TIMEOUT_MS = 30_000
/** The longest deadline an operation may have (the meter's limit for `timeoutMs`). */
const MAX_TIMEOUT_MS = 3_600_000
/** The Retry-After hint of a saturated or slow store. */
const RETRY_AFTER_MS = 1_000
/** How deep {@link badTextField} looks into an operation (metadata is nested). */
const FIELD_SEARCH_DEPTH = 6

/** The batch's earliest deadline passed before COMMIT: it rolls back instead. */
class DeadlinePassedError extends Error {
  constructor() {
    super('an operation of the batch reached its deadline before COMMIT')
    this.name = 'DeadlinePassedError'
  }
}

/** The settings of one store instance. */
export interface SqlStoreSettings {
  kind: 'postgres' | 'pglite'
  driver: SqlDriver
  options: ResolvedSqlStoreOptions
  /** maxInFlight when the caller gave none. */
  defaultMaxInFlight: number
  /**
   * Whether other connections can hold the store's row locks (PostgreSQL): shared batches then
   * skip locked rows. PGlite's one connection never finds a row locked by another.
   */
  sharedDatabase: boolean
}

/** What one transaction of a batch did. */
type Attempt = { ok: true; done: BatchResult } | { ok: false; err: unknown }

/** Errors the database (or the connection to it) raised during a batch. */
const DATABASE_ERRORS = new WeakSet<object>()

/** The client, with every failure it raises marked as the database's. */
function watched(tx: SqlClient): SqlClient {
  const mark = (err: unknown): never => {
    if (typeof err === 'object' && err !== null) DATABASE_ERRORS.add(err)
    throw err
  }
  return {
    query: <R>(st: Statement, params: readonly unknown[]) => tx.query<R>(st, params).catch(mark),
    script: (sql) => tx.script(sql).catch(mark),
  }
}

/** The batch's own code threw (not the database, not the engine on a known operation). */
class BatchCodeError extends Error {
  constructor(cause: unknown) {
    super('the batch could not be prepared', { cause })
    this.name = 'BatchCodeError'
  }
}

export class SqlStore implements PostgresStore {
  readonly kind: 'postgres' | 'pglite'
  readonly #driver: SqlDriver
  readonly #o: ResolvedSqlStoreOptions
  readonly #st: Statements
  /** The accounts listing's statements (`accounts()`), one per sort and order. */
  readonly #accountsSt: AccountsStatements
  readonly #mst: MigrationStatements
  readonly #queue: GroupCommit
  readonly #holds: HoldAccounts
  readonly #skipLocked: boolean
  #stats = emptyStats()
  /** Replaced, never mutated, on observe/stop: the hot path loops over a stable array. */
  #observers: readonly StoreObserver[] = []
  /** Operations failed at their deadline while their batch's transaction was still open. */
  readonly #answered = new WeakSet<BatchItem>()
  #migrated = false
  #migration: Promise<void> | null = null
  #closing: Promise<void> | null = null
  readonly keys: KeyRegistry
  readonly webhooks: WebhookRegistry
  readonly #tenantList: (after: string | null, limit: number) => Promise<string[]>
  readonly #feed: ChangeFeed
  /** Sends committed batches' change notifications; null with `notify: false`. */
  readonly #notifier: Notifier | null

  constructor(settings: SqlStoreSettings) {
    this.kind = settings.kind
    this.#driver = settings.driver
    this.#o = settings.options
    const channel = channelOf(this.#o.schema)
    this.#st = buildStatements(
      this.#o.quotedSchema,
      settings.sharedDatabase ? guardClassOf(this.#o.schema) : null,
      this.#o.notify ? channel : null,
    )
    this.#accountsSt = accountsStatements(this.#o.quotedSchema)
    this.#feed = new ChangeFeed(channel, this.#driver.listen.bind(this.#driver))
    const notify = this.#st.notify
    this.#notifier = this.#o.notify
      ? new Notifier((payloads) =>
          this.#driver.query(notify, [channel, payloads], { timeoutMs: this.#o.timeoutMs }),
        )
      : null
    this.#mst = migrationStatements(this.#o.schema, this.#o.quotedSchema)
    this.#holds = new HoldAccounts(this.#o.holdCacheSize)
    this.#tenantList = sqlTenantList(this.#driver, this.#o.quotedSchema)
    this.#skipLocked = settings.sharedDatabase
    // Key lookups get the same deadline and errors as the other reads: a key that cannot be
    // checked because the database is down or frozen is a 503, never a hang or a 500.
    const keysClient: SqlClient = {
      query: (st, params) => this.#read(st, params),
      script: (sql) => this.#driver.script(sql),
    }
    this.keys = sqlKeyRegistry(keysClient, this.#o.quotedSchema, () => {
      this.#checkOpen()
      return this.migrate()
    })
    this.webhooks = sqlWebhookRegistry(
      {
        ...keysClient,
        transaction: (fn) => this.#driver.transaction(fn, { timeoutMs: this.#o.timeoutMs }),
      },
      this.#o.quotedSchema,
      () => {
        this.#checkOpen()
        return this.migrate()
      },
    )
    const maxInFlight = this.#o.maxInFlight ?? settings.defaultMaxInFlight
    this.#queue = new GroupCommit(
      {
        enabled: this.#o.groupCommit,
        maxBatch: this.#o.maxBatch,
        maxWaitMs: this.#o.maxWaitMs,
        maxInFlight,
        maxQueue: this.#o.maxQueue,
        // The connections batches leave free, but one (ledger reads, codes, sweeps).
        maxLanes: Math.max(1, this.#driver.concurrency - maxInFlight - 1),
      },
      (items, wait) => this.#runBatch(items, wait),
      (item) => this.#expire(item),
    )
  }

  // ---------------------------------------------------------------- execute

  execute(req: ExecuteRequest): Outcome | Promise<Outcome> {
    if (this.#closing) return Promise.reject(new StoreUnavailableError('store is closed'))
    const { op } = req
    let holdAccount: string | undefined
    if (req.account === undefined) {
      const holdId = (op as { holdId: string }).holdId
      // No hold has such an id, and PostgreSQL could not even compare it: answer at once.
      if (NOT_TEXT.test(holdId)) {
        return errorOutcome(new NotFoundError('hold', holdId))
      }
      holdAccount = this.#holds.get(req.tenant, holdId)
    }
    if (op.idempotencyKey !== undefined && NOT_TEXT.test(op.idempotencyKey)) {
      // Refused before it can fail (or, for lone surrogates, be silently altered) in a batch.
      return errorOutcome(
        new InvalidInputError('idempotencyKey', 'must be text without NUL or lone surrogates'),
      )
    }
    const account = req.account ?? holdAccount
    const t = req.timeoutMs
    // A deadline past an hour is an hour: the database's timeouts take a bounded integer.
    const deadline =
      performance.now() +
      (t === undefined || Number.isNaN(t) ? this.#o.timeoutMs : Math.min(t, MAX_TIMEOUT_MS))
    return new Promise<Outcome>((resolve, reject) => {
      const queued = this.#queue.submit({
        req,
        holdAccount,
        accountKey: account === undefined ? null : `${req.tenant}\u0000${account}`,
        deadline,
        resolve,
        reject,
      })
      if (!queued) {
        this.#stats.shed++
        reject(
          new StoreUnavailableError(`${this.kind} store is saturated: too many operations queued`, {
            retryAfterMs: RETRY_AFTER_MS,
          }),
        )
      }
    })
  }

  /** An operation whose deadline passed before it could run or commit: not applied. */
  #expire(item: BatchItem): void {
    if (this.#answered.has(item)) return
    this.#answered.add(item)
    this.#stats.expired++
    item.reject(
      new StoreUnavailableError(
        `${this.kind} store did not run the operation within its deadline`,
        {
          retryAfterMs: RETRY_AFTER_MS,
        },
      ),
    )
  }

  /**
   * Runs a batch; resolves or rejects every item itself, except those it returns (contended:
   * their account's row is locked elsewhere; only when `wait` is false). Never rejects.
   *
   * A batch that fails is not failed whole: parts of it run again, in order, so that per
   * account the operations keep their arrival order.
   * - lost race (unique violation, deadlock): again, whole, up to maxRetries;
   * - the engine threw on one operation: that one fails, the rest run again;
   * - the database refused a value (data exception, constraint, size limit): split in halves
   *   until the operation is alone, and it fails alone;
   * - timeout (lock, statement, deadline before COMMIT, no answer): the operations whose
   *   deadline passed fail, the rest run again (the transaction's timeout is the earliest
   *   deadline, so each round ends at least one);
   * - anything else (connection lost, database down): every operation fails.
   */
  async #runBatch(items: BatchItem[], wait: boolean): Promise<BatchItem[]> {
    const contended: BatchItem[] = []
    const work: BatchItem[][] = [items]
    const started = performance.now()
    let retries = 0
    while (work.length > 0) {
      const ran = this.#live(work.shift()!)
      if (ran.length === 0) continue
      const attempt = await this.#attempt(ran, wait)
      if (attempt.ok) {
        this.#committed(ran, attempt.done, contended, started)
        continue
      }
      const { err } = attempt
      // The engine's culprit, by its place in the batch that ran.
      const culprit = err instanceof FailedOperationError ? ran[err.index] : undefined
      // Those answered at their deadline meanwhile are done with.
      const batch = ran.filter((item) => !this.#answered.has(item))
      if (batch.length === 0) continue
      const stats = this.#stats
      if (isRetryable(err) && retries < this.#o.maxRetries) {
        retries++
        stats.retries++
        // A short, growing, jittered pause lets the winner of the race commit first.
        await sleep(Math.random() * 2 * retries)
        work.unshift(batch)
      } else if (culprit !== undefined) {
        if (!this.#answered.has(culprit)) {
          this.#failAlone(
            culprit,
            new StoreUnavailableError(`${this.kind} store could not run the operation`, {
              cause: (err as Error).cause,
            }),
          )
        }
        work.unshift(batch.filter((item) => item !== culprit))
      } else if (isOperationError(err) || err instanceof BatchCodeError) {
        if (batch.length === 1) {
          this.#failAlone(batch[0]!, this.#refused(batch[0]!, err))
        } else {
          stats.splits++
          const half = Math.ceil(batch.length / 2)
          work.unshift(batch.slice(0, half), batch.slice(half))
        }
      } else if (isTimeout(err) || err instanceof DeadlinePassedError) {
        const now = performance.now()
        if (batch.some((item) => item.deadline <= now) || retries++ < this.#o.maxRetries) {
          // #live fails the expired ones when the batch comes round again.
          work.unshift(batch)
        } else {
          this.#failAll(batch, err)
        }
      } else {
        this.#failAll(batch, err)
      }
    }
    return contended
  }

  /** The items still awaited; those whose deadline passed fail here, unstarted. */
  #live(batch: BatchItem[]): BatchItem[] {
    const now = performance.now()
    if (!batch.some((item) => item.deadline <= now)) return batch
    const live: BatchItem[] = []
    for (const item of batch) {
      if (item.deadline <= now) this.#expire(item)
      else live.push(item)
    }
    return live
  }

  /**
   * One transaction of the batch. Its timeout is the time left to the earliest deadline, and
   * it commits only if no deadline passed meanwhile.
   */
  async #attempt(batch: BatchItem[], wait: boolean): Promise<Attempt> {
    let deadline = Number.POSITIVE_INFINITY
    for (const item of batch) if (item.deadline < deadline) deadline = item.deadline
    /** The batch's code finished in time: COMMIT is being sent, and must be waited for. */
    let committing = false
    // At the earliest deadline, a transaction that has not reached COMMIT never will (the
    // check below refuses), so the operations whose deadline passed are answered then, not when
    // the database gets round to failing the statement in flight (or, frozen, never does).
    // Each operation is answered at its own deadline: the timer moves on to the next one.
    let timer: NodeJS.Timeout | undefined
    const arm = (at: number) => {
      timer = setTimeout(atDeadline, Math.max(0, at - performance.now()))
      // The transaction in flight keeps the process alive; this timer need not.
      timer.unref()
    }
    const atDeadline = () => {
      if (committing) return
      const now = performance.now()
      let next = Number.POSITIVE_INFINITY
      for (const item of batch) {
        if (item.deadline <= now) this.#expire(item)
        else if (item.deadline < next) next = item.deadline
      }
      if (next !== Number.POSITIVE_INFINITY) arm(next)
    }
    arm(deadline)
    try {
      const done = await this.#driver.transaction(
        async (tx) => {
          let done: BatchResult
          try {
            done = await runBatch(watched(tx), this.#st, batch, !wait && this.#skipLocked)
          } catch (err) {
            // Thrown by our own code, not the database: one operation's values may have caused
            // it (a value JSON cannot hold), so it is searched for like a refused one.
            if (DATABASE_ERRORS.has(err as object) || err instanceof FailedOperationError) throw err
            throw new BatchCodeError(err)
          }
          // Sent only while every operation that ran is still awaited: a client that was
          // answered (or gave up) never finds its operation applied afterwards.
          if (performance.now() >= deadline) throw new DeadlinePassedError()
          committing = true
          return done
        },
        { timeoutMs: deadline - performance.now() },
      )
      return { ok: true, done }
    } catch (err) {
      return { ok: false, err }
    } finally {
      clearTimeout(timer)
    }
  }

  #committed(batch: BatchItem[], done: BatchResult, contended: BatchItem[], started: number): void {
    // Read after the await: resetStats() may have replaced the object meanwhile.
    const stats = this.#stats
    const n = batch.length - done.contended.length
    if (n > 0) {
      stats.batches++
      stats.operations += n
      if (n > stats.largestBatch) stats.largestBatch = n
      const range = sizeRange(n)
      stats.batchSizes[range] = (stats.batchSizes[range] ?? 0) + 1
      const observers = this.#observers
      if (observers.length > 0) {
        const seconds = (performance.now() - started) / 1_000
        for (let i = 0; i < observers.length; i++) observers[i]!.batchCommitted?.(n, seconds)
      }
    }
    // Committed: only now may watchers hear of it (a rolled-back batch never gets here).
    if (done.changes !== null) this.#notifier?.add(done.changes.seq, done.changes.accounts)
    for (const [tenant, id, account, pending] of done.holds) {
      if (pending) this.#holds.set(tenant, id, account)
      else this.#holds.delete(tenant, id)
    }
    for (const { index, accountKey } of done.contended) {
      stats.contended++
      contended.push({ ...batch[index]!, accountKey })
    }
    for (let i = 0; i < batch.length; i++) {
      const outcome = done.outcomes[i]
      if (outcome !== undefined) batch[i]!.resolve(outcome)
    }
  }

  #failAlone(item: BatchItem, err: unknown): void {
    this.#stats.isolated++
    this.#stats.failedOperations++
    item.reject(err)
  }

  #failAll(batch: BatchItem[], err: unknown): void {
    const stats = this.#stats
    stats.failedBatches++
    stats.failedOperations += batch.length
    const failure = isTollgateError(err)
      ? err
      : new StoreUnavailableError(`${this.kind} store unavailable`, {
          cause: err,
          retryAfterMs: RETRY_AFTER_MS,
        })
    for (const item of batch) item.reject(failure)
  }

  /** The error of an operation the database refused on its own. */
  #refused(item: BatchItem, err: unknown): TollgateError {
    if (isDataError(err)) {
      const { tenant, account, op } = item.req
      const field =
        badTextField(tenant) !== undefined
          ? 'tenant'
          : badTextField(account) !== undefined
            ? 'account'
            : badTextField(op)
      return new InvalidInputError(
        field ?? 'operation',
        'holds a value the database cannot store (text must not contain NUL or lone surrogates)',
        { cause: err },
      )
    }
    return new StoreUnavailableError(
      `${this.kind} store refused the operation (SQLSTATE ${sqlState(err) ?? 'unknown'})`,
      { cause: err },
    )
  }

  // ---------------------------------------------------------------- reads and housekeeping

  /**
   * One statement outside a batch, within the store's timeout, its failure a typed error
   * without the database's words.
   */
  async #read<R>(st: Statement, params: readonly unknown[]): Promise<R[]> {
    try {
      return await this.#driver.query<R>(st, params, { timeoutMs: this.#o.timeoutMs })
    } catch (err) {
      if (isTollgateError(err)) throw err
      if (isDataError(err)) {
        throw new InvalidInputError(
          'request',
          'holds text the database cannot read (NUL or lone surrogates)',
          { cause: err },
        )
      }
      throw new StoreUnavailableError(`${this.kind} store unavailable`, {
        cause: err,
        retryAfterMs: RETRY_AFTER_MS,
      })
    }
  }

  async ledger(tenant: string, account: string, req: LedgerRequest): Promise<LedgerPage> {
    this.#checkOpen()
    const rows = await this.#read<LedgerRow>(this.#st.ledger, [
      tenant,
      account,
      req.before,
      req.types,
      req.from,
      req.to,
      req.limit + 1,
    ])
    const more = rows.length > req.limit
    if (more) rows.length = req.limit
    return {
      entries: rows.map((row) => entryFrom(account, row)),
      nextCursor: more ? encodeCursor(Number(rows[rows.length - 1]!.seq)) : null,
    }
  }

  /** See `Store.accounts`: one statement (accounts-sql.ts). */
  async accounts(tenant: string, req: AccountsRequest): Promise<AccountsPage> {
    this.#checkOpen()
    checkInt(req.limit, 'limit', 1, 1000)
    const { st, params, order } = accountsQuery(this.#accountsSt, tenant, req)
    return accountsPage(await this.#read<AccountRow>(st, params), req, order)
  }

  /**
   * Usage from the hourly rollups (usage-sql.ts): one statement sums the window's hours into
   * its periods, and with `groupBy` ranks the key's values there, so the answer's size is bound
   * by the periods and {@link MAX_USAGE_GROUPS}, not by the ledger.
   */
  async usage(tenant: string, request: UsageRequest): Promise<UsageReport> {
    this.#checkOpen()
    const window = usageWindow(request)
    const rows = await this.#read<UsageReadRow>(this.#st.usage, [
      tenant,
      window.account ?? '',
      window.groupBy,
      window.starts,
      window.from,
      window.to,
      MAX_USAGE_GROUPS,
    ])
    const periods = emptyUsagePeriods(window)
    const values = new Map<string, UsagePeriod[]>()
    let other: { count: number; periods: UsagePeriod[] } | null = null
    for (const row of rows) {
      let target = periods
      if (Number(row.kind) === 1) {
        if (row.value === null) {
          other ??= { count: Number(row.others), periods: emptyUsagePeriods(window) }
          target = other.periods
        } else {
          target = values.get(row.value) ?? emptyUsagePeriods(window)
          values.set(row.value, target)
        }
      }
      // width_bucket counts from 1.
      const p = target[Number(row.p) - 1]!
      p.granted += Number(row.granted)
      p.spent += Number(row.spent)
      p.released += Number(row.released)
      p.expired += Number(row.expired)
    }
    return usageReportFrom(window, periods, values, other)
  }

  /**
   * The outbox: ledger entries and alerts with `seq > after`, oldest first. On PostgreSQL the
   * read stops below the lowest sequence number a batch still in flight may commit (its guard,
   * see statements.ts), so a reader that resumes from the last `seq` it saw never skips one.
   */
  async events(req: EventsRequest): Promise<StoredEvent[]> {
    this.#checkOpen()
    const after = checkInt(req.after, 'after')
    const limit = checkInt(req.limit, 'limit', 1, 1000)
    const st = this.#st
    let bound = Number.MAX_SAFE_INTEGER
    if (st.guardClass !== null) {
      // In this order: the sequence first, then the guards. A batch not yet guarded when the
      // guards are read takes its numbers after the sequence was read, so above `bound`.
      const [last] = await this.#read<{ last_value: unknown }>(st.lastSeq, [])
      const [held] = await this.#read<{ key: unknown }>(st.inFlightBound, [st.guardClass])
      bound = Number(last?.last_value ?? 0)
      if (held && held.key !== null) bound = Math.min(bound, Number(held.key) * GUARD_UNIT)
    }
    if (bound <= after) return []
    const rows = await this.#read<EventRow>(
      req.tenant === null ? st.eventsOfAll : st.eventsOfTenant,
      [req.tenant, after, bound, limit],
    )
    return rows.map((row) => {
      const seq = Number(row.seq)
      const draft =
        row.data !== null
          ? { type: row.type as StoredEventType, at: Number(row.at), data: row.data }
          : entryEvent(entryFrom(row.account, row))
      return {
        seq,
        id: eventId(seq),
        tenant: row.tenant,
        account: row.account,
        type: draft.type,
        at: draft.at,
        data: draft.data,
      }
    })
  }

  /** The change feed: notifications of batches committed by any process on this schema. */
  async watch(listener: WatchListener): Promise<WatchSubscription> {
    this.#checkOpen()
    return this.#feed.watch(listener)
  }

  async createCodes(tenant: string, batch: CodeBatch): Promise<CodeBatchOutcome> {
    this.#checkOpen()
    const st = this.#st
    const key = batch.idempotency
    if (key && NOT_TEXT.test(key.key)) {
      throw new InvalidInputError('idempotencyKey', 'must be text without NUL or lone surrogates')
    }
    try {
      return await this.#driver.transaction(
        async (tx) => {
          if (key) {
            const record = codeBatchRecord(key, batch.now)
            for (let attempt = 0; ; attempt++) {
              // Insert first, decide on a conflict: the unique key serialises concurrent batches.
              const saved = await tx.query(st.saveCodesKey, [
                tenant,
                record.key,
                record.account,
                record.fingerprint,
                JSON.stringify(record.result),
                record.createdAt,
              ])
              if (saved.length > 0) break
              // The key was used before (or is being, by a transaction we just waited for).
              const [row] = await tx.query<{
                account: string
                fingerprint: string
                result: unknown
              }>(st.readKey, [tenant, key.key])
              const decided = decideCodeBatch(row ?? null, key, batch.now)
              if (decided.status !== 'created') return decided
              // No record after all: pruned between the two statements. Once more, then give up.
              if (attempt > 0) throw new StoreUnavailableError('idempotency record kept changing')
            }
          }
          const c = batch.codes
          await tx.query(st.insertCodes, [
            tenant,
            c.map((r) => r.hash),
            c.map((r) => r.batchId),
            c.map((r) => r.credits),
            c.map((r) => r.validityDays),
            c.map((r) => r.codeExpiresAt),
            c.map((r) => r.maxRedemptions),
            c.map((r) => r.redemptions),
            c.map((r) => r.priority),
            c.map((r) => r.category),
            c.map((r) => r.createdAt),
          ])
          return { status: 'created' }
        },
        { timeoutMs: Math.max(this.#o.timeoutMs, CODES_TIMEOUT_MS) },
      )
    } catch (err) {
      if (isTollgateError(err)) throw err
      if (isDataError(err)) {
        throw new InvalidInputError(
          badTextField(batch) ?? 'codes',
          'holds a value the database cannot store (text must not contain NUL or lone surrogates)',
          { cause: err },
        )
      }
      throw new StoreUnavailableError(`${this.kind} store unavailable`, {
        cause: err,
        retryAfterMs: RETRY_AFTER_MS,
      })
    }
  }

  async dueAccounts(tenant: string, now: number, limit: number): Promise<string[]> {
    this.#checkOpen()
    const rows = await this.#read<{ account: string }>(this.#st.dueAccounts, [
      tenant,
      now,
      limit,
      this.#o.sweepLeaseMs,
    ])
    return rows.map((r) => r.account)
  }

  async prune(tenant: string, before: number): Promise<number> {
    this.#checkOpen()
    let total = 0
    // Bounded statements (short transactions, short locks); what is left waits for the next call.
    for (const st of [this.#st.pruneKeys, this.#st.pruneHolds, this.#st.pruneRedeemFailures]) {
      for (let round = 0; round < PRUNE_ROUNDS; round++) {
        const [row] = await this.#read<{ n: number | string }>(st, [tenant, before, PRUNE_BATCH])
        const n = Number(row?.n ?? 0)
        total += n
        if (n < PRUNE_BATCH) break
      }
    }
    return total
  }

  /** See `Store.noteRedeemFailure`: one statement under the read deadline. */
  async noteRedeemFailure(tenant: string, account: string, windowStart: number): Promise<number> {
    this.#checkOpen()
    const [row] = await this.#read<{ n: number | string }>(this.#st.noteRedeemFailure, [
      tenant,
      windowStart,
      account,
    ])
    const n = Number(row?.n ?? 0)
    if (n === 1) {
      // The tenant's first failure of a new window: older windows are of no use any more. Bounded
      // (one statement of PRUNE_BATCH rows); what is left goes with the next window or prune().
      await this.#read(this.#st.pruneRedeemFailures, [tenant, windowStart, PRUNE_BATCH])
    }
    return n
  }

  /** See `Store.tenantSettings`. */
  async tenantSettings(tenant: string): Promise<TenantSettings> {
    this.#checkOpen()
    const [row] = await this.#read<{ low_balance_threshold: unknown; overdraft_limit: unknown }>(
      this.#st.tenantSettings,
      [tenant],
    )
    return tenantSettingsFrom(row?.low_balance_threshold, row?.overdraft_limit)
  }

  /** See `Store.putTenantSettings`: one upsert, so concurrent writers of other fields both land. */
  async putTenantSettings(tenant: string, patch: Partial<TenantSettings>): Promise<TenantSettings> {
    this.#checkOpen()
    const [row] = await this.#read<{ low_balance_threshold: unknown; overdraft_limit: unknown }>(
      this.#st.putTenantSettings,
      [
        tenant,
        patch.lowBalanceThreshold ?? null,
        patch.overdraftLimit ?? null,
        patch.lowBalanceThreshold !== undefined,
        patch.overdraftLimit !== undefined,
        Date.now(),
      ],
    )
    return tenantSettingsFrom(row?.low_balance_threshold, row?.overdraft_limit)
  }

  /** Tenants that hold accounts, for a sweeper (see `Store.tenants`). */
  tenants(after: string | null, limit: number): Promise<string[]> {
    this.#checkOpen()
    return this.#tenantList(after, limit)
  }

  // ---------------------------------------------------------------- lifecycle

  migrate(): Promise<void> {
    if (this.#closing) return Promise.reject(new StoreUnavailableError('store is closed'))
    if (this.#migrated) return Promise.resolve()
    this.#migration ??= migrate(this.#driver, this.#mst).then(
      () => {
        this.#migrated = true
        this.#migration = null
      },
      (err: unknown) => {
        // Dropped so that the next call tries again.
        this.#migration = null
        throw err
      },
    )
    return this.#migration
  }

  stats(): StoreStats {
    const s = this.#stats
    return {
      ...s,
      batchSizes: { ...s.batchSizes },
      inFlight: this.#queue.inFlight,
      peakInFlight: this.#queue.peakInFlight,
      queued: this.#queue.queued,
    }
  }

  observe(observer: StoreObserver): () => void {
    this.#observers = [...this.#observers, observer]
    return () => {
      this.#observers = this.#observers.filter((o) => o !== observer)
    }
  }

  resetStats(): void {
    this.#stats = emptyStats()
    this.#queue.resetPeak()
  }

  /** Lets queued and flying operations finish, then releases the connections it opened. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#queue.drain()
      // The last batches' notices go out before the connections close.
      await this.#notifier?.flush()
      this.#holds.clear()
      await this.#feed.close()
      await this.#driver.close()
    })()
    return this.#closing
  }

  #checkOpen(): void {
    if (this.#closing) throw new StoreUnavailableError('store is closed')
  }
}

/**
 * The path of the first string in `value` (keys included) that PostgreSQL text cannot hold, to
 * name the field of an operation the database refused; undefined when there is none.
 */
export function badTextField(value: unknown, path = '', depth = 0): string | undefined {
  if (typeof value === 'string') return NOT_TEXT.test(value) ? path || 'value' : undefined
  if (typeof value !== 'object' || value === null || depth >= FIELD_SEARCH_DEPTH) return undefined
  for (const [key, v] of Object.entries(value)) {
    const at = path === '' ? key : `${path}.${key}`
    if (NOT_TEXT.test(key)) return at
    const found = badTextField(v, at, depth + 1)
    if (found !== undefined) return found
  }
  return undefined
}

/** An outbox row: a ledger entry, or an alert (then `data` is set and the figures are null). */
interface EventRow extends LedgerRow {
  tenant: string
  account: string
  data: Record<string, unknown> | null
}

/** The first key of a schema's in-flight guard: 31 bits, the same in every process. */
export function guardClassOf(schema: string): number {
  return createHash('sha256').update(`tollgate.guard:${schema}`).digest().readUInt32BE(0) >>> 1
}

/** Not unref()ed: operations wait on it, and PGlite holds no handle that keeps the process up. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * A row of the usage read (usage-sql.ts); int8 and numeric columns may come back as strings
 * (a tenant's figures past 2^53 come back as the nearest number).
 */
interface UsageReadRow {
  kind: number | string
  value: string | null
  p: number | string
  granted: number | string
  spent: number | string
  released: number | string
  expired: number | string
  others: number | string
}
