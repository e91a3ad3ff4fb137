/**
 * Durable stores, side by side on one database in one run: reserve+commit pairs per second for
 * Tollgate on PostgreSQL with group commit, the same with one transaction per operation,
 * rate-limiter-flexible's `RateLimiterPostgres.consume` (one upsert per request), and Tollgate
 * on a file-backed PGlite store; each on one hot account and on 10,000 accounts.
 *
 * Each scenario runs in a fresh process (its own pool, its own JIT state), in interleaved
 * rounds; the table reports the median of the rounds.
 *
 *   pnpm --filter @tollgate/bench bench:postgres [--rounds 3] [--duration 5] [--concurrency 64]
 *                                                [--only 'group commit'] [--quick]
 *   TOLLGATE_BENCH_DATABASE_URL=postgres://… (default: the local `test` database)
 *   TOLLGATE_BENCH_SCHEMA=… (default: the store's default schema, `tollgate`): a branch whose
 *   migrations differ from another's runs in a schema of its own, so neither migrates the other's
 *   schema past what its code reads.
 *   TOLLGATE_BENCH_NOTIFY=0: the PostgreSQL store sends no change notifications (`notify:
 *   false`), to measure what the change feed's NOTIFY costs.
 *   (BENCH_SECONDS, BENCH_ROUNDS, BENCH_CONCURRENCY still work as defaults.)
 *
 * PostgreSQL unreachable: the PostgreSQL scenarios are reported skipped, the PGlite ones run.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { createMeter, type Meter, type Store } from '@tollgate/core'
import { pgliteStore, postgresStore } from '@tollgate/postgres'
import pg from 'pg'
import { RateLimiterPostgres } from 'rate-limiter-flexible'
import {
  DATABASE_URL,
  fixed,
  int,
  machine,
  markdownTable,
  matchesOnly,
  median,
  postgresUnreachable,
  ratio,
  spreadPct,
  type Table,
  writeResult,
} from './common.js'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    concurrency: { type: 'string' },
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    /** Internal: run one scenario and print its result as JSON. */
    scenario: { type: 'string' },
  },
})
const url = DATABASE_URL
const quick = values.quick
const SECONDS = Number(values.duration ?? process.env.BENCH_SECONDS ?? (quick ? 1 : 5))
const ROUNDS = Number(values.rounds ?? process.env.BENCH_ROUNDS ?? (quick ? 1 : 3))
const WARMUP = Number(values.warmup ?? (quick ? 0.5 : 1))
const CONCURRENCY = Number(values.concurrency ?? process.env.BENCH_CONCURRENCY ?? 64)
const MANY = 10_000
const CREDITS = 2 ** 50

interface Result {
  ops: number
  seconds: number
  extra?: Record<string, unknown>
}

/** Runs `op` from CONCURRENCY loops for SECONDS after a one-second warm-up; counts completions. */
async function measure(op: (i: number) => Promise<unknown>): Promise<Result> {
  let count = 0
  let running = true
  let i = 0
  const loop = async () => {
    while (running) {
      await op(i++)
      count++
    }
  }
  const loops = Array.from({ length: CONCURRENCY }, loop)
  await new Promise((r) => setTimeout(r, WARMUP * 1_000))
  const start = performance.now()
  const before = count
  await new Promise((r) => setTimeout(r, SECONDS * 1_000))
  const done = count - before
  const seconds = (performance.now() - start) / 1_000
  running = false
  await Promise.all(loops)
  return { ops: done / seconds, seconds }
}

/** Grants every account, CONCURRENCY at a time (through the store under test). */
async function seed(meter: Meter, accounts: string[]) {
  let next = 0
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < accounts.length) await meter.grant(accounts[next++]!, CREDITS)
    }),
  )
}

function accountsFor(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `acct_${i}`)
}

async function tollgate(store: Store, accounts: number): Promise<Result> {
  const tenant = `bench_${process.pid}_${Date.now().toString(36)}`
  const meter = createMeter({ store, tenant, cache: false })
  const names = accountsFor(accounts)
  await seed(meter, names)
  const result = await measure(async (i) => {
    const hold = await meter.reserve(names[i % names.length]!, 1)
    await hold.commit()
  })
  const stats = (store as { stats?: () => unknown }).stats?.()
  await meter.close()
  return { ...result, extra: stats === undefined ? undefined : { stats } }
}

