/**
 * HTTP overhead of metering, next to bare frameworks and rate limiters (which do comparable
 * per-request bookkeeping): framework × middleware × store × lease × accounts.
 *
 *   Express 5 / Koa 3 / Fastify 5 / Hono 4 (on @hono/node-server):  bare
 *                       express-rate-limit / koa-ratelimit / @fastify/rate-limit /
 *                       hono-rate-limiter (memory)
 *                       rate-limiter-flexible: RateLimiterMemory, RateLimiterPostgres
 *                       Tollgate on memory, PGlite (file), PostgreSQL (group commit), and a
 *                       Tollgate server through httpStore, each with and without a lease
 *   NestJS 12 (Express):  bare, @nestjs/throttler, Tollgate on memory and PostgreSQL (±lease)
 *   every middleware on 1 hot account and on 1,000 accounts (the `x-account` header)
 *
 * Every scenario serves `GET /` with one small JSON body; the metered ones charge 1 credit per
 * request (each account granted 2^50 up front) and the limiters key on the same header with a
 * limit never reached. Each setup (framework × middleware × store × lease) gets a fresh server
 * process per round (and, for the `server` scenarios, a fresh Tollgate server process behind
 * it), seeded for 1,000 accounts, which serves its `hot` scenario and then its `many` one;
 * autocannon drives it from this process. Setups run interleaved, round after round, so slow
 * drift of the machine hits them all alike; tables report medians.
 *
 * Two measurements per server process:
 *  1. Throughput: autocannon, `--connections` keep-alive connections, closed loop, after a
 *     `--warmup`. On `many`, each connection walks the 1,000 accounts from its own offset.
 *  2. Latency at a fixed load (bare and the `hot` scenarios, by default): requests sent at the
 *     same rate for every scenario of a framework, `--rate-fraction` of bare's throughput in
 *     the first round (or `--rate express=…,koa=…`), open loop (`fixed-rate.ts`).
 *
 *   pnpm --filter @tollgate/bench bench:http [--rounds 3] [--duration 5] [--warmup 2]
 *     [--connections 50] [--only koa-tollgate-memory,lease-hot] [--quick]
 *     [--rate-fraction 0.5] [--rate express=5000,koa=20000,fastify=20000,hono=20000,nestjs=4000] [--fixed-duration 3]
 *     [--fixed 'bare|-hot$'] [--server-store pglite|postgres] [--profile]
 *
 * PostgreSQL: TOLLGATE_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test);
 * a fresh schema per run, dropped at the end. Unreachable: its scenarios are reported skipped.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdirSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createHistogram } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import {
  BENCH_DIR,
  type BenchResult,
  DATABASE_URL,
  fixed,
  int,
  machine,
  matchesOnly,
  median,
  postgresUnreachable,
  postgresVersion,
  ratio,
  spreadPct,
  sql,
  type Table,
  writeResult,
} from './common.js'
import { type FixedRateResult, fixedRate } from './fixed-rate.js'
import {
  accountCount,
  accountName,
  FRAMEWORKS,
  type Framework,
  frameworkName,
  type HttpData,
  type HttpSample,
  type HttpScenarioResult,
  LEASE,
  needsPostgres,
  SCENARIOS,
  type Scenario,
  type ServerConfig,
} from './http-scenarios.js'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string', default: '50' },
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'rate-fraction': { type: 'string', default: '0.5' },
    rate: { type: 'string' },
    'fixed-duration': { type: 'string' },
    fixed: { type: 'string', default: 'bare|-hot$' },
    'server-store': { type: 'string', default: 'pglite' },
    profile: { type: 'boolean', default: false },
  },
})
const quick = values.quick
const ROUNDS = Number(values.rounds ?? (quick ? 1 : 3))
// autocannon ends a run on its once-a-second sampling tick: give whole seconds
const DURATION = Number(values.duration ?? (quick ? 2 : 5))
const WARMUP = Number(values.warmup ?? (quick ? 1 : 2))
const CONNECTIONS = Number(values.connections)
const FIXED_DURATION = Number(values['fixed-duration'] ?? (quick ? 1 : 3))
// Half a second lets the open loop reach its pace (the pacing timer is every millisecond).
const FIXED_LEAD_IN = 0.5
const RATE_FRACTION = Number(values['rate-fraction'])
const SERVER_STORE = values['server-store'] === 'postgres' ? 'postgres' : 'pglite'
const profileDir = path.join(os.tmpdir(), 'tollgate-http-profiles')

/** Fixed rates given on the command line, per framework. */
const givenRates = new Map<Framework, number>()
for (const part of (values.rate ?? '').split(',').filter(Boolean)) {
  const [f, r] = part.split('=')
  const framework = FRAMEWORKS.find((known) => known === f)
  if (framework && Number(r) > 0) givenRates.set(framework, Number(r))
}

