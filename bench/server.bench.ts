/**
 * What the network costs: reserve+commit pairs per second through `httpStore()` to a Tollgate
 * server, next to the same store in process: a file-backed PGlite store (the default of
 * `tollgate serve`) and PostgreSQL (`tollgate serve --database-url`, the shared ledger of many
 * app instances); each on one hot account and on 1,000 accounts.
 *
 *   in process:  meter → pgliteStore({ dataDir }) | postgresStore()
 *   over HTTP:   meter → httpStore() ──HTTP──▶ createServer() in a child process → the same
 *
 * Every scenario runs in a fresh process (its own JIT state and heap), which also generates the
 * load: `--concurrency` loops of reserve → commit. The server runs in a child process of its own,
 * so the client and the server only share the machine's cores. Scenarios run interleaved, round
 * after round; the table reports medians.
 *
 *   pnpm --filter @tollgate/bench bench:server [--rounds 3] [--duration 5] [--warmup 1]
 *                                              [--concurrency 64] [--connections 64]
 *                                              [--only http-hot,local-hot] [--quick]
 *
 * Scenarios: local-hot, http-hot, http-hot-16, local-many, http-many (PGlite, httpStore
 * without batching: one operation per request); pg-local-hot, pg-http-hot, pg-http-hot-single,
 * pg-local-many, pg-http-many, pg-http-many-single (PostgreSQL at TOLLGATE_BENCH_DATABASE_URL,
 * default schema, a tenant per run; `-single`: without batching). The HTTP ones without
 * batching open one connection per loop (`--connections`), except `http-hot-16`, which caps
 * httpStore at 16: the server's group commit batches what arrives at once, so fewer
 * connections make smaller transactions. With batching (httpStore's default), operations that
 * wait together leave in one `/v1/store/batch` request.
 *
 * The PostgreSQL scenarios also count what the group commit did (the store's stats, in the
 * server process over HTTP): transactions per pair, operations per transaction, batch requests
 * per pair and WAL fsyncs per pair. Unlike pairs per second, these hold under load.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { createMeter, httpStore, type Store } from '@tollgate/core'
import { type PostgresStore, pgliteStore, postgresStore, type StoreStats } from '@tollgate/postgres'
import { createServer } from '@tollgate/server'
import pg from 'pg'
import {
  DATABASE_URL,
  machine,
  markdownTable,
  matchesOnly,
  postgresUnreachable,
  type Table,
  writeResult,
} from './common.js'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    concurrency: { type: 'string', default: '64' },
    /** httpStore connections of the HTTP scenarios (default: one per loop); `http-hot-16` keeps 16. */
    connections: { type: 'string' },
    /** httpStore's maxBatch in the batched scenarios (default: httpStore's own, 64). */
    'max-batch': { type: 'string' },
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    /** Internal: run one scenario and print its result as JSON. */
    scenario: { type: 'string' },
    /**
     * Internal: serve a PGlite store in this data directory, or PostgreSQL for `postgres` (a
     * child of an HTTP scenario).
     */
    serve: { type: 'string' },
    /** Internal: write a CPU profile of the server child into this directory. */
    'server-prof': { type: 'string' },
  },
})
const ROUNDS = Number(values.rounds ?? (values.quick ? 1 : 3))
const SECONDS = Number(values.duration ?? (values.quick ? 1.5 : 5))
const WARMUP = Number(values.warmup ?? (values.quick ? 0.5 : 1))
const CONCURRENCY = Number(values.concurrency)
const CONNECTIONS = Number(values.connections ?? values.concurrency)
const MANY = 1_000
const CREDITS = 2 ** 50
const self = fileURLToPath(import.meta.url)

const SCENARIOS = {
  'local-hot': 'pglite in process: 1 hot account',
  'http-hot': `httpStore → server (pglite), ${CONNECTIONS} connections: 1 hot account`,
  'http-hot-16': 'httpStore → server (pglite), 16 connections: 1 hot account',
  'local-many': 'pglite in process: 1,000 accounts',
  'http-many': `httpStore → server (pglite), ${CONNECTIONS} connections: 1,000 accounts`,
  'pg-local-hot': 'postgres in process: 1 hot account',
  'pg-http-hot': 'httpStore, batched → server (postgres): 1 hot account',
  'pg-http-hot-single': `httpStore, one op per request, ${CONNECTIONS} connections → server (postgres): 1 hot account`,
  'pg-local-many': 'postgres in process: 1,000 accounts',
  'pg-http-many': 'httpStore, batched → server (postgres): 1,000 accounts',
  'pg-http-many-single': `httpStore, one op per request, ${CONNECTIONS} connections → server (postgres): 1,000 accounts`,
} as const
type Scenario = keyof typeof SCENARIOS

