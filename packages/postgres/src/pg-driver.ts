/**
 * The node-postgres driver: a `pg.Pool` (the caller's, or one made from a connection string).
 * `pg` is imported only when the store has to create the pool, so PGlite users need not install it.
 */

import type { Listener } from './change-feed.js'
import {
  type SqlClient,
  type SqlDriver,
  type Statement,
  type TransactionOptions,
  UnansweredError,
} from './driver.js'
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

/**
 * BEGIN with the transaction's timeouts, in the same round trip: a lock wait (`lock_timeout`)
 * or a statement (`statement_timeout`) that outlasts them is cancelled by PostgreSQL and the
 * transaction rolls back. Whole milliseconds, so the text is a plain integer.
 */
function beginWithin(timeoutMs: number): Statement {
  const ms = Math.max(1, Math.ceil(timeoutMs))
  return {
    name: '',
    text: `BEGIN; ${CUSTOM_PLANS}; SET LOCAL lock_timeout = ${ms}; SET LOCAL statement_timeout = ${ms}`,
  }
}

/**
 * How long past a transaction's timeout the driver still waits for a database that does not
 * answer at all. PostgreSQL's own timeouts end a lock wait or a slow statement at the timeout;
 * no answer a second later means the server (or the network to it) is frozen, and only the
 * client can end the wait.
 */
export const UNANSWERED_GRACE_MS = 1_000

function noop(): void {}

/** Pauses between attempts to listen again after the listening connection was lost. */
const LISTEN_RETRY_MIN_MS = 100
const LISTEN_RETRY_MAX_MS = 5_000

/** A pool client as the listener uses it (a `pg.PoolClient` is one). */
type ListeningClient = PgPoolClientLike & {
  on(event: 'end', listener: () => void): unknown
  on(event: 'notification', listener: (msg: { channel: string; payload?: string }) => void): unknown
}

/**
 * Ends a transaction's waits when the database does not answer in time. Each statement before
 * COMMIT is raced against it; COMMIT is not, since a COMMIT the database already received may
 * commit, and its caller must learn which.
 */
class Watchdog {
  readonly #timer: NodeJS.Timeout
  #fired = false
  #reject: ((err: Error) => void) | null = null

  constructor(ms: number) {
    this.#timer = setTimeout(() => {
      this.#fired = true
      this.#reject?.(new UnansweredError())
    }, ms)
    // The connection's socket keeps the process alive while a statement is in flight.
    this.#timer.unref()
  }

  get fired(): boolean {
    return this.#fired
  }

  /** `p`, or an {@link UnansweredError} if the watchdog fires first. */
  guard<T>(p: Promise<T>): Promise<T> {
    if (this.#fired) {
      p.catch(noop)
      return Promise.reject(new UnansweredError())
    }
    return new Promise<T>((resolve, reject) => {
      this.#reject = reject
      p.then(
        (value) => {
          this.#reject = null
          resolve(value)
        },
        (err: unknown) => {
          this.#reject = null
          reject(err)
        },
      )
    })
  }

  stop(): void {
    clearTimeout(this.#timer)
  }
}

/**
 * Closes a connection's socket at once. `release(err)` alone ends it politely, which waits for
 * a server that may never answer; the pending query then fails with "Connection terminated".
 */