// Bare of every framework in the selection always runs: it is what the others are divided by.
const chosen = SCENARIOS.filter((s) => matchesOnly(s.id, values.only))
const frameworks = FRAMEWORKS.filter((f) => chosen.some((s) => s.framework === f))
const scenarios = SCENARIOS.filter(
  (s) => chosen.includes(s) || (s.middleware === 'bare' && frameworks.includes(s.framework)),
)
const fixedPattern = new RegExp(values.fixed ?? 'bare|-hot$')
const wantsFixed = (s: Scenario) => RATE_FRACTION > 0 && fixedPattern.test(s.id)

// ---- processes -------------------------------------------------------------------------------

async function spawnChild(file: string, arg: unknown, flags: string[] = []) {
  const child = spawn(
    process.execPath,
    [...flags, '--no-warnings', '--import', 'tsx', file, JSON.stringify(arg)],
    { cwd: BENCH_DIR, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  )
  const exited = once(child, 'exit').then(() => {
    throw new Error(`${file} exited (code ${child.exitCode}) before it was ready`)
  })
  exited.catch(() => {})
  const ready = once(child, 'message') as Promise<[Record<string, unknown>]>
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${file}: not ready after 120 s`)), 120_000)
  })
  try {
    const [message] = await Promise.race([ready, exited, timeout])
    if (typeof message.error === 'string') throw new Error(message.error)
    return { child, message }
  } catch (error) {
    await stopChild(child)
    throw error
  } finally {
    clearTimeout(timer)
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}

async function cpuOf(child: ChildProcess): Promise<NodeJS.CpuUsage> {
  const reply = once(child, 'message') as Promise<[{ cpu: NodeJS.CpuUsage }]>
  child.send('cpu')
  const [{ cpu }] = await reply
  return cpu
}

const cpuUs = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage) => b.user - a.user + b.system - a.system

// ---- load ------------------------------------------------------------------------------------

const headersOf = (i: number) => ({ 'x-account': accountName(i) })

/**
 * Throughput under a closed loop. Every connection cycles through the scenario's accounts from
 * its own offset, so on `many` the connections never walk in step on the same account.
 */
async function throughput(port: number, s: Scenario, seconds: number, record: boolean) {
  const n = accountCount(s.accounts)
  const requests = Array.from({ length: n }, (_, i) => ({
    method: 'GET' as const,
    path: '/',
    headers: headersOf(i),
  }))
  let connection = 0
  const histogram = createHistogram({ lowest: 1_000, highest: 60_000_000_000, figures: 3 })
  const r = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: `http://127.0.0.1:${port}`,
        connections: CONNECTIONS,
        duration: seconds,
        requests: [requests[0]!],
        setupClient: (client) => {
          if (n === 1) return
          const offset = Math.floor((connection++ * n) / CONNECTIONS) % n
          client.setRequests([...requests.slice(offset), ...requests.slice(0, offset)])
        },
      },
      (error, result) => (error ? reject(error) : resolve(result)),
    )
    if (record) {
      // autocannon's own percentiles are whole milliseconds; keep µs
      instance.on('response', (_client, _status, _bytes, responseTime) => {
        histogram.record(Math.max(1_000, Math.round(responseTime * 1e6)))
      })
    }
  })
  return {
    rps: r.requests.total / r.duration,
    total: r.requests.total,
    failed: r.errors + r.timeouts + r.non2xx,
    p50: histogram.count > 0 ? histogram.percentile(50) / 1e6 : r.latency.p50,
    p99: histogram.count > 0 ? histogram.percentile(99) / 1e6 : r.latency.p99,
  }
}

// ---- one measurement -------------------------------------------------------------------------

