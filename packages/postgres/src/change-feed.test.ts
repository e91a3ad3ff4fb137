/**
 * The outbox and change feed on real PostgreSQL, beyond the conformance rules: the feed's
 * payload limit, the notifier that gathers committed batches' changes into few notices (and
 * says "everything changed" beyond its bound), the feed's recovery after the listening
 * connection is killed, and the in-flight guard that keeps `events()` from reading past a batch
 * that has not committed yet.
 */
import { createMeter } from '@tollgate/core'
import type { AccountChange, Store } from '@tollgate/core/store'
import { describe, expect, it } from 'vitest'
import {
  ChangeFeed,
  channelOf,
  EVERYTHING,
  EVERYTHING_REASON,
  MAX_CHUNK_BYTES,
  noticePayloads,
  parseNotice,
} from './change-feed.js'
import { Notifier } from './notifier.js'
import { PgDriver } from './pg-driver.js'
import { postgresStore } from './postgres-store.js'
import { guardClassOf } from './sql-store.js'
import { GUARD_UNIT } from './statements.js'
import { describePostgres, dropSchemaAfterAll, uniqueSchema, withClient } from './test-support.js'

describe('change notifications', () => {
  it('split a batch of many accounts into payloads under 8000 bytes, each whole', () => {
    const pairs: [string, string][] = []
    for (let i = 0; i < 2_000; i++) pairs.push([`tenant-${i % 3}`, `account-é-${i}`])
    // With the largest sequence number there is.
    const payloads = noticePayloads(Number.MAX_SAFE_INTEGER, pairs)
    expect(payloads.length).toBeGreaterThan(1)
    const back: AccountChange[] = []
    for (const payload of payloads) {
      expect(Buffer.byteLength(payload)).toBeLessThan(8_000)
      expect(Buffer.byteLength(payload)).toBeLessThanOrEqual(MAX_CHUNK_BYTES + 30)
      const changes = parseNotice(payload)
      if (changes === EVERYTHING) throw new Error('a list of accounts read as everything')
      back.push(...changes)
    }
    expect(back.map((c) => [c.tenant, c.account])).toEqual(pairs)
  })

  it('ignore payloads this store did not write', () => {
    expect(parseNotice('hello')).toEqual([])
    expect(parseNotice('{"s":"x","c":[]}')).toEqual([])
    expect(parseNotice('{"s":"x","all":true}')).toEqual([])
    expect(parseNotice('{"s":3,"all":1}')).toEqual([])
    expect(parseNotice('{"s":3,"c":[["t"],[1,2],["t","a"]]}')).toEqual([
      { tenant: 't', account: 'a', seq: 3 },
    ])
  })

  it('say "everything changed" in one payload that reads back as such', () => {
    const [payload, ...more] = noticePayloads(7, EVERYTHING)
    expect(more).toEqual([])
    expect(parseNotice(payload!)).toBe(EVERYTHING)
  })
})

const NOTIFY_SQL = 'SELECT pg_notify($1::text, p) FROM unnest($2::text[]) AS p'

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

  it('the notifier gathers committed changes into few notices, each account once, on the real feed', async () => {
    const channel = channelOf(`${schema}_notifier`)
    const driver = new PgDriver({
      pool: {
        own: true,
        connectionString: url,
        max: 2,
        applicationName: 'tg-test',
        connectTimeoutMs: 5_000,
      },
      prepare: true,
    })
    const feed = new ChangeFeed(channel, driver.listen.bind(driver))
    const heard: AccountChange[] = []
    let notices = 0
    const notifier = new Notifier(async (payloads) => {
      notices++
      await driver.query({ name: 'tg_test_notify', text: NOTIFY_SQL }, [channel, payloads])
    })
    try {
      let wake: () => void = () => {}
      await feed.watch({
        onChanges: (changes) => {
          heard.push(...changes)
          wake()
        },
      })
      const all = new Promise<void>((resolve) => {
        wake = () => {
          if (heard.length >= 4) resolve()
        }
      })
      notifier.add(5, [
        ['t', 'a'],
        ['t', 'b'],
      ])
      notifier.add(3, [
        ['t', 'a'],
        ['u', 'a'],
      ])
      notifier.add(9, [['t', 'c']])
      await notifier.flush()
      await all
      // Handed over together, sent as one notice: each account once, at the highest seq.
      expect(notices).toBe(1)
      expect(heard.map((c) => [c.tenant, c.account, c.seq])).toEqual([
        ['t', 'a', 9],
        ['t', 'b', 9],
        ['u', 'a', 9],
        ['t', 'c', 9],
      ])
    } finally {
      await feed.close()
      await driver.close()
    }
  })

  it('beyond its bound the notifier says everything changed, which watchers hear as a drop and a return', async () => {
    const channel = channelOf(`${schema}_overflow`)
    const driver = new PgDriver({
      pool: {
        own: true,
        connectionString: url,
        max: 2,
        applicationName: 'tg-test',
        connectTimeoutMs: 5_000,
      },
      prepare: true,
    })
    const feed = new ChangeFeed(channel, driver.listen.bind(driver))
    const notifier = new Notifier(async (payloads) => {
      await driver.query({ name: 'tg_test_notify', text: NOTIFY_SQL }, [channel, payloads])
    }, 2)
    try {
      const status: [boolean, string | undefined][] = []
      const heard: AccountChange[] = []
      let back: () => void = () => {}
      const returned = new Promise<void>((resolve) => {
        back = resolve
      })
      await feed.watch({
        onChanges: (changes) => heard.push(...changes),
        onStatus: (up, reason) => {
          status.push([up, reason])
          if (up) back()
        },
      })
      notifier.add(1, [
        ['t', 'a'],
        ['t', 'b'],
      ])
      notifier.add(2, [['t', 'c']])
      await notifier.flush()
      await returned
      expect(status).toEqual([
        [false, EVERYTHING_REASON],
        [true, undefined],
      ])
      expect(heard).toEqual([])
    } finally {
      await feed.close()
      await driver.close()
    }
  })

  it('a rolled-back batch is never notified; what commits after it is', async () => {
    const store = postgresStore({ connectionString: url, schema, poolSize: 3 })
    // Under the meter's checks: the account `poison` reaches the database with a NUL, which it
    // refuses, so the batch that carries it rolls back and the rest of it runs again without it.
    const tampered: Store = {
      kind: store.kind,
      execute: (req) =>
        store.execute(req.account === 'poison' ? { ...req, account: 'poison\u0000' } : req),
      ledger: (...args) => store.ledger(...args),
      createCodes: (...args) => store.createCodes(...args),
      dueAccounts: (...args) => store.dueAccounts(...args),
      prune: (...args) => store.prune(...args),
      close: () => store.close(),
    }
    const meter = createMeter({ store: tampered, tenant: 'rb', cache: false })
    try {
      await store.migrate()
      const heard: AccountChange[] = []
      let wake: () => void = () => {}
      const sub = await store.watch({
        onChanges: (changes) => {
          heard.push(...changes)
          wake()
        },
      })
      const seen = new Promise<void>((resolve) => {
        wake = () => {
          if (heard.some((c) => c.account === 'after')) resolve()
        }
      })
      // One tick: both reach the store before the batch leaves.
      const results = await Promise.allSettled([meter.grant('x', 1), meter.grant('poison', 1)])
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected'])
      await meter.grant('after', 1)
      await seen
      const accounts = heard.filter((c) => c.tenant === 'rb').map((c) => c.account)
      expect([...new Set(accounts)].sort()).toEqual(['after', 'x'])
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