function destroySocket(client: PgPoolClientLike): void {
  const stream = (client as { connection?: { stream?: { destroy?: () => void } } }).connection
    ?.stream
  stream?.destroy?.()
}

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

  async query<R>(
    st: Statement,
    params: readonly unknown[],
    options?: TransactionOptions,
  ): Promise<R[]> {
    const pool = await this.#pool
    const timeoutMs = options?.timeoutMs
    if (timeoutMs === undefined) return (await pool.query(this.#config(st, params))).rows as R[]
    // Reads wait on no lock: only a database that does not answer makes them late.
    const watchdog = new Watchdog(timeoutMs)
    const connecting = pool.connect()
    let client: PgPoolClientLike
    try {
      client = await watchdog.guard(connecting)
    } catch (err) {
      watchdog.stop()
      if (watchdog.fired) connecting.then((late) => late.release(), noop)
      throw err
    }
    this.#watch(client)
    let broken: Error | undefined
    try {
      return (await watchdog.guard(client.query(this.#config(st, params)))).rows as R[]
    } catch (err) {
      if (watchdog.fired) {
        broken = err instanceof Error ? err : new UnansweredError()
        destroySocket(client)
      }
      throw err
    } finally {
      watchdog.stop()
      client.release(broken)
    }
  }

  /** Listens for the connection's death between queries (once per client). */
  #watch(client: PgPoolClientLike): void {
    if (!this.#watched.has(client)) {
      // Between two queries of a transaction the client has no query to fail: pg would emit
      // the connection's death as an 'error' event, which crashes the process unless heard.
      // The next query fails anyway, and that is what the batch reports.
      client.on('error', noop)
      this.#watched.add(client)
    }
  }

  async script(sql: string): Promise<void> {
    const pool = await this.#pool
    await pool.query({ text: sql })
  }

  async transaction<T>(
    fn: (tx: SqlClient) => Promise<T>,
    options?: TransactionOptions,
  ): Promise<T> {
    const timeoutMs = options?.timeoutMs
    if (timeoutMs === undefined) return this.#transaction(fn, BEGIN, null)
    const watchdog = new Watchdog(timeoutMs + UNANSWERED_GRACE_MS)
    try {
      return await this.#transaction(fn, beginWithin(timeoutMs), watchdog)
    } finally {
      watchdog.stop()
    }
  }

  async #transaction<T>(
    fn: (tx: SqlClient) => Promise<T>,
    begin: Statement,
    watchdog: Watchdog | null,
  ): Promise<T> {
    const pool = await this.#pool
    const connecting = pool.connect()
    let client: PgPoolClientLike
    try {
      client = watchdog ? await watchdog.guard(connecting) : await connecting
    } catch (err) {
      // A connection that arrives after the watchdog gave up goes back to the pool unused.
      if (watchdog?.fired) connecting.then((late) => late.release(), noop)
      throw err
    }
    this.#watch(client)
    const run = <R>(p: Promise<R>): Promise<R> => (watchdog ? watchdog.guard(p) : p)
    let broken: Error | undefined
    try {
      await run(client.query(begin))
      const tx: SqlClient = {
        query: async <R>(st: Statement, params: readonly unknown[]) =>
          (await run(client.query(this.#config(st, params)))).rows as R[],
        script: async (sql: string) => {
          await run(client.query({ text: sql }))
        },
      }
      const out = await fn(tx)
      // Not raced: once sent, COMMIT may succeed, and the caller must not hear otherwise.
      await client.query(COMMIT)
      return out
    } catch (err) {
      if (watchdog?.fired) {
        // The database did not answer: the connection cannot be trusted with anything more.
        // COMMIT was never sent, so when the server wakes it finds the socket closed and rolls
        // the transaction back.
        broken = err instanceof Error ? err : new UnansweredError()
        destroySocket(client)
        throw err
      }
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

  /**
   * LISTENs on a pool connection held apart for it (one per store, however many subscribers).
   * When the connection is lost, `onStatus(false)` and a new one is tried after a pause that
   * doubles from 100 ms up to 5 s; once it listens again, `onStatus(true)`. The first connection
   * must succeed: its failure is the caller's.
   */
  async listen(
    channel: string,
    onPayload: (payload: string) => void,
    onStatus: (up: boolean, reason?: string) => void,
  ): Promise<Listener> {
    const pool = await this.#pool
    let closed = false
    let current: ListeningClient | null = null
    let timer: NodeJS.Timeout | undefined
    let pause = LISTEN_RETRY_MIN_MS
    /** Releases a listening client once (discarded, never back to the pool: it listens). */
    const released = new WeakSet<ListeningClient>()
    const drop = (client: ListeningClient) => {
      if (released.has(client)) return false
      released.add(client)
      client.release(true)
      return true
    }
    const connect = async (): Promise<void> => {
      const client = (await pool.connect()) as ListeningClient
      const onLost = (reason: string) => {
        if (current === client) current = null
        // Already dropped (closed, or a second event for the same loss): nothing to tell.
        if (!drop(client) || closed) return
        onStatus(false, reason)
        retry()
      }
      client.on('error', (err: Error) => onLost(err.message))
      client.on('end', () => onLost('connection ended'))
      client.on('notification', (msg) => {
        if (msg.channel === channel && typeof msg.payload === 'string') onPayload(msg.payload)
      })
      try {
        // The channel is a digest (letters, digits, _): quoted, it is taken as written.
        await client.query({ text: `LISTEN "${channel}"` })
      } catch (err) {
        drop(client)
        throw err
      }
      if (closed) drop(client)
      else current = client
    }
    const retry = () => {
      clearTimeout(timer)
      timer = setTimeout(() => {
        connect().then(
          () => {
            pause = LISTEN_RETRY_MIN_MS
            if (!closed) onStatus(true)
          },
          () => {
            pause = Math.min(pause * 2, LISTEN_RETRY_MAX_MS)
            if (!closed) retry()
          },
        )
      }, pause)
      timer.unref()
    }
    await connect()
    return {
      close: async () => {
        closed = true
        clearTimeout(timer)
        const client = current
        current = null
        // Ending the session ends its LISTEN.
        if (client) drop(client)
      },
    }
  }

  close(): Promise<void> {
    this.#closed ??= this.#own ? this.#pool.then((p) => p.end(), noop) : Promise.resolve()
    return this.#closed
  }
}