async function rateLimiterFlexible(accounts: number): Promise<Result> {
  const pool = new pg.Pool({ connectionString: url, max: 10 })
  const limiter = await new Promise<RateLimiterPostgres>((resolve, reject) => {
    const l: RateLimiterPostgres = new RateLimiterPostgres(
      {
        storeClient: pool,
        tableName: scratch,
        keyPrefix: 'b',
        points: 1e12,
        duration: 3_600,
      },
      (err?: Error) => (err ? reject(err) : resolve(l)),
    )
  })
  const names = accountsFor(accounts)
  try {
    return await measure((i) => limiter.consume(names[i % names.length]!, 1))
  } finally {
    await pool.end()
    await dropScratch(`DROP TABLE IF EXISTS ${scratch}`)
  }
}

/** A table of this process's own for rate-limiter-flexible, dropped afterwards. */
const scratch = `bench_${process.pid}_${Date.now().toString(36)}`

async function dropScratch(sql: string) {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

/**
 * Tollgate on the default schema, as a running deployment has it: tables that already hold
 * data and have statistics. (On tables created a moment ago, node-postgres's prepared
 * statements settle on generic plans costed for empty tables, until autovacuum analyzes them a
 * minute or so later; a five-second run would measure only that warm-up.) Each run has a
 * tenant of its own.
 */
async function onPostgres(groupCommit: boolean, accounts: number): Promise<Result> {
  const schema = process.env.TOLLGATE_BENCH_SCHEMA || undefined
  const quiet = process.env.TOLLGATE_BENCH_NOTIFY === '0' ? { notify: false } : {}
  return tollgate(postgresStore({ connectionString: url, groupCommit, schema, ...quiet }), accounts)
}

const scenarios: Record<string, () => Promise<Result>> = {
  'tollgate postgres, group commit: 1 hot account': () => onPostgres(true, 1),
  'tollgate postgres, group commit: 10,000 accounts': () => onPostgres(true, MANY),
  'tollgate postgres, one transaction per operation: 1 hot account': () => onPostgres(false, 1),
  'tollgate postgres, one transaction per operation: 10,000 accounts': () =>
    onPostgres(false, MANY),
  'rate-limiter-flexible RateLimiterPostgres.consume: 1 hot key': () => rateLimiterFlexible(1),
  'rate-limiter-flexible RateLimiterPostgres.consume: 10,000 keys': () => rateLimiterFlexible(MANY),
  'tollgate pglite (file), group commit: 1 hot account': () => pglite(1),
  'tollgate pglite (file), group commit: 10,000 accounts': () => pglite(MANY),
}

async function pglite(accounts: number): Promise<Result> {
  const dataDir = mkdtempSync(join(os.tmpdir(), 'tollgate-bench-pglite-'))
  try {
    return await tollgate(pgliteStore({ dataDir }), accounts)
  } finally {
    rmSync(dataDir, { recursive: true, force: true })
  }
}

if (values.scenario !== undefined) {
  const scenario = scenarios[values.scenario]
  if (!scenario) throw new Error(`unknown scenario: ${values.scenario}`)
  process.stdout.write(`${JSON.stringify(await scenario())}\n`)
  process.exit(0)
}

const startedAt = new Date().toISOString()
const machineAtStart = machine()
const unreachable = await postgresUnreachable(url)
const chosen = Object.keys(scenarios).filter((n) => matchesOnly(n, values.only))
const skipped = unreachable === null ? [] : chosen.filter((n) => !n.startsWith('tollgate pglite'))
const names = chosen.filter((n) => !skipped.includes(n))
if (unreachable !== null) {
  console.error(`PostgreSQL unreachable at ${url} (${unreachable}): skipping its scenarios`)
}
const runs = new Map<string, Result[]>(names.map((n) => [n, []]))
const failures: string[] = []
const self = fileURLToPath(import.meta.url)
const settings = ['--duration', String(SECONDS), '--warmup', String(WARMUP)]
settings.push('--concurrency', String(CONCURRENCY))
for (let round = 1; round <= ROUNDS; round++) {
  for (const name of names) {
    try {
      const out = execFileSync(
        process.execPath,
        [...process.execArgv, self, '--scenario', name, ...settings],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
      )
      const r = JSON.parse(out.trim().split('\n').at(-1)!) as Result
      runs.get(name)!.push(r)
      console.error(`round ${round}: ${name}: ${int(r.ops)}/s`)
    } catch (error) {
      failures.push(`${name}, round ${round}: ${error instanceof Error ? error.message : error}`)
      console.error(`round ${round}: ${name}: FAILED`)
    }
  }
}

const med = new Map(names.map((n) => [n, median(runs.get(n)!.map((r) => r.ops))]))
const m = (name: string) => med.get(name) ?? Number.NaN
const table: Table = {
  columns: ['scenario', 'per second (median)', 'spread %', 'rounds'],
  align: ['l', 'r', 'r', 'l'],
  rows: [
    ...names.map((name) => {
      const ops = runs.get(name)!.map((r) => r.ops)
      return [name, int(m(name)), fixed(spreadPct(ops)), ops.map(int).join(' · ')]
    }),
    ...skipped.map((name) => [name, 'skipped', '', 'PostgreSQL unreachable']),
  ],
}
const ratioRows: [string, string, string][] = [
  [
    'group commit ÷ one transaction per operation, hot account',
    'tollgate postgres, group commit: 1 hot account',
    'tollgate postgres, one transaction per operation: 1 hot account',
  ],
  [
    'group commit ÷ one transaction per operation, 10,000 accounts',
    'tollgate postgres, group commit: 10,000 accounts',
    'tollgate postgres, one transaction per operation: 10,000 accounts',
  ],
  [
    'group commit ÷ rate-limiter-flexible, hot',
    'tollgate postgres, group commit: 1 hot account',
    'rate-limiter-flexible RateLimiterPostgres.consume: 1 hot key',
  ],
  [
    'group commit ÷ rate-limiter-flexible, 10,000',
    'tollgate postgres, group commit: 10,000 accounts',
    'rate-limiter-flexible RateLimiterPostgres.consume: 10,000 keys',
  ],
]
const ratios: Table = {
  title: 'Ratios (a pair is two ledger operations; a consume is one upsert)',
  columns: ['ratio', 'value'],
  rows: ratioRows
    .filter(([, a, b]) => med.has(a) && med.has(b))
    .map(([label, a, b]) => [label, ratio(m(a) / m(b))]),
}
const mNow = machine()
console.log(
  `\n${mNow.cores} × ${mNow.cpu}, Node ${process.version}, ${SECONDS} s × ${ROUNDS} rounds, ${CONCURRENCY} concurrent loops, ${new Date().toISOString().slice(0, 10)}\n`,
)
console.log(markdownTable(table))
if (ratios.rows.length > 0) console.log(`\n${ratios.title}\n\n${markdownTable(ratios)}`)
const notes = [
  `Reserve+commit pairs per second from ${CONCURRENCY} concurrent loops in one process (a pair is two ledger operations; rate-limiter-flexible's figure is consume() calls, one upsert each); ${WARMUP} s warm-up, ${SECONDS} s measured; each scenario in a fresh process, rounds interleaved.`,
  'Tollgate runs on the default `tollgate` schema (tables that hold data and have statistics) with a tenant per run; rate-limiter-flexible on a table of its own per run, dropped after.',
  ...failures,
]
for (const name of names) {
  const extra = runs.get(name)!.at(-1)?.extra
  if (extra) console.log(`\n${name}, last round store stats: ${JSON.stringify(extra)}`)
}
if (names.length + skipped.length > 0) {
  writeResult({
    bench: 'postgres',
    title: 'Durable stores: PostgreSQL and PGlite',
    command: 'pnpm --filter @tollgate/bench bench:postgres',
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: machineAtStart,
    loadavgEnd: mNow.loadavg,
    settings: {
      rounds: ROUNDS,
      'warm-up s': WARMUP,
      'duration s': SECONDS,
      concurrency: CONCURRENCY,
      postgres: unreachable === null ? 'reachable' : `unreachable: ${unreachable}`,
      only: values.only ?? '',
    },
    tables: ratios.rows.length > 0 ? [table, ratios] : [table],
    notes,
    data: { runs: Object.fromEntries(runs), skipped },
  })
}
