/**
 * The outbox and change feed on real PostgreSQL, beyond the conformance rules: the feed's
 * payload limit, its recovery after the listening connection is killed, and the in-flight guard
 * that keeps `events()` from reading past a batch that has not committed yet.
 */
import { createMeter } from '@tollgate/core'
import type { AccountChange } from '@tollgate/core/store'
import { describe, expect, it } from 'vitest'
import { changeChunks, MAX_CHUNK_BYTES, parseChanges } from './change-feed.js'
import { postgresStore } from './postgres-store.js'
import { guardClassOf } from './sql-store.js'
import { GUARD_UNIT } from './statements.js'
import { describePostgres, dropSchemaAfterAll, uniqueSchema, withClient } from './test-support.js'

describe('change notifications', () => {
  it('split a batch of many accounts into payloads under 8000 bytes, each whole', () => {
    const pairs: [string, string][] = []
    for (let i = 0; i < 2_000; i++) pairs.push([`tenant-${i % 3}`, `account-é-${i}`])
    const chunks = changeChunks(pairs)
    expect(chunks.length).toBeGreaterThan(1)
    const back: AccountChange[] = []
    for (const c of chunks) {
      // As the persist statement wraps it, with the largest sequence number there is.
      const payload = `{"s":9007199254740991,${c}}`
      expect(Buffer.byteLength(payload)).toBeLessThan(8_000)
      expect(Buffer.byteLength(c)).toBeLessThanOrEqual(MAX_CHUNK_BYTES + 8)
      back.push(...parseChanges(payload))
    }
    expect(back.map((c) => [c.tenant, c.account])).toEqual(pairs)
  })

  it('ignore payloads this store did not write', () => {
    expect(parseChanges('hello')).toEqual([])
    expect(parseChanges('{"s":"x","c":[]}')).toEqual([])
    expect(parseChanges('{"s":3,"c":[["t"],[1,2],["t","a"]]}')).toEqual([
      { tenant: 't', account: 'a', seq: 3 },
    ])
  })
})

describePostgres('postgresStore change feed and outbox', (url) => {
  const schema = uniqueSchema('feed')
  dropSchemaAfterAll(url, schema)

  it('reports the loss of its listening connection, listens again, and hears changes after', async () => {
    const applicationName = `tollgate-feed-${process.pid}`
    const store = postgresStore({ connectionString: url, schema, applicationName, poolSize: 3 })
    const meter = createMeter({ store, tenant: 't', cache: false })
    try {
      await meter.grant('a', 10)
      const status: boolean[] = []
      let back: () => void = () => {}
      const recovered = new Promise<void>((resolve) => {
        back = resolve
      })
      const heard: AccountChange[] = []
      let wake: () => void = () => {}
      const sub = await store.watch({
        onChanges: (changes) => {
          heard.push(...changes)
          wake()
        },
        onStatus: (up) => {
          status.push(up)
          if (up) back()
        },
      })
      const killed = await withClient(url, async (c) => {
        const { rows } = await c.query(
          `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
           WHERE application_name = $1 AND query LIKE 'LISTEN%'`,
          [applicationName],
        )
        return rows.length
      })
      expect(killed).toBe(1)
      await recovered
      expect(status).toEqual([false, true])
      const seen = new Promise<void>((resolve) => {
        wake = () => {
          if (heard.some((c) => c.account === 'after')) resolve()
        }
      })
      await meter.grant('after', 1)
      await seen
      await sub.close()
    } finally {
      await meter.close()
    }
  })

  it('events() does not read past a batch still in flight; after it commits, both in order', async () => {
    const store = postgresStore({ connectionString: url, schema, poolSize: 3 })
    const meter = createMeter({ store, tenant: 'g', cache: false })
    try {
      await meter.grant('a', 10)
      const [first] = await meter.events()
      // A batch of another process, in flight: it holds the guard and has taken a number.
      await withClient(url, async (other) => {
        await other.query('BEGIN')
        await other.query(
          `SELECT pg_advisory_xact_lock_shared($1::int4, (last_value / ${GUARD_UNIT})::int4)
           FROM "${schema}".ledger_seq_seq`,
          [guardClassOf(schema)],
        )
        const { rows } = await other.query<{ seq: string }>(
          `INSERT INTO "${schema}".ledger (tenant, account, type, delta, held_delta, debt_delta,
             balance_after, at)
           VALUES ('g', 'b', 'grant', 5, 0, 0, 5, 0) RETURNING seq`,
        )
        const pending = Number(rows[0]!.seq)
        // This process commits a later number meanwhile.
        await meter.debit('a', 1)
        const during = await meter.events({ after: first!.seq })
        expect(during.every((e) => e.seq < pending)).toBe(true)
        expect(during.some((e) => e.type === 'debited')).toBe(false)
        await other.query('COMMIT')
      })
      const after = await meter.events({ after: first!.seq })
      expect(after.map((e) => [e.account, e.type])).toEqual([
        ['b', 'granted'],
        ['a', 'debited'],
      ])
    } finally {
      await meter.close()
    }
  })
})
