/**
 * Many processes, one database: the invariants of DESIGN section 1 hold across processes, a
 * killed process loses no credit, and a killed PGlite process loses no acknowledged operation.
 * The workers (test/workers/*.mjs) are plain Node scripts over the built packages, as an app
 * would run them.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createMeter, type Meter } from '@tollgate/core'
import { pgliteStore, postgresStore } from '@tollgate/postgres'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  contend as contendWith,
  countTypes,
  databaseUrl,
  expectManyAccountsSettle,
  expectReplays,
  gateOnDatabase,
  kill,
  ledgerOf,
  startWorker,
} from './processes.js'

const url = databaseUrl
gateOnDatabase('cross-process PostgreSQL tests')

describe.skipIf(!url)('PostgreSQL: many processes, one database', () => {
  const tenant = `procs_${process.pid}_${Date.now().toString(36)}`
  // Made in beforeAll: the body of a skipped describe still runs, its hooks do not.
  let meter: Meter
  beforeAll(() => {
    meter = createMeter({ store: postgresStore({ connectionString: url! }), tenant })
  })
  afterAll(() => meter?.close())

  const WORKERS = 4
  const LOOPS = 32
  const contend = (accounts: string[], attempts: number) =>
    contendWith({ url, tenant }, accounts, attempts, { processes: WORKERS, loops: LOOPS })

  it(`${WORKERS} processes × ${LOOPS} loops, one account with 1,000 credits, 3,000 attempts`, async () => {
    await meter.grant('hot', 1_000)
    const r = await contend(['hot'], 3_000)
    expect(r.errors).toEqual([])
    expect(r.ok).toBe(1_000)
    expect(r.insufficient).toBe(2_000)
    const { balance, entries } = await expectReplays(meter, 'hot')
    expect(balance).toMatchObject({ total: 0, held: 0, available: 0, debt: 0 })
    // Every hold resolved, each by exactly one commit.
    expect(countTypes(entries)).toEqual({ grant: 1, hold: 1_000, commit: 1_000 })
    expect(-entries.filter((e) => e.type === 'commit').reduce((s, e) => s + e.delta, 0)).toBe(1_000)
  }, 120_000)

  it(`${WORKERS} processes × ${LOOPS} loops over 1,000 accounts with 2 credits each, 3 attempts each`, async () => {
    await expectManyAccountsSettle(meter, contend)
  }, 180_000)

  it('a process killed while holding credits: after the TTL a sweep returns every held credit', async () => {
    await meter.grant('crash', 100)
    const { child, line } = await startWorker(
      'hold-and-wait.mjs',
      { url, tenant, account: 'crash', holds: 5, amount: 7, ttlMs: 1_000 },
      (l) => l.startsWith('{'),
    )
    const held = (JSON.parse(line) as { held: string[] }).held
    expect(held).toHaveLength(5)
    expect(await meter.balance('crash', { fresh: true })).toMatchObject({
      total: 100,
      held: 35,
      available: 65,
    })
    await kill(child)
    const before = await ledgerOf(meter, 'crash')
    await new Promise((r) => setTimeout(r, 1_100))
    const swept = await meter.sweep()
    expect(swept.accounts).toBeGreaterThanOrEqual(1)
    const { balance, entries } = await expectReplays(meter, 'crash')
    expect(balance).toMatchObject({ total: 100, held: 0, available: 100 })
    // Nothing else changed: the only new entries are the five TTL releases.
    const added = entries.slice(before.length)
    expect(added.map((e) => [e.type, e.holdId, e.delta, e.heldDelta])).toEqual(
      held.map((id) => ['release', id, 0, -7]),
    )
    expect(entries.slice(0, before.length)).toEqual(before)
  }, 60_000)
})

describe('PGlite: a process killed mid-load loses no acknowledged operation', () => {
  const dirs: string[] = []
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })

  it('reopens with every acknowledged operation present and a consistent ledger', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-pglite-'))
    dirs.push(dataDir)
    const acked = new Set<number>()
    const { child } = await startWorker(
      'pglite-writer.mjs',
      { dataDir, account: 'durable', concurrency: 8 },
      (l) => l.startsWith('ack ') && acked.size >= 300,
      (l) => {
        if (l.startsWith('ack ')) acked.add(Number(l.slice(4)))
      },
    )
    // Killed in the middle of load: operations are in flight at this moment.
    await kill(child)
    expect(acked.size).toBeGreaterThanOrEqual(300)

    const meter = createMeter({ store: pgliteStore({ dataDir }) })
    try {
      const { balance, entries } = await expectReplays(meter, 'durable')
      const keys = new Set(entries.map((e) => e.idempotencyKey))
      const missing = [...acked].filter((n) => !keys.has(`op-${n}`))
      expect(missing).toEqual([])
      // Every operation present (acknowledged or not) was applied whole.
      const grants = entries.filter((e) => e.type === 'grant' && e.idempotencyKey !== 'seed')
      const debits = entries.filter((e) => e.type === 'debit')
      expect(balance.total).toBe(1_000_000 + 2 * grants.length - debits.length)
      // The store still works after the crash.
      await meter.debit('durable', 1)
    } finally {
      await meter.close()
    }
  }, 120_000)
})
