/**
 * The one thing that differs between node-postgres and PGlite: how a statement and a transaction
 * run. Everything else (SQL, migrations, group commit) is shared and talks to this interface.
 */

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

/** A database behind the store. */
export interface SqlDriver extends SqlClient {
  /**
   * Runs `fn` in one transaction (READ COMMITTED): commits when it resolves, rolls back when it
   * throws (and rethrows). A connection the failure left unusable is discarded.
   */
  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T>
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
