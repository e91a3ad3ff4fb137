/**
 * Options both factories share, and the checks their `resolveOptions()` use.
 */
import { InvalidInputError } from '@tollgate/core'

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
}

export const SQL_STORE_DEFAULTS = {
  schema: 'tollgate',
  groupCommit: true,
  maxBatch: 256,
  maxWaitMs: 0,
  maxRetries: 5,
  sweepLeaseMs: 30_000,
  holdCacheSize: 10_000,
  timeoutMs: 5_000,
  maxQueue: 10_000,
} as const

export const SQL_STORE_KEYS = [
  'schema',
  'groupCommit',
  'maxBatch',
  'maxWaitMs',
  'maxInFlight',
  'maxRetries',
  'sweepLeaseMs',
  'holdCacheSize',
  'timeoutMs',
  'maxQueue',
] as const

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/

/** Warns (once per call) about keys the factory does not know, as createMeter does. */
export function warnUnknownKeys(factory: string, options: object, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      process.emitWarning(`${factory}: unknown option "${key}" is ignored`, 'TollgateWarning')
    }
  }
}

/** An integer option within [min, max]. */
export function intOption(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidInputError(field, `must be an integer from ${min} to ${max}`)
  }
  return value
}

/** The shared options, checked, defaults spread. */
export function resolveSqlOptions(options: SqlStoreOptions): ResolvedSqlStoreOptions {
  const o = { ...SQL_STORE_DEFAULTS, ...stripUndefined(options) }
  if (typeof o.schema !== 'string' || !SCHEMA_NAME.test(o.schema)) {
    throw new InvalidInputError(
      'schema',
      'must be 1–63 letters, digits or _, not starting with a digit',
    )
  }
  if (typeof o.groupCommit !== 'boolean') {
    throw new InvalidInputError('groupCommit', 'must be a boolean')
  }
  return {
    schema: o.schema,
    // Validated above, so quoting is only for case: "MySchema" stays MySchema.
    quotedSchema: `"${o.schema}"`,
    groupCommit: o.groupCommit,
    maxBatch: intOption(o.maxBatch, 'maxBatch', 1, 10_000),
    maxWaitMs: intOption(o.maxWaitMs, 'maxWaitMs', 0, 60_000),
    maxInFlight:
      options.maxInFlight === undefined
        ? undefined
        : intOption(options.maxInFlight, 'maxInFlight', 1, 1_000),
    maxRetries: intOption(o.maxRetries, 'maxRetries', 0, 100),
    sweepLeaseMs: intOption(o.sweepLeaseMs, 'sweepLeaseMs', 1, 86_400_000),
    holdCacheSize: intOption(o.holdCacheSize, 'holdCacheSize', 0, 10_000_000),
    timeoutMs: intOption(o.timeoutMs, 'timeoutMs', 1, 3_600_000),
    maxQueue: intOption(o.maxQueue, 'maxQueue', 1, 10_000_000),
  }
}

/** `{ a: undefined }` means "the default", as if the key were absent. */
export function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {}
  for (const [k, v] of Object.entries(o)) {
    if (v !== undefined) (out as Record<string, unknown>)[k] = v
  }
  return out
}
