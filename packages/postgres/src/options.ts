/**
 * Options both factories share, and their checks. Each factory reads its options with the
 * core options kit (`readOptions`), then hands the shared part to {@link resolveSqlOptions}.
 */
import { InvalidInputError } from '@tollgate/core'
import {
  checkBoolean,
  checkInt,
  type OptionDefaults,
  type ResolvedOptions,
} from '@tollgate/core/store'

/** Options of both {@link postgresStore} and {@link pgliteStore}. */
export interface SqlStoreOptions {
  /**
   * The PostgreSQL schema that holds Tollgate's tables; `migrate()` creates it. Letters, digits
   * and `_`, starting with a letter or `_`, at most 63 characters.
   * @default 'tollgate'
   */
  schema?: string
  /**
   * Coalesce concurrent operations into shared transactions. `false` runs every operation in a
   * transaction of its own, at once (the baseline the benchmark compares against).
   * @default true
   */
  groupCommit?: boolean
  /** Most operations in one batch (one transaction). @default 256 */
  maxBatch?: number
  /**
   * How long a batch that is not full may wait for more operations, in ms. 0 adds no wait: a
   * batch leaves as soon as a slot is free.
   * @default 0
   */
  maxWaitMs?: number
  /**
   * Batches (transactions) in flight at once. More overlap round trips; fewer make bigger
   * batches. @default 4 for postgresStore (at most the pool size), 1 for pgliteStore
   */
  maxInFlight?: number
  /**
   * How often a batch that lost a race (two processes creating one account or saving one
   * idempotency key, a deadlock) runs again before its operations fail.
   * @default 5
   */
  maxRetries?: number
  /**
   * How long `dueAccounts()` claims an account for the sweeper that got it, in ms of database
   * time; writing the account ends the claim earlier. Concurrent sweepers take other accounts
   * meanwhile. @default 30_000
   */
  sweepLeaseMs?: number
  /**
   * Hold ids whose account the store remembers (holds it created), so that commit and release
   * join their account's batch. 0 turns it off. @default 10_000
   */
  holdCacheSize?: number
  /**
   * An operation's deadline, in ms from the call, when the call gives none (`timeoutMs` of the
   * meter's methods, or a server's propagated deadline). An operation not started by then is
   * not run; its transaction waits for row locks and statements at most until then
   * (`lock_timeout`, `statement_timeout`) and commits only before it; it then fails with
   * `StoreUnavailableError` (503), unapplied. A row locked elsewhere fails only its own
   * account's operations, after this long.
   * @default 5_000
   */
  timeoutMs?: number
  /**
   * Operations queued for a batch, at most; beyond it `execute` fails at once with
   * `StoreUnavailableError` (503, retry after 1 s), so that a stalled database cannot make the
   * process hold work without bound.
   * @default 10_000
   */
  maxQueue?: number
  /**
   * Send each batch's change notification (`pg_notify`, delivered on commit), which every
   * process's `watch()` (a meter's cache, a server's change stream) listens for. Turn off only
   * where nothing watches: caches then rely on their TTL.
   * @default true
   */
  notify?: boolean
}

/** {@link SqlStoreOptions} with defaults applied. */
export interface ResolvedSqlStoreOptions {
  schema: string
  quotedSchema: string
  groupCommit: boolean
  maxBatch: number
  maxWaitMs: number
  maxInFlight: number | undefined
  maxRetries: number
  sweepLeaseMs: number
  holdCacheSize: number
  timeoutMs: number
  maxQueue: number
  notify: boolean
}

/** Defaults of the shared options; each factory spreads them into its own defaults literal. */
export const SQL_STORE_DEFAULTS = {
  schema: 'tollgate',
  groupCommit: true,
  maxBatch: 256,
  maxWaitMs: 0,
  // Each factory has its own default (the pool size decides it for postgresStore).
  maxInFlight: undefined,
  maxRetries: 5,
  sweepLeaseMs: 30_000,
  holdCacheSize: 10_000,
  timeoutMs: 5_000,
  maxQueue: 10_000,
  notify: true,
} satisfies OptionDefaults<SqlStoreOptions>

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/

/** The shared options, read by the factory's `readOptions()`, checked. */
export function resolveSqlOptions(
  o: ResolvedOptions<SqlStoreOptions, typeof SQL_STORE_DEFAULTS>,
): ResolvedSqlStoreOptions {
  if (typeof o.schema !== 'string' || !SCHEMA_NAME.test(o.schema)) {
    throw new InvalidInputError(
      'schema',
      'must be 1–63 letters, digits or _, not starting with a digit',
    )
  }
  return {
    schema: o.schema,
    // Validated above, so quoting is only for case: "MySchema" stays MySchema.
    quotedSchema: `"${o.schema}"`,
    groupCommit: checkBoolean(o.groupCommit, 'groupCommit'),
    maxBatch: checkInt(o.maxBatch, 'maxBatch', 1, 10_000),
    maxWaitMs: checkInt(o.maxWaitMs, 'maxWaitMs', 0, 60_000),
    maxInFlight:
      o.maxInFlight === undefined ? undefined : checkInt(o.maxInFlight, 'maxInFlight', 1, 1_000),
    maxRetries: checkInt(o.maxRetries, 'maxRetries', 0, 100),
    sweepLeaseMs: checkInt(o.sweepLeaseMs, 'sweepLeaseMs', 1, 86_400_000),
    holdCacheSize: checkInt(o.holdCacheSize, 'holdCacheSize', 0, 10_000_000),
    timeoutMs: checkInt(o.timeoutMs, 'timeoutMs', 1, 3_600_000),
    maxQueue: checkInt(o.maxQueue, 'maxQueue', 1, 10_000_000),
    notify: checkBoolean(o.notify, 'notify'),
  }
}