interface Result {
  /** Pairs per second. */
  ops: number
  p50: number
  p99: number
  /** CPU (user + system) per pair of the process that runs the meter, µs. */
  clientUs: number
  /** CPU per pair of the server process, µs (HTTP scenarios only). */
  serverUs: number | null
  /** PostgreSQL scenarios: what the store's group commit did over the measurement. */
  commits: CommitCounts | null
}

/** Load-robust counts of a PostgreSQL scenario, over the measurement. */
interface CommitCounts {
  /** Store operations (two per pair). */
  operations: number
  /** Transactions that committed a batch. */
  batches: number
  /** Committed batches by size (power-of-two ranges). */
  batchSizes: Record<string, number>
  /** Operations that waited for a row lock in a lane of their own. */
  contended: number
  retries: number
  /** Turns of the event loop in which the store was called: batch requests, over HTTP. */
  arrivals: number
  /** `wal_sync` of `pg_stat_wal` (the whole server's: other clients of it count too). */
  walSyncs: number
}

// ---- counting what the store sees ------------------------------------------------------------

/** A store's counts at one moment: its stats and the turns in which it was called. */
interface Snapshot {
  stats: StoreStats
  arrivals: number
}

/**
 * `store`, counting the turns of the event loop in which `execute` is called: on the server,
 * each batch request's operations start in one turn, so this counts batch requests.
 */
