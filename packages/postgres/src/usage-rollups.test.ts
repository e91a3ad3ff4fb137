/**
 * The usage rollups on PostgreSQL: the rows the store keeps batch by batch are exactly the rows
 * the migration's backfill builds from the same ledger (usage-sql.ts), so a database migrated
 * with history and one that grew with the store answer alike; and concurrent batches of many
 * accounts, all adding to the tenant's rows, neither deadlock nor lose an increment.
 */
import { createMeter } from '@tollgate/core'
import { MAX_USAGE_DIMENSIONS, MAX_USAGE_VALUE_LENGTH } from '@tollgate/core/engine'
import { expect, it } from 'vitest'
import { postgresStore } from './postgres-store.js'
import { describePostgres, dropSchemaAfterAll, uniqueSchema, withClient } from './test-support.js'
import { USAGE_TENANT_SHARDS, usageUpsertCte } from './usage-sql.js'

const HOUR = 3_600_000
const START = Date.UTC(2027, 5, 30, 22, 15)

describePostgres('usage rollups', (url) => {
  const schema = uniqueSchema('usage')
  dropSchemaAfterAll(url, schema)

  // Summed over shards: the store spreads a tenant's rows over shards, the backfill uses one.
  const rows = () =>
    withClient(url, async (c) => {
      const r = await c.query(
        `SELECT tenant, account, dim_key, hour::text, dim_value, sum(granted)::text AS granted,
           sum(spent)::text AS spent, sum(released)::text AS released,
           sum(expired)::text AS expired
         FROM "${schema}".usage_hourly
         GROUP BY tenant, account, dim_key, hour, dim_value
         ORDER BY tenant COLLATE "C", account COLLATE "C", dim_key COLLATE "C", hour,
           dim_value COLLATE "C"`,
      )
      return r.rows
    })

  it('the rows the store keeps are the rows the migration backfills from the ledger', async () => {
    let now = START
    const store = postgresStore({ connectionString: url, schema })
    const meter = createMeter({
      store,
      tenant: 'rollup',
      clock: () => now,
      overage: 'overdraft',
      overdraftLimit: 50,
    })
    const many = Object.fromEntries(
      Array.from({ length: MAX_USAGE_DIMENSIONS + 3 }, (_, i) => [
        `k${String(i).padStart(2, '0')}`,
        i,
      ]),
    )
    const odd = {
      feature: 'chat',
      long: `☃${'x'.repeat(MAX_USAGE_VALUE_LENGTH)}`,
      astral: '𝄞'.repeat(MAX_USAGE_VALUE_LENGTH + 1),
      flag: true,
      ratio: 0.1,
      big: 1e21,
      nested: { a: 1 },
      none: null,
      [`${'k'.repeat(65)}`]: 'too long a key',
    }
    try {
      await meter.grant('a', 500, { expiresAt: START + 2 * HOUR, metadata: { plan: 'pro' } })
      await meter.grant('b', 300, { metadata: odd })
      await meter.debit('a', 20, { metadata: many })
      await meter.debit('b', 7, { metadata: odd })
      const h = await meter.reserve('a', 40, { metadata: { feature: 'search' } })
      await h.commit(25, { metadata: { feature: 'search' } })
      await meter.adjust('b', -5, { reason: 'fix', metadata: { feature: 'chat' } })
      const over = await meter.reserve('b', 10)
      await over.commit(400)
      await meter.reserve('a', 30, { ttlMs: 1_000 })
      now += HOUR
      await meter.grant('b', 60) // repays the overdraft first
      const r = await meter.reserve('a', 10)
      await r.release()
      now += 2 * HOUR
      await meter.sweep()
      const kept = await rows()
      expect(kept.length).toBeGreaterThan(20)
      // The same ledger, rolled up by the migration instead.
      await withClient(url, (c) =>
        c.query(
          `DROP TABLE "${schema}".usage_hourly; DELETE FROM "${schema}".schema_migrations WHERE version = 8`,
        ),
      )
      const again = postgresStore({ connectionString: url, schema })
      await again.migrate()
      await again.close()
      expect(await rows()).toEqual(kept)
    } finally {
      await meter.close()
    }
  })

  it('concurrent batches of many accounts add every increment to the shared tenant rows', async () => {
    const stores = [1, 2].map(() => postgresStore({ connectionString: url, schema, poolSize: 4 }))
    const meters = stores.map((store) => createMeter({ store, tenant: 'busy', clock: () => START }))
    try {
      await Promise.all(
        Array.from({ length: 40 }, (_, i) => meters[i % 2]!.grant(`acct-${i}`, 100)),
      )
      await Promise.all(
        Array.from({ length: 400 }, (_, i) =>
          meters[i % 2]!.debit(`acct-${i % 40}`, 1, { metadata: { feature: `f${i % 3}` } }),
        ),
      )
      const r = await meters[0]!.usage(null, {
        interval: 'day',
        from: START,
        to: START + 1,
        groupBy: 'feature',
      })
      expect(r.periods.map((p) => [p.granted, p.spent])).toEqual([[4_000, 400]])
      expect(r.groups?.map((g) => [g.value, g.periods[0]!.spent])).toEqual([
        ['f0', 134],
        ['f1', 133],
        ['f2', 133],
        [null, 0],
      ])
      // ~440 batches, each on a shard picked at random: all on one shard is 16^-439 likely.
      const shards = await withClient(url, (c) =>
        c.query(
          `SELECT count(DISTINCT shard)::int4 AS n, min(shard) AS lo, max(shard) AS hi
           FROM "${schema}".usage_hourly WHERE tenant = 'busy' AND account = ''`,
        ),
      )
      expect(shards.rows[0].n).toBeGreaterThan(1)
      expect(shards.rows[0].lo).toBeGreaterThanOrEqual(0)
      expect(shards.rows[0].hi).toBeLessThan(USAGE_TENANT_SHARDS)
      const accountShards = await withClient(url, (c) =>
        c.query(
          `SELECT DISTINCT shard FROM "${schema}".usage_hourly
           WHERE tenant = 'busy' AND account <> ''`,
        ),
      )
      expect(accountShards.rows).toEqual([{ shard: 0 }])
    } finally {
      await Promise.all(meters.map((m) => m.close()))
    }
  })

  it("two uncommitted batches of one tenant on other accounts and shards do not wait on each other's tenant rows", async () => {
    // The store's own upsert (usage-sql.ts), as the persist statement runs it: $1…$9 the row
    // arrays (each batch's account row and the tenant's totals row), $10 the tenant shard.
    const store = postgresStore({ connectionString: url, schema })
    await store.migrate()
    await store.close()
    const upsert = `WITH ${usageUpsertCte(`"${schema}"`, 1).replace(/,$/, '')} SELECT 1`
    const batch = (account: string, shard: number) => [
      ['locks', 'locks'],
      [account, ''],
      ['', ''],
      [START - (START % HOUR), START - (START % HOUR)],
      ['', ''],
      [5, 5],
      [0, 0],
      [0, 0],
      [0, 0],
      shard,
    ]
    await withClient(url, async (a) => {
      await withClient(url, async (b) => {
        await a.query('BEGIN')
        await a.query(upsert, batch('first', 3))
        try {
          await b.query("SET lock_timeout = '200ms'")
          // Another account, another shard: the second writes at once though A holds its rows.
          await b.query('BEGIN')
          await b.query(upsert, batch('second', 4))
          await b.query('COMMIT')
          // The same shard is the same row: it waits on A's lock, here until lock_timeout.
          await b.query('BEGIN')
          await expect(b.query(upsert, batch('third', 3))).rejects.toThrow(/lock timeout/)
          await b.query('ROLLBACK')
        } finally {
          await a.query('COMMIT')
        }
      })
    })
    const r = await withClient(url, (c) =>
      c.query(
        `SELECT account, shard, granted::int4 AS granted FROM "${schema}".usage_hourly
         WHERE tenant = 'locks' ORDER BY account COLLATE "C", shard`,
      ),
    )
    expect(r.rows).toEqual([
      { account: '', shard: 3, granted: 5 },
      { account: '', shard: 4, granted: 5 },
      { account: 'first', shard: 0, granted: 5 },
      { account: 'second', shard: 0, granted: 5 },
    ])
  })

  it("a tenant's hour past int8's range still writes (the ledger never fails for its rollups)", async () => {
    const store = postgresStore({ connectionString: url, schema, poolSize: 4 })
    const meter = createMeter({ store, tenant: 'huge', clock: () => START })
    try {
      // 1,030 × (2^53 − 1) > 2^63 − 1.
      await Promise.all(
        Array.from({ length: 1_030 }, (_, i) => meter.grant(`acct-${i}`, Number.MAX_SAFE_INTEGER)),
      )
      const r = await meter.usage(null, { interval: 'hour', from: START, to: START + 1 })
      // Past 2^53 a figure is the nearest number: right to 15 digits, not to the credit.
      const exact = 1_030n * BigInt(Number.MAX_SAFE_INTEGER)
      const got = BigInt(r.periods[0]!.granted)
      expect(Number(((got > exact ? got - exact : exact - got) * 1_000_000_000_000n) / exact)).toBe(
        0,
      )
    } finally {
      await meter.close()
    }
  })
})
