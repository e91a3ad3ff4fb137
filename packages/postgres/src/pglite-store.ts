/**
 * `pgliteStore()`: Tollgate's credits in PGlite, PostgreSQL compiled to WASM and run in the
 * process: durable in a data directory, or in memory. The same SQL and migrations as
 * `postgresStore()`.
 */
import { InvalidInputError } from '@tollgate/core'
import { type OptionDefaults, readOptions } from '@tollgate/core/store'
import { resolveSqlOptions, SQL_STORE_DEFAULTS, type SqlStoreOptions } from './options.js'
import { type PGliteLike, PgliteDriver, type PgliteDriverOptions } from './pglite-driver.js'
import { type PostgresStore, SqlStore } from './sql-store.js'

/** Options of {@link pgliteStore}. */
export interface PgliteStoreOptions extends SqlStoreOptions {
  /**
   * Where PGlite keeps its files (a directory). Omitted: in
   * memory, gone with the process. @default undefined (in memory)
   */
  dataDir?: string
  /**
   * An existing PGlite instance to use instead of creating one (then `dataDir` must be left
   * out). The store never closes it.
   */
  client?: PGliteLike
}

const DEFAULTS = {
  ...SQL_STORE_DEFAULTS,
  dataDir: undefined,
  client: undefined,
} satisfies OptionDefaults<PgliteStoreOptions>

function resolveOptions(options: PgliteStoreOptions) {
  const o = readOptions(options, { owner: 'pgliteStore', defaults: DEFAULTS })
  const shared = resolveSqlOptions(o)
  let driver: PgliteDriverOptions
  if (o.client !== undefined) {
    if (o.dataDir !== undefined) {
      throw new InvalidInputError('client', 'give either client or dataDir, not both')
    }
    const c = o.client
    if (typeof c !== 'object' || c === null || typeof c.transaction !== 'function') {
      throw new InvalidInputError('client', 'must be a PGlite instance')
    }
    driver = { own: false, client: c }
  } else {
    if (o.dataDir !== undefined && (typeof o.dataDir !== 'string' || o.dataDir === '')) {
      throw new InvalidInputError('dataDir', 'must be a non-empty path')
    }
    driver = { own: true, dataDir: o.dataDir }
  }
  return { shared, driver }
}

/**
 * A store on PGlite: embedded PostgreSQL, no server to run. One connection, so operations are
 * serialized by PGlite; group commit still puts concurrent ones into shared transactions.
 * @example
 * import { createMeter } from '@tollgate/core'
 * import { pgliteStore } from '@tollgate/postgres'
 * const meter = createMeter({ store: pgliteStore({ dataDir: './.tollgate' }) })
 * @example
 * // In memory (tests, demos):
 * const store = pgliteStore()
 * @example
 * // An instance you already have (the store does not close it):
 * const store = pgliteStore({ client: await PGlite.create('./data') })
 */
export function pgliteStore(options: PgliteStoreOptions = {}): PostgresStore {
  const { shared, driver } = resolveOptions(options)
  const pglite = new PgliteDriver(driver)
  return new SqlStore({
    kind: 'pglite',
    driver: pglite,
    options: shared,
    defaultMaxInFlight: pglite.concurrency,
    sharedDatabase: false,
  })
}
