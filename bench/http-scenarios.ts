/**
 * The scenarios of the HTTP benchmark, shared by the driver (`http.bench.ts`) and the server
 * process (`http-server.ts`): framework × middleware × store × lease × accounts.
 *
 *   <framework>-bare
 *   <framework>-<peer>-<hot|many>                     peers: express-rate-limit / koa-ratelimit /
 *                                                      @fastify/rate-limit / hono-rate-limiter /
 *                                                      @nestjs/throttler, rlf-memory, rlf-postgres
 *   <framework>-tollgate-<store>[-lease]-<hot|many>   stores: memory, pglite, postgres, server
 *
 * Fastify and Hono (on `@hono/node-server`) run the full matrix, as Express and Koa do:
 * rate-limiter-flexible is a plain function call in any middleware.
 * NestJS (on its default platform, Express) runs a smaller matrix: its usual limiter and
 * Tollgate on memory and PostgreSQL, since what it adds over Express is its own pipeline.
 */

import type { FixedRateResult } from './fixed-rate.js'

export const FRAMEWORKS = ['express', 'koa', 'fastify', 'hono', 'nestjs'] as const
export type Framework = (typeof FRAMEWORKS)[number]

export const STORES = ['memory', 'pglite', 'postgres', 'server'] as const
export type TollgateStore = (typeof STORES)[number]

export type Middleware = 'bare' | 'rate-limit' | 'rlf-memory' | 'rlf-postgres' | 'tollgate'
export type Accounts = 'hot' | 'many'

export interface Scenario {
  id: string
  framework: Framework
  middleware: Middleware
  /** Tollgate's store (Tollgate scenarios only). */
  store: TollgateStore | null
  lease: boolean
  /** Null for bare (no account is read). */
  accounts: Accounts | null
  /** A short label for tables and the chart. */
  label: string
}

/** The lease the `-lease` scenarios give `createMeter()`. */
export const LEASE = { size: 1_000, ttlMs: 30_000, flushMs: 1_000 } as const

/** Accounts of the `many` scenarios; `hot` uses the first one only. */
export const MANY_ACCOUNTS = 1_000

export const accountName = (i: number) => `acct_${i}`

export const accountCount = (a: Accounts | null) => (a === 'many' ? MANY_ACCOUNTS : 1)

const FRAMEWORK_NAME: Record<Framework, string> = {
  express: 'Express 5',
  koa: 'Koa 3',
  fastify: 'Fastify 5',
  hono: 'Hono 4 (node-server)',
  nestjs: 'NestJS 12 (Express)',
}

/** The limiters and stores each framework is measured with. */
const MATRIX: Record<
  Framework,
  { peers: readonly Exclude<Middleware, 'bare' | 'tollgate'>[]; stores: readonly TollgateStore[] }
> = {
  express: { peers: ['rate-limit', 'rlf-memory', 'rlf-postgres'], stores: STORES },
  koa: { peers: ['rate-limit', 'rlf-memory', 'rlf-postgres'], stores: STORES },
  fastify: { peers: ['rate-limit', 'rlf-memory', 'rlf-postgres'], stores: STORES },
  hono: { peers: ['rate-limit', 'rlf-memory', 'rlf-postgres'], stores: STORES },
  nestjs: { peers: ['rate-limit'], stores: ['memory', 'postgres'] },
}

/** The framework's usual limiter, the `rate-limit` peer. */
const LIMITER: Record<Framework, { name: string; slug: string }> = {
  express: { name: 'express-rate-limit', slug: 'rate-limit' },
  koa: { name: 'koa-ratelimit', slug: 'ratelimit' },
  fastify: { name: '@fastify/rate-limit', slug: 'rate-limit' },
  hono: { name: 'hono-rate-limiter', slug: 'rate-limiter' },
  nestjs: { name: '@nestjs/throttler', slug: 'throttler' },
}
const STORE_NAME: Record<TollgateStore, string> = {
  memory: 'memory',
  pglite: 'PGlite',
  postgres: 'PostgreSQL',
  server: 'server (httpStore)',
}
const ACCOUNTS_NAME: Record<Accounts, string> = { hot: '1 hot account', many: '1,000 accounts' }

function peerName(framework: Framework, m: Middleware): string {
  if (m === 'rate-limit') return LIMITER[framework].name
  if (m === 'rlf-memory') return 'rate-limiter-flexible (memory)'
  if (m === 'rlf-postgres') return 'rate-limiter-flexible (PostgreSQL)'
  return 'bare'
}

