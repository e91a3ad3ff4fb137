/**
 * The one thing that differs between node-postgres and PGlite: how a statement and a transaction
 * run. Everything else (SQL, migrations, group commit) is shared and talks to this interface.
 */

import type { Listen } from './change-feed.js'

/** A SQL statement with a stable name (node-postgres prepares it once per connection by name). */
export interface Statement {
  readonly name: string
  readonly text: string
}

/** Runs statements: the pool outside a transaction, or one connection inside it. */
export interface SqlClient {
  /** One statement with bound parameters; resolves to its rows. */
  query<R>(statement: Statement, params: readonly unknown[]): Promise<R[]>
  /** Several statements without parameters (migrations only). */
  script(sql: string): Promise<void>
}

/** Limits of one transaction. */
export interface TransactionOptions {
  /**
   * How long the transaction may take, in ms. PostgreSQL gets it as `lock_timeout` and
   * `statement_timeout` (SET LOCAL), so a lock wait or a slow statement ends in a rollback on
   * the database's side. A driver that can also stops waiting for a database that does not
   * answer at all (frozen, or cut off) shortly after it, and discards the connection: nothing
   * was committed, since COMMIT was not sent. A COMMIT already sent is always waited for.
   */
  timeoutMs?: number
}

/** A database behind the store. */
export interface SqlDriver extends SqlClient {
  /**
   * One statement outside a transaction. With `options.timeoutMs`, a driver that can stops
   * waiting for a database that does not answer by then and discards the connection (for
   * reads, and for housekeeping that may safely run again).
   */
  query<R>(
    statement: Statement,
    params: readonly unknown[],
    options?: TransactionOptions,
  ): Promise<R[]>
  /**
   * Runs `fn` in one transaction (READ COMMITTED): commits when it resolves, rolls back when it
   * throws (and rethrows). A connection the failure left unusable is discarded.
   */
  transaction<T>(fn: (tx: SqlClient) => Promise<T>, options?: TransactionOptions): Promise<T>
  /**
   * Listens on a notification channel on a connection of its own (PostgreSQL: one connection
   * held apart from the pool, reconnected when lost; PGlite: its in-process LISTEN).
   */
  listen: Listen
  /** How many transactions can usefully run at once: the pool size, 1 for PGlite. */
  readonly concurrency: number
  /** Releases the connections the driver opened itself; idempotent. */
  close(): Promise<void>
}

/** The SQLSTATE of a database error (node-postgres and PGlite both set `code`), if any. */
export function sqlState(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

/**
 * Races a batch may lose and win on a retry, always raised before COMMIT, so nothing of the
 * batch was committed: unique violations (two processes creating one account or saving one
 * idempotency key), deadlocks and serialization failures.
 */
const RETRYABLE = new Set(['23505', '40P01', '40001'])

/** True when a failed batch may be run again from scratch. */
export function isRetryable(err: unknown): boolean {
  const state = sqlState(err)
  return state !== undefined && RETRYABLE.has(state)
}

/**
 * The database gave up waiting, on its side: `lock_timeout` (55P03) or `statement_timeout`
 * (57014). The transaction was rolled back.
 */
const TIMEOUTS = new Set(['55P03', '57014'])

/**
 * True for a lock or statement timeout, or a database that did not answer at all: the
 * transaction was rolled back, or will be.
 */
export function isTimeout(err: unknown): boolean {
  if (err instanceof UnansweredError) return true
  const state = sqlState(err)
  return state !== undefined && TIMEOUTS.has(state)
}

/**
 * Errors that a value in one operation can cause: data exceptions (class 22: a NUL byte in a
 * text column, a number out of range, invalid JSON), integrity violations other than the races
 * above (class 23: a check constraint) and program limits (class 54: a value too large for an
 * index). The rest of the batch may well succeed without the operation.
 */
const OPERATION_CLASSES = new Set(['22', '23', '54'])

/** True when the error may be one operation's fault rather than the database's. */
export function isOperationError(err: unknown): boolean {
  const state = sqlState(err)
  return state !== undefined && OPERATION_CLASSES.has(state.slice(0, 2))
}

/** True for a data exception (SQLSTATE class 22): the database refuses a value as input. */
export function isDataError(err: unknown): boolean {
  return sqlState(err)?.startsWith('22') === true
}

/**
 * The database did not answer a statement within the transaction's timeout and a grace period
 * (frozen, or cut off by the network): the driver stopped waiting and discarded the connection.
 * COMMIT had not been sent, so nothing of the transaction is committed.
 */
export class UnansweredError extends Error {
  constructor() {
    super('the database did not answer in time')
    this.name = 'UnansweredError'
  }
}
