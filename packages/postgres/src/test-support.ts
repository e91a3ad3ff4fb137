import pg from 'pg'
import { afterAll, describe, it } from 'vitest'

const ENV = 'TOLLGATE_TEST_DATABASE_URL'

/**
 * The database the PostgreSQL half runs against: TOLLGATE_TEST_DATABASE_URL, which the global
 * setup (scripts/test-database.mjs) sets to the default local server when it answers.
 */
export const DATABASE_URL = process.env[ENV]

/**
 * A `describe` for tests that need PostgreSQL. Without a database: on CI a test that fails and
 * says why (a silently skipped database suite would pass CI); elsewhere the block is skipped
 * and a line says what was skipped and how to run it.
 */
export function describePostgres(name: string, body: (url: string) => void): void {
  const url = DATABASE_URL
  if (url) {
    describe(name, () => body(url))
    return
  }
  if (process.env.CI) {
    describe(name, () => {
      it(`needs ${ENV}`, () => {
        throw new Error(
          `${ENV} is not set: on CI the PostgreSQL tests must run. Set it, e.g. ${ENV}=postgres://postgres@127.0.0.1:5432/test`,
        )
      })
    })
    return
  }
  process.stdout.write(
    `\n[@tollgate/postgres] SKIPPED "${name}": no PostgreSQL answered at the default address and ${ENV} is unset\n`,
  )
  describe.skip(name, () => body(''))
}

let schemaCounter = 0
const RUN = `${Date.now().toString(36)}${process.pid.toString(36)}`

/** A schema name of its own for this test run (dropped by {@link dropSchemaAfterAll}). */
export function uniqueSchema(label: string): string {
  schemaCounter += 1
  return `tg_test_${label}_${RUN}_${schemaCounter}`
}

/** Drops the schema after the file's tests, so runs leave nothing behind. */
export function dropSchemaAfterAll(url: string, schema: string): void {
  afterAll(async () => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    } finally {
      await client.end()
    }
  })
}

/** Runs `fn` with a client of its own (not the store's pool). */
export async function withClient<T>(
  url: string,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

export { expectLedgerReplays, ledgerOldestFirst } from '@tollgate/conformance/testing'

/**
 * Replaces generated ids (`grt_…`, `hld_…`, …) by their order of first appearance, so the
 * results of two stores can be compared.
 */
export function normalizeIds(value: unknown): unknown {
  const seen = new Map<string, string>()
  const text = JSON.stringify(value).replace(
    /\b(grt|hld|cyc|rdm)_[0-9A-Z]{22}\b/g,
    (id, prefix) => {
      let name = seen.get(id)
      if (name === undefined) {
        name = `${prefix}#${seen.size}`
        seen.set(id, name)
      }
      return name
    },
  )
  return JSON.parse(text)
}

/** A settled meter call as plain data: its result, or its error code. */
export async function settle<T>(p: Promise<T>): Promise<{ ok: T } | { error: string }> {
  try {
    return { ok: await p }
  } catch (err) {
    return { error: (err as { code?: string }).code ?? String(err) }
  }
}
