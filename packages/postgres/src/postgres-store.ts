/**
 * `postgresStore()`: Tollgate's credits in PostgreSQL through node-postgres, for production and
 * for many app instances sharing one database.
 */
import { InvalidInputError } from '@tollgate/core'
import { checkBoolean, checkInt, type OptionDefaults, readOptions } from '@tollgate/core/store'
import { resolveSqlOptions, SQL_STORE_DEFAULTS, type SqlStoreOptions } from './options.js'
import { PgDriver, type PgDriverOptions, type PgPoolLike } from './pg-driver.js'
import { type PostgresStore, SqlStore } from './sql-store.js'

/** Options of {@link postgresStore}: a `pool` or a `connectionString`, plus the shared ones. */
export interface PostgresStoreOptions extends SqlStoreOptions {
  /**
   * A `pg.Pool` to use. The store never ends it (`close()` leaves it to you). If it has no
   * `'error'` listener the store adds one, so that an idle connection killed by the server
   * does not crash the process.
   */
  pool?: PgPoolLike
  /** Where to connect when no `pool` is given: the store creates (and on close ends) a pool. */
  connectionString?: string
  /** Size of the pool the store creates. @default 10 */
  poolSize?: number
  /** `application_name` of the store's connections (shows in pg_stat_activity). @default 'tollgate' */
  applicationName?: string
  /** How long to wait for a connection of the created pool, in ms. @default 10_000 */
  connectTimeoutMs?: number
  /**
   * Prepare statements by name, once per connection. Turn off behind a pooler that cannot
   * keep prepared statements (PgBouncer in transaction mode before 1.21).
   * @default true
   */
  preparedStatements?: boolean
}

const DEFAULTS = {
  ...SQL_STORE_DEFAULTS,
  pool: undefined,
  connectionString: undefined,
  poolSize: 10,
  applicationName: 'tollgate',
  connectTimeoutMs: 10_000,
  preparedStatements: true,
} satisfies OptionDefaults<PostgresStoreOptions>

/** Batches in flight by default: enough to overlap round trips, few enough to batch well. */
const DEFAULT_IN_FLIGHT = 4

function resolveOptions(options: PostgresStoreOptions) {
  const o = readOptions(options, {
    owner: 'postgresStore',
    defaults: DEFAULTS,
    expected: 'postgresStore needs { pool } or { connectionString }',
  })
  const shared = resolveSqlOptions(o)
  const prepare = checkBoolean(o.preparedStatements, 'preparedStatements')
  let pool: PgDriverOptions['pool']
  if (o.pool !== undefined) {
    if (o.connectionString !== undefined) {
      throw new InvalidInputError('pool', 'give either pool or connectionString, not both')
    }
    if (typeof o.pool !== 'object' || o.pool === null || typeof o.pool.connect !== 'function') {
      throw new InvalidInputError('pool', 'must be a pg.Pool')
    }
    pool = { own: false, pool: o.pool }
  } else {
    if (typeof o.connectionString !== 'string' || o.connectionString === '') {
      throw new InvalidInputError(
        'connectionString',
        'postgresStore needs { pool } or { connectionString }',
      )
    }
    if (typeof o.applicationName !== 'string') {
      throw new InvalidInputError('applicationName', 'must be a string')
    }
    pool = {
      own: true,
      connectionString: o.connectionString,
      max: checkInt(o.poolSize, 'poolSize', 1, 1_000),
      applicationName: o.applicationName,
      connectTimeoutMs: checkInt(o.connectTimeoutMs, 'connectTimeoutMs', 0, 600_000),
    }
  }
  return { shared, driver: { pool, prepare } satisfies PgDriverOptions }
}

/**
 * A store on PostgreSQL (node-postgres). Operations of one process are coalesced into shared
 * transactions (group commit); every operation runs under its account's row lock, so many
 * processes can share the database. Call `migrate()` once (createMeter does) to create the schema.
 * @example
 * import { createMeter } from '@tollgate/core'
 * import { postgresStore } from '@tollgate/postgres'
 * const store = postgresStore({ connectionString: process.env.DATABASE_URL })
 * const meter = createMeter({ store })
 * await meter.grant('user_1', 1_000)
 * @example
 * // Your own pool (the store does not end it):
 * const store = postgresStore({ pool: new pg.Pool({ max: 20 }), schema: 'billing' })
 */
export function postgresStore(options: PostgresStoreOptions): PostgresStore {
  const { shared, driver } = resolveOptions(options)
  const pg = new PgDriver(driver)
  return new SqlStore({
    kind: 'postgres',
    driver: pg,
    options: shared,
    // One connection stays free for ledger reads, codes and sweeps.
    defaultMaxInFlight: Math.max(1, Math.min(DEFAULT_IN_FLIGHT, pg.concurrency - 1)),
    sharedDatabase: true,
  })
}