export function frameworkName(f: Framework): string {
  return FRAMEWORK_NAME[f]
}

function build(
  framework: Framework,
  middleware: Middleware,
  store: TollgateStore | null,
  lease: boolean,
  accounts: Accounts | null,
): Scenario {
  let id: string
  let label: string
  if (middleware === 'bare') {
    id = `${framework}-bare`
    label = `${FRAMEWORK_NAME[framework]}, bare`
  } else if (middleware === 'tollgate') {
    id = `${framework}-tollgate-${store}${lease ? '-lease' : ''}-${accounts}`
    label = `Tollgate · ${STORE_NAME[store!]}${lease ? ' · lease' : ''} · ${ACCOUNTS_NAME[accounts!]}`
  } else {
    const slug = middleware === 'rate-limit' ? LIMITER[framework].slug : middleware
    id = `${framework}-${slug}-${accounts}`
    label = `${peerName(framework, middleware)} · ${ACCOUNTS_NAME[accounts!]}`
  }
  return { id, framework, middleware, store, lease, accounts, label }
}

/** Every scenario, in run order: per framework, bare first (it calibrates the fixed rate). */
export const SCENARIOS: readonly Scenario[] = FRAMEWORKS.flatMap((f) => {
  const list: Scenario[] = [build(f, 'bare', null, false, null)]
  for (const accounts of ['hot', 'many'] as const) {
    for (const m of MATRIX[f].peers) list.push(build(f, m, null, false, accounts))
    for (const store of MATRIX[f].stores) {
      for (const lease of [false, true]) list.push(build(f, 'tollgate', store, lease, accounts))
    }
  }
  return list
})

export function scenarioById(id: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.id === id)
}

/** Whether the scenario needs PostgreSQL (the server's store is chosen by the driver). */
export function needsPostgres(s: Scenario, serverStore: 'pglite' | 'postgres'): boolean {
  return (
    s.middleware === 'rlf-postgres' ||
    s.store === 'postgres' ||
    (s.store === 'server' && serverStore === 'postgres')
  )
}

/** What the driver tells a server process (one JSON argument). */
export interface ServerConfig {
  scenario: string
  /** Tollgate tenant of this process: fresh accounts for every measurement. */
  tenant: string
  databaseUrl: string
  /** PostgreSQL schema of this run (Tollgate's tables and rate-limiter-flexible's table). */
  schema: string
  /** The Tollgate server of a `server` scenario, and its admin key. */
  ledgerUrl?: string
  apiKey?: string
}

/** One measurement of a scenario (one server process). */
export interface HttpSample {
  rps: number
  /** Latency under full load (closed loop), ms. */
  p50: number
  p99: number
  /** App server CPU (user + system) per request, µs. */
  cpuUs: number
  /** Tollgate server CPU per request, µs (`server` scenarios). */
  ledgerCpuUs: number | null
  /** Requests that failed or were not 2xx. */
  failed: number
  /**
   * Latency at the framework's fixed rate, when this scenario has such a run; `'overloaded'`
   * when its throughput was below that rate (then it is not run).
   */
  fixed: FixedRateResult | 'overloaded' | null
}

export interface HttpScenarioResult {
  id: string
  label: string
  framework: Framework
  middleware: Middleware
  store: TollgateStore | null
  lease: boolean
  accounts: Accounts | null
  status: 'ok' | 'skipped' | 'failed'
  reason: string | null
  samples: HttpSample[]
  errors: string[]
  median: {
    rps: number
    p50: number
    p99: number
    cpuUs: number
    ledgerCpuUs: number | null
    /** (max − min) / min of the rounds' req/s, %. */
    spread: number
  } | null
  fixed: {
    rate: number
    achieved: number
    p50: number
    p99: number
    p999: number
    /** p99 counted from when requests were due (pacing lag included). */
    p99Due: number
    /** Requests not sent because too many were outstanding (median of the rounds). */
    dropped: number
    /** Rounds in which the scenario could not take the rate at all. */
    overloadedRounds: number
  } | null
}

/** The `data` of `results/http.json`. */
export interface HttpData {
  scenarios: HttpScenarioResult[]
  /** The fixed rate of each framework's latency runs, req/s. */
  fixedRates: Partial<Record<Framework, number>>
  /** False when the core build ignored `lease` (the `-lease` scenarios then ran without one). */
  leaseSupported: boolean | null
  serverStore: 'pglite' | 'postgres'
  /** The PostgreSQL used (credentials stripped), null when unreachable or unused. */
  postgres: string | null
}