function countArrivals(store: PostgresStore): { store: PostgresStore; snapshot: () => Snapshot } {
  let arrivals = 0
  let inTurn = false
  const endTurn = () => {
    inTurn = false
  }
  const execute: Store['execute'] = (req) => {
    if (!inTurn) {
      inTurn = true
      arrivals++
      setImmediate(endTurn)
    }
    return store.execute(req)
  }
  const proxy = new Proxy(store, {
    get(target, name) {
      if (name === 'execute') return execute
      const value = Reflect.get(target, name, target) as unknown
      // Methods use private fields: they run on the store, not on the proxy.
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  return { store: proxy, snapshot: () => ({ stats: store.stats(), arrivals }) }
}

/** `wal_sync` of `pg_stat_wal`: fsyncs of the WAL by the whole PostgreSQL server. */
async function walSyncs(): Promise<number> {
  const client = new pg.Client({ connectionString: DATABASE_URL })
  await client.connect()
  try {
    const { rows } = await client.query<{ n: string }>(
      'SELECT wal_sync::text AS n FROM pg_stat_wal',
    )
    return Number(rows[0]?.n ?? 0)
  } finally {
    await client.end()
  }
}

function countsBetween(a: Snapshot, b: Snapshot, walSyncs: number): CommitCounts {
  const batchSizes: Record<string, number> = {}
  for (const [range, n] of Object.entries(b.stats.batchSizes)) {
    const d = n - (a.stats.batchSizes[range] ?? 0)
    if (d > 0) batchSizes[range] = d
  }
  return {
    operations: b.stats.operations - a.stats.operations,
    batches: b.stats.batches - a.stats.batches,
    batchSizes,
    contended: b.stats.contended - a.stats.contended,
    retries: b.stats.retries - a.stats.retries,
    arrivals: b.arrivals - a.arrivals,
    walSyncs,
  }
}

// ---- the server child of an HTTP scenario ----------------------------------------------------

if (values.serve !== undefined) {
  // The shared PostgreSQL knows keys from earlier runs and generates no bootstrap key: each
  // run registers an admin key of its own.
  const ownKey =
    values.serve === 'postgres'
      ? `tg_sk_bench${randomBytes(4).toString('hex')}_${randomBytes(24).toString('base64url')}`
      : undefined
  const counted = countArrivals(
    values.serve === 'postgres'
      ? postgresStore({ connectionString: DATABASE_URL })
      : pgliteStore({ dataDir: values.serve }),
  )
  const server = createServer({
    adminKey: ownKey,
    store: counted.store,
    logger: false,
    sweepIntervalMs: 0,
  })
  const { url, adminKey } = await server.listen({ port: 0, host: '127.0.0.1' })
  process.on('message', (m) => {
    if (m === 'cpu') process.send!({ cpu: process.cpuUsage(), snapshot: counted.snapshot() })
  })
  process.once('SIGTERM', () => {
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  })
  process.send!({ url, adminKey: adminKey ?? ownKey })
}

// ---- one scenario, in a process of its own ---------------------------------------------------

/** The server's CPU time so far, and its store's counts. */
async function cpuOf(child: ChildProcess): Promise<{ cpu: NodeJS.CpuUsage; snapshot: Snapshot }> {
  const reply = once(child, 'message') as Promise<[{ cpu: NodeJS.CpuUsage; snapshot: Snapshot }]>
  child.send('cpu')
  return (await reply)[0]
}

const cpuUs = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage) => b.user - a.user + b.system - a.system

async function run(scenario: Scenario): Promise<Result> {
  const dataDir = mkdtempSync(join(os.tmpdir(), 'tollgate-bench-server-'))
  let child: ChildProcess | undefined
  try {
    let store: Store
    let localSnapshot: (() => Snapshot) | undefined
    const onPostgres = scenario.startsWith('pg-')
    if (scenario.includes('http')) {
      const prof = values['server-prof']
      child = spawn(
        process.execPath,
        [
          ...process.execArgv,
          ...(prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : []),
          self,
          '--serve',
          onPostgres ? 'postgres' : dataDir,
        ],
        { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
      )
      const [{ url, adminKey }] = (await once(child, 'message')) as [
        { url: string; adminKey: string },
      ]
      // The server batches what arrives together into one transaction (group commit), so the
      // connections cap its batches: 16 connections, at most 16 operations per transaction.
      store = httpStore({
        url,
        apiKey: adminKey,
        connections: scenario === 'http-hot-16' ? 16 : CONNECTIONS,
        // The PGlite scenarios keep their earlier shape (one operation per request).
        batch: onPostgres && !scenario.endsWith('-single'),
        ...(values['max-batch'] ? { maxBatch: Number(values['max-batch']) } : {}),
      })
    } else if (onPostgres) {
      const counted = countArrivals(postgresStore({ connectionString: DATABASE_URL }))
      store = counted.store
      localSnapshot = counted.snapshot
    } else {
      store = pgliteStore({ dataDir })
    }
    // An admin key acting on a tenant (its name rides on every request). On PostgreSQL, the
    // default schema holds data and statistics already (see postgres.bench.ts): a tenant per run.
    const tenant = onPostgres ? `bench_${process.pid}_${Date.now().toString(36)}` : 'bench'
    const meter = createMeter({ store, tenant, cache: false })
    const names = Array.from({ length: scenario.includes('many') ? MANY : 1 }, (_, i) => `a${i}`)
    let next = 0
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < names.length) await meter.grant(names[next++]!, CREDITS)
      }),
    )

    let running = true
    let measuring = false
    let i = 0
    const latencies: number[] = []
    const loop = async () => {
      while (running) {
        const t = performance.now()
        const hold = await meter.reserve(names[i++ % names.length]!, 1)
        await hold.commit()
        if (measuring) latencies.push(performance.now() - t)
      }
    }
    const loops = Array.from({ length: CONCURRENCY }, loop)
    await new Promise((r) => setTimeout(r, WARMUP * 1_000))
    const walBefore = onPostgres ? await walSyncs() : 0
    const serverBefore = child ? await cpuOf(child) : null
    const localBefore = localSnapshot?.()
    const clientBefore = process.cpuUsage()
    const start = performance.now()
    measuring = true
    await new Promise((r) => setTimeout(r, SECONDS * 1_000))
    measuring = false
    const seconds = (performance.now() - start) / 1_000
    const clientAfter = process.cpuUsage()
    const localAfter = localSnapshot?.()
    const serverAfter = child ? await cpuOf(child) : null
    const walAfter = onPostgres ? await walSyncs() : 0
    const snapshots =
      localBefore && localAfter
        ? [localBefore, localAfter]
        : serverBefore && serverAfter && onPostgres
          ? [serverBefore.snapshot, serverAfter.snapshot]
          : null
    running = false
    await Promise.all(loops)
    await meter.close()

    const n = latencies.length
    latencies.sort((a, b) => a - b)
    return {
      ops: n / seconds,
      p50: latencies[Math.floor(n * 0.5)] ?? 0,
      p99: latencies[Math.floor(n * 0.99)] ?? 0,
      clientUs: cpuUs(clientBefore, clientAfter) / n,
      serverUs: serverBefore && serverAfter ? cpuUs(serverBefore.cpu, serverAfter.cpu) / n : null,
      commits: snapshots ? countsBetween(snapshots[0]!, snapshots[1]!, walAfter - walBefore) : null,
    }
  } finally {
    if (child && child.exitCode === null) {
      const exited = once(child, 'exit')
      child.kill('SIGTERM')
      await exited
    }
    rmSync(dataDir, { recursive: true, force: true })
  }
}

