import { PGlite } from '@electric-sql/pglite'
import { describe, expect, it } from 'vitest'
import { SCHEMA_VERSION } from './migrations.js'
import { pgliteStore } from './pglite-store.js'
import { postgresStore } from './postgres-store.js'
import { describePostgres, dropSchemaAfterAll, uniqueSchema, withClient } from './test-support.js'

describePostgres('migrations on PostgreSQL', (url) => {
  const schema = uniqueSchema('mig')
  dropSchemaAfterAll(url, schema)

  it('two stores migrating at once both succeed; the version is recorded once', async () => {
    const stores = [1, 2, 3].map(() =>
      postgresStore({ connectionString: url, schema, poolSize: 2 }),
    )
    try {
      await Promise.all(stores.map((s) => s.migrate()))
      // Again: nothing to do, and still fine.
      await Promise.all(stores.map((s) => s.migrate()))
      await postgresStore({ connectionString: url, schema }).migrate()
    } finally {
      await Promise.all(stores.map((s) => s.close()))
    }
    const rows = await withClient(url, async (c) => {
      const r = await c.query(
        `SELECT version, name FROM "${schema}".schema_migrations ORDER BY version`,
      )
      return r.rows
    })
    expect(rows).toEqual([
      { version: 1, name: 'initial schema' },
      { version: 2, name: 'server API keys' },
      { version: 3, name: 'redeem failures per tenant window' },
      { version: 4, name: 'outbox: events by sequence and alerts' },
      { version: 5, name: 'webhooks' },
      { version: 6, name: 'tenant settings' },
      { version: 8, name: 'usage rollups' },
    ])
    expect(SCHEMA_VERSION).toBe(8)
  })

  it('applies a version written below the newest applied one (parallel branches merge)', async () => {
    const gap = uniqueSchema('mig_gap')
    const store = postgresStore({ connectionString: url, schema: gap })
    try {
      await store.migrate()
      const count = `SELECT count(*)::int4 AS n FROM "${gap}".schema_migrations`
      const before = await withClient(url, async (c) => (await c.query(count)).rows[0].n)
      // As if version 6 had reached this database before version 3 existed.
      await withClient(url, (c) =>
        c.query(
          `DROP TABLE "${gap}".redeem_failures; DELETE FROM "${gap}".schema_migrations WHERE version = 3`,
        ),
      )
      const again = postgresStore({ connectionString: url, schema: gap })
      await again.migrate()
      await again.close()
      const rows = await withClient(url, async (c) => {
        const r = await c.query(
          `SELECT to_regclass('"${gap}".redeem_failures') IS NOT NULL AS present,
            (SELECT count(*)::int4 FROM "${gap}".schema_migrations) AS versions`,
        )
        return r.rows
      })
      expect(rows).toEqual([{ present: true, versions: before }])
    } finally {
      await store.close()
      await withClient(url, (c) => c.query(`DROP SCHEMA "${gap}" CASCADE`))
    }
  })

  it('refuses a schema newer than the package', async () => {
    const newer = uniqueSchema('mig_newer')
    const store = postgresStore({ connectionString: url, schema: newer })
    try {
      await store.migrate()
      await withClient(url, (c) =>
        c.query(`INSERT INTO "${newer}".schema_migrations (version, name) VALUES (99, 'future')`),
      )
      const again = postgresStore({ connectionString: url, schema: newer })
      await expect(again.migrate()).rejects.toThrow(/newer than this/)
      await again.close()
    } finally {
      await store.close()
      await withClient(url, (c) => c.query(`DROP SCHEMA "${newer}" CASCADE`))
    }
  })
})

describe('migrations on PGlite', () => {
  it('creates the schema once and records the version; a second migrate() is a no-op', async () => {
    const db = await PGlite.create()
    try {
      await Promise.all([
        pgliteStore({ client: db }).migrate(),
        pgliteStore({ client: db }).migrate(),
      ])
      const { rows } = await db.query('SELECT version FROM tollgate.schema_migrations')
      expect(rows).toEqual([
        { version: 1 },
        { version: 2 },
        { version: 3 },
        { version: 4 },
        { version: 5 },
        { version: 6 },
        { version: 8 },
      ])
    } finally {
      await db.close()
    }
  })
})
