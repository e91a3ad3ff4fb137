/**
 * HTTP overhead of the Tollgate middleware, next to bare frameworks and a rate limiter with a
 * memory store, which does comparable per-request bookkeeping:
 *
 *   Express: bare · express-rate-limit (memory store) · @tollgate/express (memory store)
 *   Koa:     bare · koa-ratelimit (memory driver)     · @tollgate/koa (memory store)
 *
 * Every scenario serves `GET /` with one small JSON body; the metered ones charge 1 credit per
 * request on 100 accounts (granted plenty up front), rotated through the `x-account` header,
 * and the limiters key on the same header with a limit never reached. Each scenario runs in a
 * server process of its own (spawned per measurement), and autocannon drives it from this
 * process, so load and server never share a core. Scenarios run interleaved, round after
 * round, so slow drift of the machine hits them all alike; the table reports medians.
 *
 *   pnpm --filter @tollgate/bench bench:http [--rounds 3] [--duration 10] [--connections 50]
 *                                            [--only express-tollgate,koa-tollgate] [--profile]
 *
 * `--profile` starts each server with `--cpu-prof` and prints where the profiles were written.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import { ACCOUNTS, accountName, SCENARIOS, type Scenario } from './http-scenarios.js'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    only: { type: 'string' },
    profile: { type: 'boolean', default: false },
  },
})
const rounds = Number(values.rounds)
const duration = Number(values.duration)
const warmup = Number(values.warmup)
const connections = Number(values.connections)
const scenarios = values.only
  ? (values.only.split(',') as Scenario[]).filter((s) => SCENARIOS.includes(s))
  : [...SCENARIOS]
const here = path.dirname(new URL(import.meta.url).pathname)
const profileDir = path.join(os.tmpdir(), 'tollgate-http-profiles')

interface Sample {
  rps: number
  p50: number
  p99: number
  /** Server CPU (user + system) per request, µs. */
  cpuUs: number
  /** Of which user time (JavaScript, mostly), µs. */
  userUs: number
}

async function startServer(scenario: Scenario): Promise<{ child: ChildProcess; port: number }> {
  const flags = values.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []
  if (values.profile) mkdirSync(profileDir, { recursive: true })
  const child = spawn(process.execPath, [...flags, '--import', 'tsx', 'http-server.ts', scenario], {
    cwd: here,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const [message] = (await once(child, 'message')) as [{ port: number }]
  return { child, port: message.port }
}

async function stopServer(child: ChildProcess): Promise<void> {
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  await exited
}

/** The same 100 requests, one per account, for every scenario; each connection cycles them. */
const requests = Array.from({ length: ACCOUNTS }, (_, i) => ({
  method: 'GET' as const,
  path: '/',
  headers: { 'x-account': accountName(i) },
}))

async function load(port: number, seconds: number) {
  return autocannon({
    url: `http://127.0.0.1:${port}`,
    connections,
    duration: seconds,
    requests,
  })
}

/** The server's CPU time so far, µs. */
async function cpuOf(child: ChildProcess): Promise<NodeJS.CpuUsage> {
  const reply = once(child, 'message') as Promise<[{ cpu: NodeJS.CpuUsage }]>
  child.send('cpu')
  const [{ cpu }] = await reply
  return cpu
}

async function measure(scenario: Scenario): Promise<Sample> {
  const { child, port } = await startServer(scenario)
  try {
    await load(port, warmup)
    const cpuBefore = await cpuOf(child)
    const r = await load(port, duration)
    const cpuAfter = await cpuOf(child)
    const user = cpuAfter.user - cpuBefore.user
    const cpu = user + cpuAfter.system - cpuBefore.system
    if (r.errors > 0 || r.non2xx > 0 || r.timeouts > 0) {
      throw new Error(
        `${scenario}: ${r.errors} errors, ${r.non2xx} non-2xx, ${r.timeouts} timeouts`,
      )
    }
    return {
      rps: r.requests.average,
      p50: r.latency.p50,
      p99: r.latency.p99,
      cpuUs: cpu / r.requests.total,
      userUs: user / r.requests.total,
    }
  } finally {
    await stopServer(child)
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

const samples = new Map<Scenario, Sample[]>(scenarios.map((s) => [s, []]))
console.log(
  `HTTP bench: ${scenarios.length} scenarios × ${rounds} rounds, ${warmup} s warm-up + ${duration} s, ` +
    `${connections} connections, Node ${process.version}, ${os.cpus().length}× ${os.cpus()[0]?.model ?? '?'}`,
)
for (let round = 1; round <= rounds; round++) {
  for (const scenario of scenarios) {
    const s = await measure(scenario)
    samples.get(scenario)!.push(s)
    console.log(
      `  round ${round} ${scenario.padEnd(20)} ${Math.round(s.rps).toLocaleString('en-US').padStart(8)} req/s` +
        `  p50 ${s.p50} ms  p99 ${s.p99} ms  ${s.cpuUs.toFixed(1)} µs CPU/req (user ${s.userUs.toFixed(1)})`,
    )
  }
}

const med = new Map(
  [...samples].map(([scenario, xs]) => [
    scenario,
    {
      rps: median(xs.map((x) => x.rps)),
      p50: median(xs.map((x) => x.p50)),
      p99: median(xs.map((x) => x.p99)),
      cpuUs: median(xs.map((x) => x.cpuUs)),
      userUs: median(xs.map((x) => x.userUs)),
      spread: (Math.max(...xs.map((x) => x.rps)) / Math.min(...xs.map((x) => x.rps)) - 1) * 100,
    },
  ]),
)
console.log(`\nMedians of ${rounds} rounds:\n`)
console.log(
  '| scenario | req/s | vs bare | p50 ms | p99 ms | server CPU µs/req | vs bare | req/s spread % |',
)
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
for (const [scenario, m] of med) {
  const bare = med.get(scenario.startsWith('express') ? 'express-bare' : 'koa-bare')
  const ratio = bare ? `${(m.rps / bare.rps).toFixed(3)}×` : '–'
  const extra = bare ? `+${(m.cpuUs - bare.cpuUs).toFixed(1)}` : '–'
  console.log(
    `| ${scenario} | ${Math.round(m.rps).toLocaleString('en-US')} | ${ratio} | ${m.p50} | ${m.p99} | ` +
      `${m.cpuUs.toFixed(1)} | ${extra} | ${m.spread.toFixed(1)} |`,
  )
}
console.log(
  '\nserver CPU = user + system time of the server process during the measurement, per request;' +
    ' “vs bare” there is the extra µs.\nspread = (max − min) / min of the rounds’ req/s.',
)
if (values.profile) console.log(`CPU profiles: ${profileDir}`)
