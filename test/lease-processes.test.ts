/**
 * Leases across processes (DESIGN §2): app processes that each lease credits of the same account
 * never spend more than it has, settle all they served when they close, and a process that dies
 * loses at most its unsettled usage (`lease.size` credits per account), wherever it is killed.
 * Against PostgreSQL and against a Tollgate server (httpStore). Workers are plain Node scripts
 * over the built packages.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { createMeter, httpStore, type Meter } from '@tollgate/core'
import { postgresStore } from '@tollgate/postgres'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import {
  contend,
  countTypes,
  databaseUrl,
  dropSchemas,
  expectReplays,
  gateOnDatabase,
  kill,
  startWorker,
  stop,
} from './processes.js'

gateOnDatabase('lease tests across processes on PostgreSQL')

// Small leases and a fast flush, so that credits move between the processes during the run. The
// TTL is far above any stall of a loaded machine: a lease whose settlement arrives after its
// store hold lapsed charges nothing for what it served (the loss a dead process has), and here
// that would read as overspend.
const LEASE = { size: 25, ttlMs: 10_000, flushMs: 100 }
/** The lease of the process killed with unsettled usage: a short TTL, so the test sees it lapse. */
const CRASH_LEASE = { ...LEASE, ttlMs: 2_000, flushMs: 1_000 }
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

// Kill runs: leases small enough to be used up several times within one store round trip,
// which is when a process has more than one lease of an account open.
// The TTL is what each round waits after its kills for the dead leases to lapse; it is also how
// long a live process's settlement may take before its lease lapses under it (a loss too).
const KILL_LEASE = { size: 100, ttlMs: 4_000, flushMs: 100 }
const KILL_ROUNDS = 3
const KILLS_PER_ROUND = 4
const KILL_LOOPS = 16
/** Latest kill, in ms after the worker served its first request. */
const KILL_WITHIN_MS = 1_500
const KILL_GRANT = 100_000_000
/** Pauses between the requests of a loop; each process gets one at random. */
const KILL_PAUSES_MS = [0, 0, 1, 2, 5]

/** What one killed process served, and what of it reached the ledger. */
interface KillRun {
  account: string
  /** When it was killed, in ms after it first served. */
  afterMs: number
  /** Its pause between requests, per loop. */
  pauseMs: number
  /** Leases it took (store holds with `{ lease: true }`). */
  leases: number
  servedLeased: number
  servedStore: number
  /** Credits the commits of its leases charged. */
  leaseCommitted: number
  storeCommitted: number
  /** Credits served from leases and never charged. */
  loss: number
}

/** mulberry32: kill moments that a failing seed reproduces. */
function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

/**
 * SIGKILLs leasing processes at random moments of their run: rounds of
 * {@link KILLS_PER_ROUND} processes at once, each serving its own account from
 * {@link KILL_LOOPS} loops, each killed up to {@link KILL_WITHIN_MS} after it first served.
 * After each kill: the loss (requests served from its leases that no lease commit charged)
 * never exceeds `lease.size`, the requests the store served directly lost at most the one in
 * flight per loop (as for any process), the dead leases lapsed, and the ledger replays.
 */
async function expectBoundedLossOnKill(
  meter: Meter,
  store: Record<string, unknown>,
  label: string,
): Promise<KillRun[]> {
  const seed = Date.now() % 4_294_967_296
  const random = seeded(seed)
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-lease-kill-'))
  const runs: KillRun[] = []
  const children: ChildProcess[] = []
  try {
    for (let round = 0; round < KILL_ROUNDS; round++) {
      const killed = await Promise.all(
        Array.from({ length: KILLS_PER_ROUND }, async (_, i) => {
          const account = `kill-${round}-${i}`
          const out = join(dir, `${account}.served`)
          const afterMs = Math.floor(random() * KILL_WITHIN_MS)
          // Paces from flat out to a lease per few store round trips.
          const pauseMs = KILL_PAUSES_MS[Math.floor(random() * KILL_PAUSES_MS.length)] ?? 0
          await meter.grant(account, KILL_GRANT)
          const { child } = await startWorker(
            'lease-and-record.mjs',
            { ...store, account, lease: KILL_LEASE, loops: KILL_LOOPS, pauseMs, out },
            (l) => l === 'serving',
          )
          children.push(child)
          await sleep(afterMs)
          const alive = child.exitCode === null
          await kill(child)
          expect(alive, `${account} (seed ${seed}) died before it was killed`).toBe(true)
          return { account, out, afterMs, pauseMs }
        }),
      )
      for (const k of killed) runs.push(await lossOf(meter, k, seed))
    }
  } finally {
    // A failed round leaves none of its processes running.
    await Promise.all(children.map(kill))
    rmSync(dir, { recursive: true, force: true })
  }
  const worst = Math.max(...runs.map((r) => r.loss))
  console.info(
    `lease kills (${label}, seed ${seed}): ${runs.length} kills, max loss ${worst} credits ` +
      `(bound ${KILL_LEASE.size}); losses ${runs.map((r) => r.loss).join(' ')}; leases taken ` +
      `${runs.map((r) => r.leases).join(' ')}`,
  )
  // The runs did what they are for: processes turned over many leases before they died.
  expect(Math.max(...runs.map((r) => r.leases))).toBeGreaterThanOrEqual(5)
  return runs
}