const runId = `${Date.now().toString(36)}_${process.pid}`
const schema = `tollgate_bench_${runId}`
const adminKey = `tg_sk_bench${randomBytes(4).toString('hex')}_${randomBytes(24).toString('base64url')}`
const fixedRates: Partial<Record<Framework, number>> = Object.fromEntries(givenRates)
let leaseSupported: boolean | null = null
let measurementNo = 0

/**
 * Measures the scenarios of one unit in one server process: a scenario alone, or the `hot` and
 * `many` variants of one setup (same framework, middleware, store and lease), which differ only
 * in the accounts the load walks. The server is seeded for the unit's largest account set and
 * each scenario gets its own warm-up, measurement and fixed-rate run. Sharing the process (and
 * its seeding) halves the process starts of the run, most of its time outside measurement.
 */
async function measureUnit(unit: Scenario[], onSample: (s: Scenario, x: HttpSample) => void) {
  const children: ChildProcess[] = []
  try {
    const seeded = unit.reduce((a, b) =>
      accountCount(b.accounts) > accountCount(a.accounts) ? b : a,
    )
    const config: ServerConfig = {
      scenario: seeded.id,
      tenant: `${seeded.id}_${runId}_${++measurementNo}`,
      databaseUrl: DATABASE_URL,
      schema,
    }
    let ledger: ChildProcess | null = null
    if (seeded.store === 'server') {
      const started = await spawnChild('ledger-server.ts', {
        store: SERVER_STORE,
        databaseUrl: DATABASE_URL,
        schema,
        adminKey,
      })
      ledger = started.child
      children.push(ledger)
      config.ledgerUrl = started.message.url as string
      config.apiKey = adminKey
    }
    const flags = values.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []
    if (values.profile) mkdirSync(profileDir, { recursive: true })
    const { child, message } = await spawnChild('http-server.ts', config, flags)
    children.push(child)
    if (seeded.lease && Array.isArray(message.warnings)) {
      const ignored = (message.warnings as string[]).some((w) => w.includes('"lease"'))
      leaseSupported = !ignored && leaseSupported !== false
    }
    const port = message.port as number
    for (const s of unit) onSample(s, await measureOn(s, port, child, ledger))
  } finally {
    for (const child of children.reverse()) await stopChild(child)
  }
}

/** One scenario's measurement on a running server: warm-up, throughput, then fixed rate. */
async function measureOn(
  s: Scenario,
  port: number,
  child: ChildProcess,
  ledger: ChildProcess | null,
): Promise<HttpSample> {
  await throughput(port, s, WARMUP, false)
  const cpuBefore = await cpuOf(child)
  const ledgerBefore = ledger ? await cpuOf(ledger) : null
  const r = await throughput(port, s, DURATION, true)
  const cpuAfter = await cpuOf(child)
  const ledgerAfter = ledger ? await cpuOf(ledger) : null
  if (r.total === 0 || r.failed > r.total * 0.01) {
    throw new Error(`${r.failed} of ${r.total} requests failed or were not 2xx`)
  }

  if (s.middleware === 'bare' && fixedRates[s.framework] === undefined && RATE_FRACTION > 0) {
    // The first bare measurement sets the load of every latency run of this framework.
    fixedRates[s.framework] = Math.max(100, Math.round((r.rps * RATE_FRACTION) / 100) * 100)
  }
  let fixedResult: HttpSample['fixed'] = null
  const rate = fixedRates[s.framework]
  if (wantsFixed(s) && rate !== undefined && r.rps < rate) {
    // It cannot serve that load at all: the queue would only grow. Recorded as overloaded.
    fixedResult = 'overloaded'
  } else if (wantsFixed(s) && rate !== undefined) {
    const n = accountCount(s.accounts)
    const headers = Array.from({ length: n }, (_, i) => headersOf(i))
    fixedResult = await fixedRate({
      url: `http://127.0.0.1:${port}`,
      rate,
      seconds: FIXED_DURATION,
      leadIn: FIXED_LEAD_IN,
      connections: CONNECTIONS,
      headers: (i) => headers[i % n]!,
    })
  }
  return {
    rps: r.rps,
    p50: r.p50,
    p99: r.p99,
    cpuUs: cpuUs(cpuBefore, cpuAfter) / r.total,
    ledgerCpuUs: ledgerBefore && ledgerAfter ? cpuUs(ledgerBefore, ledgerAfter) / r.total : null,
    failed: r.failed,
    fixed: fixedResult,
  }
}

