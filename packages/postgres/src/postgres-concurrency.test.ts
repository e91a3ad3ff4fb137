/**
 * Several stores on one PostgreSQL schema, as several app processes would be: group commit with
 * batches in flight, accounts created from two sides at once, idempotency keys raced across
 * processes, sweepers claiming different accounts, pruning.
 */
import { createMeter, type Meter } from '@tollgate/core'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { postgresStore } from './postgres-store.js'
import type { PostgresStore } from './sql-store.js'
import {
  describePostgres,
  dropSchemaAfterAll,
  expectLedgerReplays,
  settle,
  uniqueSchema,
  withClient,
} from './test-support.js'

const HOUR = 3_600_000
const DAY = 24 * HOUR
let tenantNo = 0

describePostgres('postgresStore under concurrency', (url) => {
  const schema = uniqueSchema('conc')
  let one: PostgresStore
  let two: PostgresStore
  let now = Date.UTC(2030, 0, 1)
  const clock = () => now
  /** One meter per store (process), on one tenant. */
  const meters = (): [Meter, Meter] => {
    tenantNo += 1
    const tenant = `t${tenantNo}`
    return [
      createMeter({ store: one, tenant, clock, cache: false }),
      createMeter({ store: two, tenant, clock, cache: false }),
    ]
  }

  beforeAll(async () => {
    one = postgresStore({ connectionString: url, schema, poolSize: 5 })
    two = postgresStore({ connectionString: url, schema, poolSize: 5 })
    await one.migrate()
    await two.migrate()
  })
  afterAll(async () => {
    await one?.close()
    await two?.close()
  })
  dropSchemaAfterAll(url, schema)

  /**
   * `workers` loops running `rounds` steps each, all at once. A random pause before each step
   * spreads arrivals out, as requests of a real app arrive (in lockstep, every batch would simply
   * hold one step of every worker).
   */
  async function work(workers: number, rounds: number, step: (w: number) => Promise<unknown>) {
    await Promise.all(
      Array.from({ length: workers }, async (_, w) => {
        for (let r = 0; r < rounds; r++) {
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 3))
          await step(w)
        }
      }),
    )
  }

  it('coalesces a hot account into few transactions; an account in flight waits for the next batch', async () => {
    const [m] = meters()
    await m.grant('hot', 100_000)
    one.resetStats()
    const workers = 32
    const rounds = 10
    await work(workers, rounds, async () => {
      const hold = await m.reserve('hot', 3)
      await hold.commit(2)
    })
    const stats = one.stats()
    const ops = 2 * workers * rounds
    console.log(
      `[group commit] ${ops} reserve/commit on one account, ${workers} workers:`,
      JSON.stringify(stats),
    )
    expect(stats.operations).toBe(ops)
    expect(stats.batches).toBeLessThan(ops / 4)
    // The process never contended with itself for the row lock, so nothing was retried.
    expect(stats.retries).toBe(0)
    expect(await expectLedgerReplays(m, 'hot')).toMatchObject({ total: 100_000 - ops, held: 0 })
  })

  it('runs batches of different accounts in flight at once', async () => {
    const [m] = meters()
    one.resetStats()
    const workers = 32
    const rounds = 10
    await work(workers, rounds, async (w) => {
      await m.grant(`acct-${w}`, 10)
      await m.debit(`acct-${w}`, 3)
    })
    const stats = one.stats()
    const ops = 2 * workers * rounds
    console.log(`[group commit] ${ops} ops on ${workers} accounts:`, JSON.stringify(stats))
    expect(stats.operations).toBe(ops)
    expect(stats.batches).toBeLessThan(ops / 2)
    expect(stats.peakInFlight).toBeGreaterThan(1)
    for (const w of [0, 7, 31]) {
      expect(await expectLedgerReplays(m, `acct-${w}`)).toMatchObject({ total: 7 * rounds })
    }
  })

  it('two processes creating the same new accounts at once: every grant lands', async () => {
    const [a, b] = meters()
    const accounts = Array.from({ length: 30 }, (_, i) => `new-${i}`)
    one.resetStats()
    two.resetStats()
    await Promise.all(accounts.flatMap((acct) => [a.grant(acct, 10), b.grant(acct, 5)]))
    // The loser of the race to create the rows ran its batch again (retries), if they overlapped.
    console.log(`[two processes] retries: ${one.stats().retries} + ${two.stats().retries}`)
    for (const acct of accounts) {
      expect((await expectLedgerReplays(a, acct)).total).toBe(15)
    }
  })

  it('two processes on one hot account: no lost update', async () => {
    const [a, b] = meters()
    await a.grant('shared', 1_000)
    await Promise.all([
      ...Array.from({ length: 100 }, () => a.debit('shared', 1)),
      ...Array.from({ length: 100 }, () => b.debit('shared', 2)),
    ])
    expect(await expectLedgerReplays(a, 'shared')).toMatchObject({ total: 700 })
  })

  it('one idempotency key raced by two processes on two accounts: one wins, one conflicts', async () => {
    for (let round = 0; round < 5; round++) {
      const [a, b] = meters()
      const results = await Promise.all([
        settle(a.grant('left', 10, { idempotencyKey: 'race' })),
        settle(b.grant('right', 10, { idempotencyKey: 'race' })),
      ])
      const codes = results.map((r) => ('error' in r ? r.error : 'ok')).sort()
      expect(codes).toEqual(['idempotency_conflict', 'ok'])
      const totals = [
        (await a.balance('left', { fresh: true })).total,
        (await a.balance('right', { fresh: true })).total,
      ]
      expect(totals.sort()).toEqual([0, 10])
    }
  })

  it('concurrent sweepers claim different accounts (SKIP LOCKED and a lease)', async () => {
    const [a, b] = meters()
    const accounts = Array.from({ length: 12 }, (_, i) => `sweep-${i}`)
    for (const acct of accounts) {
      await a.grant(acct, 100)
      await a.reserve(acct, 10, { ttlMs: 1_000 })
    }
    now += HOUR
    const tenant = a.tenant
    const [x, y] = await Promise.all([
      one.dueAccounts(tenant, now, 8),
      two.dueAccounts(tenant, now, 8),
    ])
    expect(x.length + y.length).toBe(12)
    expect(new Set([...x, ...y]).size).toBe(12)
    // Claimed: nobody else gets them while the lease runs.
    expect(await one.dueAccounts(tenant, now, 100)).toEqual([])
    // Touching an account applies what was due and ends its claim.
    await a.balance(x[0]!, { fresh: true })
    // The meter's sweep works through the rest, whoever claimed them.
    expect(await b.sweep()).toMatchObject({ accounts: 0 })
    for (const acct of accounts) await b.balance(acct, { fresh: true })
    for (const acct of accounts) expect((await expectLedgerReplays(a, acct)).held).toBe(0)
    expect(await one.dueAccounts(tenant, now, 100)).toEqual([])
  })

  it('prune() drops idempotency records and resolved holds past retention, nothing else', async () => {
    const [m] = meters()
    await m.grant('p', 100, { idempotencyKey: 'old' })
    const done = await m.reserve('p', 10)
    await done.commit()
    now += 3 * DAY
    await m.grant('p', 1, { idempotencyKey: 'new' })
    const pending = await m.reserve('p', 10)
    const pruned = await one.prune(m.tenant, now - 2 * DAY)
    expect(pruned).toBe(2) // the 'old' key and the committed hold
    // The pending hold is still there.
    await expect(pending.release()).resolves.toMatchObject({ freed: 10 })
    // A pruned hold is unknown now; the kept key still replays.
    await expect(done.commit()).rejects.toMatchObject({ code: 'not_found' })
    expect(await m.grant('p', 1, { idempotencyKey: 'new' })).toMatchObject({ replayed: true })
    const rows = await withClient(url, async (c) => {
      const r = await c.query(`SELECT key FROM "${schema}".idempotency WHERE tenant = $1`, [
        m.tenant,
      ])
      return r.rows.map((row: { key: string }) => row.key)
    })
    expect(rows).toEqual(['new'])
  })
})