/** A killed process: its account, the file of what it served, its pace and kill moment. */
interface KillTarget {
  account: string
  out: string
  afterMs: number
  pauseMs: number
}

async function lossOf(
  meter: Meter,
  { account, out, afterMs, pauseMs }: KillTarget,
  seed: number,
): Promise<KillRun> {
  // The dead process's holds lapse after the lease TTL (anything it had in flight has landed by
  // then); reading the balance applies the lapse.
  await vi.waitFor(
    async () => expect((await meter.balance(account, { fresh: true })).held).toBe(0),
    { timeout: 15_000, interval: 200 },
  )
  const served = readFileSync(out, 'latin1')
  let servedLeased = 0
  for (let i = 0; i < served.length; i++) if (served[i] === 'L') servedLeased++
  const servedStore = served.length - servedLeased
  const { balance, entries } = await expectReplays(meter, account)
  const leaseHolds = new Set(
    entries.filter((e) => e.type === 'hold' && e.metadata.lease === true).map((e) => e.holdId),
  )
  let leaseCommitted = 0
  let storeCommitted = 0
  for (const e of entries) {
    if (e.type !== 'commit') continue
    if (leaseHolds.has(e.holdId)) leaseCommitted -= e.delta
    else storeCommitted -= e.delta
  }
  const run: KillRun = {
    account,
    afterMs,
    pauseMs,
    leases: leaseHolds.size,
    servedLeased,
    servedStore,
    leaseCommitted,
    storeCommitted,
    loss: servedLeased - leaseCommitted,
  }
  const what = `${account} killed ${afterMs} ms in (seed ${seed}): ${JSON.stringify(run)}`
  // Charged is what was served, less what the dead process had not settled: never more.
  expect(balance.total, what).toBe(KILL_GRANT - leaseCommitted - storeCommitted)
  expect(run.loss, what).toBeGreaterThanOrEqual(0)
  expect(run.loss, what).toBeLessThanOrEqual(KILL_LEASE.size)
  // A hold the store served is lost only while its request is in flight: one per loop.
  expect(servedStore - storeCommitted, what).toBeGreaterThanOrEqual(0)
  expect(servedStore - storeCommitted, what).toBeLessThanOrEqual(KILL_LOOPS)
  return run
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
      { url: databaseUrl, tenant, account: 'crash', spend: 7, lease: CRASH_LEASE },
      (l) => l.startsWith('{'),
    )
    expect(await meter.balance('crash', { fresh: true })).toMatchObject({ total: 100, held: 25 })
    await kill(child)
    await new Promise((r) => setTimeout(r, CRASH_LEASE.ttlMs + 100))
    await meter.sweep()
    const { balance } = await expectReplays(meter, 'crash')
    // The hold lapsed: all 100 are back. The 7 served were never charged (≤ one lease).
    expect(balance).toMatchObject({ total: 100, held: 0, available: 100 })
  }, 60_000)

  it('processes killed at random moments lose at most lease.size each', async () => {
    await expectBoundedLossOnKill(meter, { url: databaseUrl, tenant }, 'PostgreSQL')
  }, 120_000)
})

/**
 * The lease scenarios through a Tollgate server process started with `serverArgs()` (in
 * beforeAll, so a skipped block starts nothing), the app processes using httpStore.
 */
function describeThroughServer(
  name: string,
  serverArgs: () => Record<string, unknown>,
  cleanup: () => Promise<void>,
  skip = false,
) {
  describe.skipIf(skip)(name, () => {
    let server: { child: ChildProcess; url: string } | undefined
    let apiKey = ''
    let meter: Meter
    beforeAll(async () => {
      const { child, line } = await startWorker('tollgate-server.mjs', serverArgs(), () => true)
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
      await cleanup()
    }, 30_000)

    it('4 processes leasing one account through the server never overspend it', async () => {
      await expectNoOverspend(meter, 'hot', { url: server!.url, apiKey })
    }, 120_000)

    it('processes killed at random moments lose at most lease.size each', async () => {
      await expectBoundedLossOnKill(meter, { url: server!.url, apiKey }, name)
    }, 120_000)
  })
}

const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-lease-server-'))
describeThroughServer(
  'leases: app processes through one Tollgate server (httpStore) on PGlite',
  () => ({ dataDir }),
  async () => rmSync(dataDir, { recursive: true, force: true }),
)

const schema = `tg_test_lease_procs_${process.pid}_${Date.now().toString(36)}`
describeThroughServer(
  'leases: app processes through one Tollgate server (httpStore) on PostgreSQL',
  () => ({ url: databaseUrl, schema }),
  async () => {
    await dropSchemas(schema)
  },
  !databaseUrl,
)