// ---- the run ---------------------------------------------------------------------------------

const startedAt = new Date()
const machineAtStart = machine()
const postgresError = scenarios.some((s) => needsPostgres(s, SERVER_STORE))
  ? await postgresUnreachable()
  : null
const pgVersion =
  postgresError === null && scenarios.some((s) => needsPostgres(s, SERVER_STORE))
    ? await postgresVersion()
    : null
let schemaCreated = false
if (scenarios.some((s) => needsPostgres(s, SERVER_STORE)) && postgresError === null) {
  await sql(`CREATE SCHEMA IF NOT EXISTS ${schema}`)
  schemaCreated = true
}
async function dropSchema() {
  if (!schemaCreated) return
  schemaCreated = false
  await sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch((error: unknown) => {
    console.error(`could not drop schema ${schema}: ${String(error)}`)
  })
}
process.once('SIGINT', () => {
  void dropSchema().finally(() => process.exit(130))
})

const results = new Map<string, HttpScenarioResult>(
  scenarios.map((s) => {
    const skip = needsPostgres(s, SERVER_STORE) && postgresError !== null
    return [
      s.id,
      {
        id: s.id,
        label: s.label,
        framework: s.framework,
        middleware: s.middleware,
        store: s.store,
        lease: s.lease,
        accounts: s.accounts,
        status: skip ? 'skipped' : 'ok',
        reason: skip ? `PostgreSQL unreachable at ${DATABASE_URL}: ${postgresError}` : null,
        samples: [],
        errors: [],
        median: null,
        fixed: null,
      },
    ]
  }),
)
const runnable = scenarios.filter((s) => results.get(s.id)!.status !== 'skipped')

console.log(
  `HTTP bench: ${runnable.length} scenarios (${scenarios.length - runnable.length} skipped) × ` +
    `${ROUNDS} rounds, ${WARMUP} s warm-up + ${DURATION} s, ${CONNECTIONS} connections; ` +
    `fixed-rate latency runs of ${FIXED_DURATION} s at ${RATE_FRACTION} × bare; ` +
    `Node ${process.version}, ${os.cpus().length}× ${os.cpus()[0]?.model ?? '?'}`,
)
if (postgresError !== null)
  console.log(`  PostgreSQL unreachable (${postgresError}): skipping its scenarios`)

/** The runnable scenarios in units that share a server process (see `measureUnit`). */
const units: Scenario[][] = []
for (const s of runnable) {
  const key = s.id.replace(/-(hot|many)$/, '')
  const unit = units.find((u) => u[0]!.id.replace(/-(hot|many)$/, '') === key)
  if (unit && s.accounts !== null) unit.push(s)
  else units.push([s])
}

try {
  for (let round = 1; round <= ROUNDS; round++) {
    for (const unit of units) {
      let t0 = performance.now()
      const measured = new Set<Scenario>()
      try {
        await measureUnit(unit, (s, sample) => {
          measured.add(s)
          results.get(s.id)!.samples.push(sample)
          const f = sample.fixed
          console.log(
            `  round ${round} ${s.id.padEnd(38)} ${int(sample.rps).padStart(7)} req/s  ` +
              `p50 ${fixed(sample.p50, 2)} ms  p99 ${fixed(sample.p99, 2)} ms  ` +
              `${fixed(sample.cpuUs)} µs CPU/req` +
              (sample.ledgerCpuUs === null ? '' : ` (+${fixed(sample.ledgerCpuUs)} server)`) +
              (f === 'overloaded'
                ? `  | at ${int(fixedRates[s.framework] ?? 0)}/s: overloaded (not run)`
                : f
                  ? `  | at ${int(f.rate)}/s: p50 ${fixed(f.p50, 2)} p99 ${fixed(f.p99, 2)} ms` +
                    (f.dropped > 0 ? ` (${int(f.dropped)} not sent: overloaded)` : '')
                  : '') +
              `  [${((performance.now() - t0) / 1_000).toFixed(1)} s]`,
          )
          t0 = performance.now()
        })
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error)
        for (const s of unit) {
          if (measured.has(s)) continue
          results.get(s.id)!.errors.push(`round ${round}: ${message}`)
          console.log(`  round ${round} ${s.id.padEnd(38)} FAILED: ${message}`)
        }
      }
    }
  }
} finally {
  await dropSchema()
}