if (values.scenario !== undefined) {
  if (!(values.scenario in SCENARIOS)) throw new Error(`unknown scenario: ${values.scenario}`)
  process.stdout.write(`${JSON.stringify(await run(values.scenario as Scenario))}\n`)
  process.exit(0)
}

// ---- the orchestrator: rounds of fresh processes, then medians -------------------------------

/** Per pair (two operations): transactions, store arrivals (batch requests), WAL fsyncs. */
const perPair = (c: CommitCounts, n: number) => (n / c.operations) * 2
function countsText(c: CommitCounts): string {
  const sizes = Object.entries(c.batchSizes)
    .map(([range, n]) => `${range}:${n}`)
    .join(' ')
  return (
    `${perPair(c, c.batches).toFixed(3)} tx/pair, ${(c.operations / c.batches).toFixed(1)} ops/tx, ` +
    `${perPair(c, c.arrivals).toFixed(3)} arrivals/pair, ${perPair(c, c.walSyncs).toFixed(3)} WAL fsyncs/pair, ` +
    `contended ${c.contended}, retries ${c.retries}, batch sizes ${sizes}`
  )
}

if (values.serve === undefined) {
  const all = Object.keys(SCENARIOS) as Scenario[]
  const startedAt = new Date().toISOString()
  const machineAtStart = machine()
  const unreachable = await postgresUnreachable(DATABASE_URL)
  if (unreachable !== null) console.error(`PostgreSQL scenarios skipped: ${unreachable}`)
  const chosen = all.filter(
    (s) => matchesOnly(s, values.only) && (unreachable === null || !s.startsWith('pg-')),
  )
  const settings = [
    '--duration',
    String(SECONDS),
    '--warmup',
    String(WARMUP),
    '--concurrency',
    String(CONCURRENCY),
    '--connections',
    String(CONNECTIONS),
    ...(values['max-batch'] ? ['--max-batch', values['max-batch']] : []),
  ]
  const runs = new Map<Scenario, Result[]>(chosen.map((s) => [s, []]))
  for (let round = 1; round <= ROUNDS; round++) {
    for (const scenario of chosen) {
      const out = execFileSync(
        process.execPath,
        [...process.execArgv, self, '--scenario', scenario, ...settings],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
      )
      const r = JSON.parse(out.trim().split('\n').at(-1)!) as Result
      runs.get(scenario)!.push(r)
      console.error(
        `round ${round}: ${SCENARIOS[scenario]}: ${Math.round(r.ops).toLocaleString('en')} pairs/s, ` +
          `p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms${r.commits ? `; ${countsText(r.commits)}` : ''}`,
      )
    }
  }

  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b)
    const mid = Math.floor(s.length / 2)
    return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
  }
  const med = (s: Scenario, pick: (r: Result) => number | null) => {
    const xs = runs.get(s)!.map(pick)
    return xs.some((x) => x === null) ? null : median(xs as number[])
  }
  const fmt = (x: number | null, digits = 0) =>
    x === null
      ? '–'
      : x.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits })

  const m = machine()
  console.log(
    `\n${m.cores} × ${m.cpu}, Node ${process.version}, load average ${m.loadavg.map((l) => l.toFixed(2)).join(' ')}, ` +
      `${SECONDS} s (+${WARMUP} s warm-up) × ${ROUNDS} rounds, ${CONCURRENCY} concurrent loops, ` +
      `${CONNECTIONS} HTTP connections, ${new Date().toISOString().slice(0, 10)}\n`,
  )
  const table: Table = {
    columns: [
      'scenario',
      'pairs/s (median)',
      'p50 ms',
      'p99 ms',
      'client CPU µs/pair',
      'server CPU µs/pair',
      'transactions/pair',
      'operations/transaction',
      'rounds (pairs/s)',
    ],
    align: ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    rows: chosen.map((s) => [
      SCENARIOS[s],
      fmt(med(s, (r) => r.ops)),
      fmt(
        med(s, (r) => r.p50),
        1,
      ),
      fmt(
        med(s, (r) => r.p99),
        1,
      ),
      fmt(med(s, (r) => r.clientUs)),
      fmt(med(s, (r) => r.serverUs)),
      fmt(
        med(s, (r) => (r.commits ? perPair(r.commits, r.commits.batches) : null)),
        3,
      ),
      fmt(
        med(s, (r) => (r.commits ? r.commits.operations / r.commits.batches : null)),
        1,
      ),
      runs
        .get(s)!
        .map((r) => fmt(r.ops))
        .join(' · '),
    ]),
  }
  console.log(markdownTable(table))
  // The median ratio, then each round's (its two scenarios ran back to back): on a shared
  // machine whose load drifts, the rounds show how far one figure can be trusted.
  const ratio = (a: Scenario, b: Scenario) => {
    const ra = runs.get(a)
    const rb = runs.get(b)
    if (!ra || !rb || ra.length === 0 || rb.length === 0) return null
    const rounds = ra.map((r, i) => (r.ops / rb[i]!.ops).toFixed(2)).join(' · ')
    return `${(med(a, (r) => r.ops)! / med(b, (r) => r.ops)!).toFixed(2)}× (rounds ${rounds})`
  }
  const ratioRows = [
    ['httpStore ÷ in process, 1 hot account', ratio('http-hot', 'local-hot')],
    ['httpStore ÷ in process, 1,000 accounts', ratio('http-many', 'local-many')],
    [`httpStore, ${CONNECTIONS} ÷ 16 connections, 1 hot account`, ratio('http-hot', 'http-hot-16')],
    [
      'postgres: httpStore batched ÷ in process, 1 hot account (target ≥ 0.7×)',
      ratio('pg-http-hot', 'pg-local-hot'),
    ],
    [
      'postgres: httpStore batched ÷ in process, 1,000 accounts (target ≥ 0.7×)',
      ratio('pg-http-many', 'pg-local-many'),
    ],
    [
      'postgres: httpStore one op per request ÷ in process, 1 hot account',
      ratio('pg-http-hot-single', 'pg-local-hot'),
    ],
    [
      'postgres: httpStore one op per request ÷ in process, 1,000 accounts',
      ratio('pg-http-many-single', 'pg-local-many'),
    ],
  ].filter((r): r is [string, string] => r[1] !== null)
  const ratios: Table = {
    title: 'Ratios (a pair is two store operations: two HTTP round trips over httpStore)',
    columns: ['ratio', 'value'],
    rows: ratioRows,
  }
  if (ratioRows.length > 0) console.log(`\n${ratios.title}\n\n${markdownTable(ratios)}`)
  const notes = [
    `Reserve+commit pairs per second from ${CONCURRENCY} concurrent loops; the HTTP scenarios use ${CONNECTIONS} httpStore connections (http-hot-16: 16) to @tollgate/server on a file-backed PGlite store in another process; in process: the same PGlite store in the meter's process.`,
    'pg-*: the same on PostgreSQL (postgresStore, default schema, a tenant per run); batched: httpStore coalesces the operations that wait together into one /v1/store/batch request (its default); one op per request: batch: false.',
    'client CPU: the process running the meter (and, in process, the store); server CPU: the server process. Both are user + system time over the measurement, per pair.',
    "transactions/pair and operations/transaction: the PostgreSQL store's group commit (in the server process for httpStore), counted over the measurement; a round of 64 loops in lockstep is one transaction of 64 operations at best (1/32 = 0.031 transactions per pair).",
  ]
  console.log(`\n${notes.join('\n')}`)
  if (chosen.length > 0) {
    writeResult({
      bench: 'server',
      title: 'Tollgate server over HTTP (httpStore) vs in process',
      command: 'pnpm --filter @tollgate/bench bench:server',
      startedAt,
      finishedAt: new Date().toISOString(),
      machine: machineAtStart,
      loadavgEnd: m.loadavg,
      settings: {
        rounds: ROUNDS,
        'warm-up s': WARMUP,
        'duration s': SECONDS,
        concurrency: CONCURRENCY,
        connections: CONNECTIONS,
        only: values.only ?? '',
      },
      tables: ratioRows.length > 0 ? [table, ratios] : [table],
      notes,
      data: { runs: Object.fromEntries(runs) },
    })
  }
}
