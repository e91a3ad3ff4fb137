/**
 * Durable stores, side by side on one database in one run: reserve+commit pairs per second for
 * Tollgate on PostgreSQL with group commit, the same with one transaction per operation,
 * rate-limiter-flexible's `RateLimiterPostgres.consume` (one upsert per request), and Tollgate
 * on a file-backed PGlite store; each on one hot account and on 10,000 accounts.
 *
 * Each scenario runs in a fresh process (its own pool, its own JIT state), in interleaved
 * rounds; the table reports the median of the rounds.
 *
 *   pnpm --filter @tollgate/bench bench:postgres
 *   TOLLGATE_BENCH_DATABASE_URL=postgres://… (default: the local `test` database)
 *   BENCH_SECONDS=5 BENCH_ROUNDS=3 BENCH_CONCURRENCY=64
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createMeter, type Meter, type Store } from '@tollgate/core'
import { pgliteStore, postgresStore } from '@tollgate/postgres'
import pg from 'pg'
import { RateLimiterPostgres } from 'rate-limiter-flexible'

const url = process.env.TOLLGATE_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64)
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
  await new Promise((r) => setTimeout(r, 1_000))
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
  return tollgate(postgresStore({ connectionString: url, groupCommit }), accounts)
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

const only = process.argv[2]
if (only !== undefined) {
  const scenario = scenarios[only]
  if (!scenario) throw new Error(`unknown scenario: ${only}`)
  process.stdout.write(`${JSON.stringify(await scenario())}\n`)
  process.exit(0)
}

const names = Object.keys(scenarios)
const runs = new Map<string, Result[]>(names.map((n) => [n, []]))
const self = fileURLToPath(import.meta.url)
for (let round = 1; round <= ROUNDS; round++) {
  for (const name of names) {
    const out = execFileSync(process.execPath, [...process.execArgv, self, name], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as Result
    runs.get(name)!.push(r)
    console.error(`round ${round}: ${name}: ${Math.round(r.ops).toLocaleString('en')}/s`)
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}
const med = new Map(names.map((n) => [n, median(runs.get(n)!.map((r) => r.ops))]))
const m = (name: string) => med.get(name)!
const cpu = os.cpus()[0]?.model ?? 'unknown CPU'
console.log(
  `\n${os.cpus().length} × ${cpu}, Node ${process.version}, ${SECONDS} s × ${ROUNDS} rounds, ${CONCURRENCY} concurrent loops, ${new Date().toISOString().slice(0, 10)}\n`,
)
console.log('| scenario | per second (median) | rounds |')
console.log('|---|---:|---|')
for (const name of names) {
  const all = runs
    .get(name)!
    .map((r) => Math.round(r.ops).toLocaleString('en'))
    .join(', ')
  console.log(`| ${name} | ${Math.round(m(name)).toLocaleString('en')} | ${all} |`)
}
const ratio = (a: string, b: string) => `${(m(a) / m(b)).toFixed(2)}×`
const [gcHot, gcMany, opHot, opMany, rlfHot, rlfMany] = names
console.log('\nRatios (pairs are reserve+commit: two ledger operations; a consume is one upsert):')
console.log(`- group commit ÷ per operation, hot account: ${ratio(gcHot!, opHot!)}`)
console.log(`- group commit ÷ per operation, 10,000 accounts: ${ratio(gcMany!, opMany!)}`)
console.log(`- group commit ÷ rate-limiter-flexible, hot: ${ratio(gcHot!, rlfHot!)}`)
console.log(`- group commit ÷ rate-limiter-flexible, 10,000: ${ratio(gcMany!, rlfMany!)}`)
for (const name of names) {
  const extra = runs.get(name)!.at(-1)?.extra
  if (extra) console.log(`\n${name}, last round store stats: ${JSON.stringify(extra)}`)
}
