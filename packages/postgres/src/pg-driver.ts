/**
 * The node-postgres driver: a `pg.Pool` (the caller's, or one made from a connection string).
 * `pg` is imported only when the store has to create the pool, so PGlite users need not install it.
 */
import type { SqlClient, SqlDriver, Statement } from './driver.js'
import { assertPeerInstalled } from './optional-peer.js'

/** The part of a `pg` pool client the store uses. A `pg.PoolClient` is one. */
export interface PgPoolClientLike {
  query(config: { text: string; values?: unknown[]; name?: string }): Promise<{ rows: unknown[] }>
  release(err?: Error | boolean): void
  on(event: 'error', listener: (err: Error) => void): unknown
}

/** The part of a `pg.Pool` the store uses. A `pg.Pool` is one. */
export interface PgPoolLike {
  connect(): Promise<PgPoolClientLike>
  query(config: { text: string; values?: unknown[]; name?: string }): Promise<{ rows: unknown[] }>
  end(): Promise<void>
  on(event: 'error', listener: (err: Error) => void): unknown
  listenerCount(event: 'error'): number
  readonly options?: { max?: number | undefined }
}

/** How the driver gets its pool. */
export interface PgDriverOptions {
  /** The caller's pool (never ended by the store), or how to make one. */
  pool:
    | { own: false; pool: PgPoolLike }
    | {
        own: true
        connectionString: string
        max: number
        applicationName: string
        connectTimeoutMs: number
      }
  /** Prepare statements by name (off behind PgBouncer in transaction mode before 1.21). */
  prepare: boolean
}

/**
 * Every statement is planned for its parameters (custom plans). node-postgres prepares them by
 * name per connection, and PostgreSQL would otherwise settle, after five runs, on a generic
 * plan costed with the statistics of that moment: on tables created a moment ago that is a
 * plan for empty tables (sequential scans), kept until autovacuum analyzes them, and a batch
 * then scans whole tables. Sent with BEGIN, in the same round trip.
 */
const CUSTOM_PLANS = 'SET LOCAL plan_cache_mode = force_custom_plan'
const BEGIN: Statement = { name: '', text: `BEGIN; ${CUSTOM_PLANS}` }
const COMMIT: Statement = { name: '', text: 'COMMIT' }
const ROLLBACK: Statement = { name: '', text: 'ROLLBACK' }

function noop(): void {}

/** An idle client killed by the server (restart, pg_terminate_backend) must not crash the app. */
function onIdleError(err: Error): void {
  process.emitWarning(
    `Tollgate postgres: an idle connection failed and was dropped (${err.message})`,
    'TollgateWarning',
  )
}

export class PgDriver implements SqlDriver {
  readonly concurrency: number
  readonly #prepare: boolean
  readonly #pool: Promise<PgPoolLike>
  readonly #own: boolean
  /** Clients that already carry our error listener (pg reuses them). */
  readonly #watched = new WeakSet<PgPoolClientLike>()
  #closed: Promise<void> | null = null

  constructor(options: PgDriverOptions) {
    this.#prepare = options.prepare
    const p = options.pool
    this.#own = p.own
    if (p.own) {
      assertPeerInstalled('pg', 'postgresStore')
      this.concurrency = p.max
      this.#pool = import('pg').then(({ default: pg }) => {
        const pool = new pg.Pool({
          connectionString: p.connectionString,
          max: p.max,
          application_name: p.applicationName,
          connectionTimeoutMillis: p.connectTimeoutMs,
          keepAlive: true,
          // Reads outside transactions too (see CUSTOM_PLANS).
          options: '-c plan_cache_mode=force_custom_plan',
        })
        pool.on('error', onIdleError)
        return pool as unknown as PgPoolLike
      })
      // Reported to each caller that awaits it; never an unhandled rejection by itself.
      this.#pool.catch(noop)
    } else {
      this.concurrency = p.pool.options?.max ?? 10
      // A pool without an error listener crashes the process when an idle client dies.
      if (p.pool.listenerCount('error') === 0) p.pool.on('error', onIdleError)
      this.#pool = Promise.resolve(p.pool)
    }
  }

  #config(st: Statement, params: readonly unknown[]) {
    return this.#prepare && st.name !== ''
      ? { name: st.name, text: st.text, values: params as unknown[] }
      : { text: st.text, values: params as unknown[] }
  }

  async query<R>(st: Statement, params: readonly unknown[]): Promise<R[]> {
    const pool = await this.#pool
    const res = await pool.query(this.#config(st, params))
    return res.rows as R[]
  }

  async script(sql: string): Promise<void> {
    const pool = await this.#pool
    await pool.query({ text: sql })
  }

  async transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
    const pool = await this.#pool
    const client = await pool.connect()
    if (!this.#watched.has(client)) {
      // Between two queries of a transaction the client has no query to fail: pg would emit
      // the connection's death as an 'error' event, which crashes the process unless heard.
      // The next query fails anyway, and that is what the batch reports.
      client.on('error', noop)
      this.#watched.add(client)
    }
    let broken: Error | undefined
    try {
      await client.query(BEGIN)
      const tx: SqlClient = {
        query: async <R>(st: Statement, params: readonly unknown[]) =>
          (await client.query(this.#config(st, params))).rows as R[],
        script: async (sql: string) => {
          await client.query({ text: sql })
        },
      }
      const out = await fn(tx)
      await client.query(COMMIT)
      return out
    } catch (err) {
      try {
        await client.query(ROLLBACK)
      } catch (rollbackFailed) {
        // The connection is gone or unusable: release(err) makes the pool discard it.
        broken =
          rollbackFailed instanceof Error ? rollbackFailed : new Error(String(rollbackFailed))
      }
      throw err
    } finally {
      client.release(broken)
    }
  }

  close(): Promise<void> {
    this.#closed ??= this.#own ? this.#pool.then((p) => p.end(), noop) : Promise.resolve()
    return this.#closed
  }
}
