// Vitest global setup of the suites that need PostgreSQL (packages/postgres, packages/server,
// test/). They run against TOLLGATE_TEST_DATABASE_URL. When it is unset, this probes the default
// local server once, before the test workers start (they inherit this process's environment),
// and sets it when a connection succeeds: a plain `pnpm test` runs the PostgreSQL suites
// wherever one answers at the usual address. When nothing answers the variable stays unset, one
// line here says why, and the suites skip (on CI, where .ci/run always sets it, they fail).
import { createRequire } from 'node:module'
import { join } from 'node:path'

const ENV = 'TOLLGATE_TEST_DATABASE_URL'
const DEFAULT_URL = 'postgres://postgres@127.0.0.1:5432/test'

/** @param {{ config: { root: string } }} project the Vitest project being set up */
export async function setup(project) {
  if (process.env[ENV]) return
  // `pg` is a dependency of the package under test, not of the repository root.
  const pg = createRequire(join(project.config.root, 'package.json'))('pg')
  const client = new pg.Client({ connectionString: DEFAULT_URL, connectionTimeoutMillis: 2_000 })
  client.on('error', () => {}) // a failed probe is reported below, not as an uncaught error
  try {
    await client.connect()
    await client.query('select 1')
    process.env[ENV] = DEFAULT_URL
    console.log(
      `PostgreSQL tests: ${DEFAULT_URL} answered; running them there (${ENV} chooses another)`,
    )
  } catch (err) {
    console.log(
      `PostgreSQL tests: SKIPPED, nothing answered at ${DEFAULT_URL} (${err instanceof Error ? err.message : err}). ` +
        `Start PostgreSQL there or set ${ENV}=postgres://user@host:5432/db to run them.`,
    )
  } finally {
    await client.end().catch(() => {})
  }
}