// ---- medians, tables, JSON -------------------------------------------------------------------

for (const r of results.values()) {
  if (r.status === 'skipped') continue
  if (r.samples.length === 0) {
    r.status = 'failed'
    r.reason = r.errors[0] ?? 'no sample'
    continue
  }
  const m = (pick: (x: HttpSample) => number) => median(r.samples.map(pick))
  r.median = {
    rps: m((x) => x.rps),
    p50: m((x) => x.p50),
    p99: m((x) => x.p99),
    cpuUs: m((x) => x.cpuUs),
    ledgerCpuUs: r.samples[0]!.ledgerCpuUs === null ? null : m((x) => x.ledgerCpuUs ?? 0),
    spread: spreadPct(r.samples.map((x) => x.rps)),
  }
  const ran = r.samples
    .map((x) => x.fixed)
    .filter((x): x is FixedRateResult => x !== null && x !== 'overloaded')
  const overloadedRounds = r.samples.filter((x) => x.fixed === 'overloaded').length
  if (ran.length > 0 || overloadedRounds > 0) {
    // Latencies are the medians of the rounds that ran; none ran: NaN (null in the JSON).
    const med = (pick: (x: FixedRateResult) => number) => median(ran.map(pick))
    r.fixed = {
      rate: fixedRates[r.framework] ?? Number.NaN,
      achieved: med((x) => x.achieved),
      p50: med((x) => x.p50),
      p99: med((x) => x.p99),
      p999: med((x) => x.p999),
      p99Due: med((x) => x.p99Due),
      dropped: ran.length > 0 ? med((x) => x.dropped) : 0,
      overloadedRounds,
    }
  }
}

const data: HttpData = {
  scenarios: [...results.values()],
  fixedRates,
  leaseSupported,
  serverStore: SERVER_STORE,
  postgres:
    pgVersion === null ? null : `${pgVersion} at ${DATABASE_URL.replace(/\/\/[^@/]*@/, '//')}`,
}

/** Markdown tables of the HTTP bench (also used by the report). */
function httpTables(d: HttpData): Table[] {
  const tables: Table[] = []
  for (const f of FRAMEWORKS) {
    const rows = d.scenarios.filter((r) => r.framework === f)
    if (rows.length === 0) continue
    const bare = rows.find((r) => r.middleware === 'bare')?.median ?? null
    tables.push({
      title: `${frameworkName(f)}: throughput (closed loop, medians)`,
      align: ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
      columns: [
        'scenario',
        'id',
        'req/s',
        'vs bare',
        'p50 ms',
        'p99 ms',
        'p99 vs bare',
        'app CPU µs/req',
        'server CPU µs/req',
        'spread %',
      ],
      rows: rows.map((r) => {
        const m = r.median
        if (!m) return [r.label, `\`${r.id}\``, r.status, '', '', '', '', '', '', '']
        return [
          r.middleware === 'bare' ? `**${r.label}**` : r.label,
          `\`${r.id}\``,
          int(m.rps),
          bare ? ratio(m.rps / bare.rps) : '–',
          fixed(m.p50, 2),
          fixed(m.p99, 2),
          bare ? ratio(m.p99 / bare.p99) : '–',
          fixed(m.cpuUs),
          m.ledgerCpuUs === null ? '' : fixed(m.ledgerCpuUs),
          fixed(m.spread),
        ]
      }),
    })
    const withFixed = rows.filter((r) => r.fixed !== null)
    const bareFixed = rows.find((r) => r.middleware === 'bare')?.fixed ?? null
    if (withFixed.length > 0) {
      tables.push({
        title: `${frameworkName(f)}: latency at a fixed ${int(d.fixedRates[f] ?? Number.NaN)} req/s (open loop, medians)`,
        columns: [
          'scenario',
          'achieved req/s',
          'p50 ms',
          'p99 ms',
          'p99 vs bare',
          'p99.9 ms',
          'p99 from due ms',
          'not sent',
        ],
        rows: withFixed.map((r) => {
          const x = r.fixed!
          return [
            r.middleware === 'bare' ? `**${r.label}**` : r.label,
            int(x.achieved),
            fixed(x.p50, 2),
            fixed(x.p99, 2),
            bareFixed ? ratio(x.p99 / bareFixed.p99) : '–',
            fixed(x.p999, 2),
            fixed(x.p99Due, 2),
            x.overloadedRounds > 0
              ? `overloaded in ${x.overloadedRounds} of ${r.samples.length} rounds (not run)`
              : x.dropped > 0
                ? `${int(x.dropped)} (overloaded)`
                : '0',
          ]
        }),
      })
    }
  }
  return tables
}

