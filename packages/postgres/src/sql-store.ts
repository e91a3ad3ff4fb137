/**
 * The one SQL store behind `postgresStore()` and `pgliteStore()`: the Store contract over a
 * {@link SqlDriver}, with group commit in front of `execute`.
 */

import {
  InvalidInputError,
  isTollgateError,
  type LedgerPage,
  NotFoundError,
  type Store,
  StoreUnavailableError,
} from '@tollgate/core'
import { codeBatchRecord, decideCodeBatch } from '@tollgate/core/engine'
import {
  type CodeBatch,
  type CodeBatchOutcome,
  type ExecuteRequest,
  encodeCursor,
  errorOutcome,
  type KeyRegistry,
  type LedgerRequest,
  type Outcome,
} from '@tollgate/core/store'
import { type BatchItem, runBatch } from './batch.js'
import { isRetryable, type SqlDriver } from './driver.js'
import { emptyStats, GroupCommit, type StoreStats, sizeRange } from './group-commit.js'
import { HoldAccounts } from './hold-accounts.js'
import { sqlKeyRegistry } from './key-registry.js'
import { type MigrationStatements, migrate, migrationStatements } from './migrations.js'
import type { ResolvedSqlStoreOptions } from './options.js'
import { entryFrom, type LedgerRow } from './rows.js'
import { buildStatements, type Statements } from './statements.js'
import { sqlTenantList } from './tenant-list.js'

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
  /** Group-commit counters and the batch-size histogram (a snapshot). */
  stats(): StoreStats
  /** Zeroes the counters (the histogram included). */
  resetStats(): void
}

/** Rows per prune statement, and statements per table per `prune()` call. */
const PRUNE_BATCH = 1_000
const PRUNE_ROUNDS = 20
/** A JS string PostgreSQL text cannot hold: NUL, or a lone surrogate (not UTF-8). */
const NOT_TEXT = /\0|\p{Cs}/u

/** The settings of one store instance. */
export interface SqlStoreSettings {
  kind: 'postgres' | 'pglite'
  driver: SqlDriver
  options: ResolvedSqlStoreOptions
  /** maxInFlight when the caller gave none. */
  defaultMaxInFlight: number
}

export class SqlStore implements PostgresStore {
  readonly kind: 'postgres' | 'pglite'
  readonly #driver: SqlDriver
  readonly #o: ResolvedSqlStoreOptions
  readonly #st: Statements
  readonly #mst: MigrationStatements
  readonly #queue: GroupCommit
  readonly #holds: HoldAccounts
  #stats = emptyStats()
  #migrated = false
  #migration: Promise<void> | null = null
  #closing: Promise<void> | null = null
  readonly keys: KeyRegistry
  readonly #tenantList: (after: string | null, limit: number) => Promise<string[]>

  constructor(settings: SqlStoreSettings) {
    this.kind = settings.kind
    this.#driver = settings.driver
    this.#o = settings.options
    this.#st = buildStatements(this.#o.quotedSchema)
    this.#mst = migrationStatements(this.#o.schema, this.#o.quotedSchema)
    this.#holds = new HoldAccounts(this.#o.holdCacheSize)
    this.#tenantList = sqlTenantList(this.#driver, this.#o.quotedSchema)
    this.keys = sqlKeyRegistry(this.#driver, this.#o.quotedSchema, () => {
      this.#checkOpen()
      return this.migrate()
    })
    this.#queue = new GroupCommit(
      {
        enabled: this.#o.groupCommit,
        maxBatch: this.#o.maxBatch,
        maxWaitMs: this.#o.maxWaitMs,
        maxInFlight: this.#o.maxInFlight ?? settings.defaultMaxInFlight,
      },
      (items) => this.#runBatch(items),
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
    return new Promise<Outcome>((resolve, reject) => {
      this.#queue.submit({
        req,
        holdAccount,
        accountKey: account === undefined ? null : `${req.tenant}\u0000${account}`,
        resolve,
        reject,
      })
    })
  }

  /** One batch, one transaction; retried from scratch after a lost race. Never rejects. */
  async #runBatch(items: BatchItem[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        const done = await this.#driver.transaction((tx) => runBatch(tx, this.#st, items))
        // Read after the await: resetStats() may have replaced the object meanwhile.
        const stats = this.#stats
        const n = items.length
        stats.batches++
        stats.operations += n
        if (n > stats.largestBatch) stats.largestBatch = n
        const range = sizeRange(n)
        stats.batchSizes[range] = (stats.batchSizes[range] ?? 0) + 1
        for (const [tenant, id, account, pending] of done.holds) {
          if (pending) this.#holds.set(tenant, id, account)
          else this.#holds.delete(tenant, id)
        }
        for (let i = 0; i < n; i++) items[i]!.resolve(done.outcomes[i]!)
        return
      } catch (err) {
        const stats = this.#stats
        if (attempt < this.#o.maxRetries && isRetryable(err)) {
          stats.retries++
          // A short, growing, jittered pause lets the winner of the race commit first.
          await sleep(Math.random() * 2 * (attempt + 1))
          continue
        }
        stats.failedBatches++
        stats.failedOperations += items.length
        const failure = isTollgateError(err)
          ? err
          : new StoreUnavailableError(`${this.kind} store: ${describe(err)}`, { cause: err })
        for (const item of items) item.reject(failure)
        return
      }
    }
  }

  // ---------------------------------------------------------------- reads and housekeeping

  async ledger(tenant: string, account: string, req: LedgerRequest): Promise<LedgerPage> {
    this.#checkOpen()
    const rows = await this.#driver.query<LedgerRow>(this.#st.ledger, [
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

  async createCodes(tenant: string, batch: CodeBatch): Promise<CodeBatchOutcome> {
    this.#checkOpen()
    const st = this.#st
    const key = batch.idempotency
    if (key && NOT_TEXT.test(key.key)) {
      throw new InvalidInputError('idempotencyKey', 'must be text without NUL or lone surrogates')
    }
    return this.#driver.transaction(async (tx) => {
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
          const [row] = await tx.query<{ account: string; fingerprint: string; result: unknown }>(
            st.readKey,
            [tenant, key.key],
          )
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
    })
  }

  async dueAccounts(tenant: string, now: number, limit: number): Promise<string[]> {
    this.#checkOpen()
    const rows = await this.#driver.query<{ account: string }>(this.#st.dueAccounts, [
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
    for (const st of [this.#st.pruneKeys, this.#st.pruneHolds]) {
      for (let round = 0; round < PRUNE_ROUNDS; round++) {
        const [row] = await this.#driver.query<{ n: number | string }>(st, [
          tenant,
          before,
          PRUNE_BATCH,
        ])
        const n = Number(row?.n ?? 0)
        total += n
        if (n < PRUNE_BATCH) break
      }
    }
    return total
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

  resetStats(): void {
    this.#stats = emptyStats()
    this.#queue.resetPeak()
  }

  /** Lets queued and flying operations finish, then releases the connections it opened. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#queue.drain()
      this.#holds.clear()
      await this.#driver.close()
    })()
    return this.#closing
  }

  #checkOpen(): void {
    if (this.#closing) throw new StoreUnavailableError('store is closed')
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** Not unref()ed: operations wait on it, and PGlite holds no handle that keeps the process up. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
