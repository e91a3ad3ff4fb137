/**
 * Leases across processes (DESIGN §2): app processes that each lease credits of the same account
 * never spend more than it has, settle all they served when they close, and a process that dies
 * loses at most its unsettled usage (one lease). Against PostgreSQL and against a Tollgate server
 * (httpStore). Workers are plain Node scripts over the built packages.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createMeter, httpStore, type Meter } from '@tollgate/core'
import { postgresStore } from '@tollgate/postgres'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  contend,
  countTypes,
  databaseUrl,
  expectReplays,
  gateOnDatabase,
  kill,
  startWorker,
  stop,
} from './processes.js'

gateOnDatabase('lease tests across processes on PostgreSQL')

// Small leases and a fast flush, so that credits move between the processes during the run.
const LEASE = { size: 25, ttlMs: 2_000, flushMs: 100 }
const CREDITS = 1_000
const ATTEMPTS = 3_000

/**
 * The contention scenario: 4 processes × 32 loops over one account. Every pair a process served
 * was charged exactly once: commits sum to the pairs served, which never exceed the credits.
 */
async function expectNoOverspend(meter: Meter, account: string, store: Record<string, unknown>) {
  await meter.grant(account, CREDITS)
  const r = await contend({ ...store, lease: LEASE }, [account], ATTEMPTS)
  expect(r.errors).toEqual([])
  expect(r.ok + r.insufficient).toBe(ATTEMPTS)
  expect(r.ok).toBeLessThanOrEqual(CREDITS)
  // Most credits get spent: a refusal only happens while other processes hold the rest.
  expect(r.ok).toBeGreaterThan(CREDITS / 2)
  const { balance, entries } = await expectReplays(meter, account)
  // The processes closed their meters: every lease settled, nothing is held, and what was
  // charged is exactly what was served.
  expect(balance).toMatchObject({ total: CREDITS - r.ok, held: 0, debt: 0 })
  const commits = entries.filter((e) => e.type === 'commit')
  expect(-commits.reduce((s, e) => s + e.delta, 0)).toBe(r.ok)
  const counts = countTypes(entries)
  // One hold and one commit per lease, far fewer than the pairs served.
  expect(counts.hold).toBe(counts.commit)
  expect(counts.hold).toBeLessThan(r.ok)
  return r
}

describe.skipIf(!databaseUrl)('leases: processes on one PostgreSQL database', () => {
  const tenant = `lease_${process.pid}_${Date.now().toString(36)}`
  let meter: Meter
  beforeAll(() => {
    meter = createMeter({ store: postgresStore({ connectionString: databaseUrl! }), tenant })
  })
  afterAll(() => meter?.close())

  it('4 processes leasing one account with 1,000 credits never overspend it', async () => {
    await expectNoOverspend(meter, 'hot', { url: databaseUrl, tenant })
  }, 120_000)

  it('a process killed with unsettled usage loses at most one lease', async () => {
    await meter.grant('crash', 100)
    const { child } = await startWorker(
      'lease-and-die.mjs',
      { url: databaseUrl, tenant, account: 'crash', spend: 7, lease: { ...LEASE, flushMs: 1_000 } },
      (l) => l.startsWith('{'),
    )
    expect(await meter.balance('crash', { fresh: true })).toMatchObject({ total: 100, held: 25 })
    await kill(child)
    await new Promise((r) => setTimeout(r, LEASE.ttlMs + 100))
    await meter.sweep()
    const { balance } = await expectReplays(meter, 'crash')
    // The hold lapsed: all 100 are back. The 7 served were never charged (≤ one lease).
    expect(balance).toMatchObject({ total: 100, held: 0, available: 100 })
  }, 60_000)
})

describe('leases: app processes through one Tollgate server (httpStore)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-lease-server-'))
  let server: { child: ChildProcess; url: string } | undefined
  let apiKey = ''
  let meter: Meter
  beforeAll(async () => {
    const { child, line } = await startWorker('tollgate-server.mjs', { dataDir }, () => true)
    const { url, adminKey } = JSON.parse(line) as { url: string; adminKey: string }
    server = { child, url }
    const res = await fetch(`${url}/v1/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tenant: 'leases', name: 'lease test' }),
    })
    apiKey = ((await res.json()) as { key: string }).key
    meter = createMeter({ store: httpStore({ url, apiKey }), cache: false })
  }, 60_000)
  afterAll(async () => {
    await meter?.close()
    if (server) expect(await stop(server.child)).toBe(0)
    rmSync(dataDir, { recursive: true, force: true })
  }, 30_000)

  it('4 processes leasing one account through the server never overspend it', async () => {
    await expectNoOverspend(meter, 'hot', { url: server!.url, apiKey })
  }, 120_000)
})