const tables = httpTables(data)
const notes: string[] = [
  `Load generator: autocannon (throughput) and an open-loop undici generator (fixed rate) in the bench process, on the same ${os.cpus().length} cores as the servers (and PostgreSQL): figures are relative, compare within one run.`,
  `Every round starts a fresh server process per setup (a fresh Tollgate server process too for \`server\`), which serves its \`hot\` and then its \`many\` scenario (seeded for 1,000 accounts); each scenario gets ${WARMUP} s of warm-up load, then ${DURATION} s measured; rounds interleave the setups; tables show medians.`,
  `\`-lease\` scenarios pass \`lease: ${JSON.stringify(LEASE)}\` to createMeter.`,
  `\`server\` scenarios: httpStore (64 connections) → @tollgate/server in another process on ${SERVER_STORE === 'postgres' ? 'PostgreSQL' : 'a file-backed PGlite store'}.`,
  `Every request is \`GET /\` with a small JSON body and an \`x-account\` header; metered scenarios charge 1 credit (accounts granted 2^50 up front), limiters key on the header with a limit never reached.`,
  'p50/p99 under throughput: every connection busy (closed loop), so latency ≈ connections ÷ throughput.',
  `Fixed rate: ${RATE_FRACTION} × the framework's bare throughput in the first round, for bare and the scenarios matching \`${fixedPattern.source}\`; ${FIXED_LEAD_IN} s lead-in, then ${FIXED_DURATION} s measured; requests paced every millisecond over ${CONNECTIONS} keep-alive connections, open loop (what finds every connection busy waits in the client's queue). Latency counts from the send; "from due" also counts the pacing timer's lag. A scenario whose throughput was below the rate is "overloaded" and not run.`,
]
if (leaseSupported === false) {
  notes.push(
    '**The core build ignored `lease` (unknown option): the `-lease` scenarios ran without a lease.**',
  )
}
for (const r of results.values()) {
  const failed = r.samples.reduce((n, x) => n + x.failed, 0)
  if (failed > 0) {
    notes.push(
      `\`${r.id}\`: ${int(failed)} requests failed or were not 2xx (under 1% per round: kept)`,
    )
  }
  if (r.status === 'skipped') notes.push(`\`${r.id}\` skipped: ${r.reason}`)
  else for (const e of r.errors) notes.push(`\`${r.id}\` ${e}`)
}

const result: BenchResult<HttpData> = {
  bench: 'http',
  title: 'HTTP middleware: throughput and latency',
  command: 'pnpm --filter @tollgate/bench bench:http',
  startedAt: startedAt.toISOString(),
  finishedAt: new Date().toISOString(),
  machine: machineAtStart,
  loadavgEnd: machine().loadavg,
  settings: {
    rounds: ROUNDS,
    'warm-up s': WARMUP,
    'duration s': DURATION,
    connections: CONNECTIONS,
    'fixed-rate s': FIXED_DURATION,
    'fixed rate': `${RATE_FRACTION} × bare (first round)`,
    'fixed-rate scenarios': fixedPattern.source,
    'server store': SERVER_STORE,
    only: values.only ?? '',
    quick,
  },
  tables,
  notes,
  data,
}
const file = writeResult(result)
const { markdownTable } = await import('./common.js')
for (const t of tables) console.log(`\n${t.title}\n\n${markdownTable(t)}`)
console.log(
  `\n${notes.map((n) => `- ${n}`).join('\n')}\n\nwrote ${path.relative(process.cwd(), file)}`,
)
if (values.profile) console.log(`CPU profiles: ${profileDir}`)
process.exit(0)
