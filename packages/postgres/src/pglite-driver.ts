/**
 * The PGlite driver: PostgreSQL compiled to WASM, in the process. It has one connection, so
 * statements and transactions are serialized by PGlite itself. `@electric-sql/pglite` is imported
 * only when the store has to create the instance.
 */

import type { Listener } from './change-feed.js'
import type { SqlClient, SqlDriver, Statement, TransactionOptions } from './driver.js'
import { assertPeerInstalled } from './optional-peer.js'

/** The part of a PGlite transaction the store uses. */
export interface PGliteTransactionLike {
  query<T>(query: string, params?: unknown[]): Promise<{ rows: T[] }>
  exec(query: string): Promise<unknown>
}

/** The part of a `PGlite` instance the store uses. A `PGlite` is one. */
export interface PGliteLike extends PGliteTransactionLike {
  transaction<T>(callback: (tx: PGliteTransactionLike) => Promise<T>): Promise<T>
  /** PGlite's in-process LISTEN; resolves to the function that stops it. */
  listen(channel: string, callback: (payload: string) => void): Promise<() => Promise<void>>
  close(): Promise<void>
  readonly closed: boolean
}

/** How the driver gets its instance. */
export type PgliteDriverOptions =
  | { own: false; client: PGliteLike }
  | { own: true; dataDir: string | undefined }

function noop(): void {}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

function wrap(db: PGliteTransactionLike): SqlClient {
  return {
    query: async <R>(st: Statement, params: readonly unknown[]) =>
      (await db.query<R>(st.text, params as unknown[])).rows,
    script: async (sql: string) => {
      await db.exec(sql)
    },
  }
}

export class PgliteDriver implements SqlDriver {
  /** One connection: a second transaction in flight would only wait inside PGlite. */
  readonly concurrency = 1
  readonly #db: Promise<PGliteLike>
  readonly #own: boolean
  #closed: Promise<void> | null = null

  constructor(options: PgliteDriverOptions) {
    this.#own = options.own
    if (options.own) {
      assertPeerInstalled('@electric-sql/pglite', 'pgliteStore')
      const dataDir = options.dataDir
      this.#db = import('@electric-sql/pglite').then(({ PGlite }) =>
        // In memory when there is no data directory.
        dataDir === undefined ? PGlite.create() : PGlite.create({ dataDir }),
      )
      // Reported to each caller that awaits it; never an unhandled rejection by itself.
      this.#db.catch(noop)
    } else {
      this.#db = Promise.resolve(options.client)
    }
  }

  /** `options.timeoutMs` is not applied, as for {@link PgliteDriver.transaction}. */
  async query<R>(
    st: Statement,
    params: readonly unknown[],
    _options?: TransactionOptions,
  ): Promise<R[]> {
    return wrap(await this.#db).query<R>(st, params)
  }

  async script(sql: string): Promise<void> {
    await (await this.#db).exec(sql)
  }

  /**
   * `options.timeoutMs` is not applied: PGlite has one connection, so a transaction never waits
   * for a lock another connection holds, and a statement runs in this thread, where no timer
   * could interrupt it. The store still never starts an operation past its deadline.
   */
  async transaction<T>(
    fn: (tx: SqlClient) => Promise<T>,
    _options?: TransactionOptions,
  ): Promise<T> {
    const db = await this.#db
    // PGlite runs in this thread and answers through promises alone: under steady load,
    // transaction after transaction would run in one endless chain of microtasks, and timers
    // and I/O (new requests, responses) would wait until the load stopped. One turn of the
    // event loop per transaction keeps the process responsive.
    await yieldToEventLoop()
    return db.transaction((tx) => fn(wrap(tx)))
  }

  /**
   * PGlite's own LISTEN: notifications of every store on this instance, delivered on commit.
   * Its one connection never drops, so `onStatus` is never called.
   */
  async listen(
    channel: string,
    onPayload: (payload: string) => void,
    _onStatus: (up: boolean, reason?: string) => void,
  ): Promise<Listener> {
    const db = await this.#db
    const stop = await db.listen(channel, onPayload)
    return { close: () => stop() }
  }

  close(): Promise<void> {
    this.#closed ??= this.#own
      ? this.#db.then((db) => (db.closed ? undefined : db.close()), noop)
      : Promise.resolve()
    return this.#closed
  }
}
