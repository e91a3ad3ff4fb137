/**
 * One server of the HTTP benchmark (`http.bench.ts` spawns one process per scenario, so load
 * generation never shares a core or a heap with the server it measures). Every scenario answers
 * `GET /` with the same small JSON body; they differ only in the middleware in front of it.
 *
 *   node --import tsx http-server.ts <scenario>     (reports its port over IPC, or prints it)
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createMeter, memoryStore } from '@tollgate/core'
import { metered as expressMetered } from '@tollgate/express'
import { metered as koaMetered } from '@tollgate/koa'
import express, { type RequestHandler } from 'express'
import { rateLimit } from 'express-rate-limit'
import Koa, { type Middleware } from 'koa'
import ratelimit from 'koa-ratelimit'
import { ACCOUNTS, accountName, SCENARIOS, type Scenario } from './http-scenarios.js'

const BODY = { hello: 'world' }
/** A rate limit no scenario reaches: the limiter does all its work and never refuses. */
const NEVER = 1_000_000_000
/** Credits per account: plenty for any run. */
const PLENTY = 1_000_000_000_000

async function seededMeter() {
  const meter = createMeter({ store: memoryStore() })
  for (let i = 0; i < ACCOUNTS; i++) await meter.grant(accountName(i), PLENTY)
  return meter
}

const account = (headers: Record<string, string | string[] | undefined>) =>
  (headers['x-account'] as string | undefined) ?? ''

async function expressApp(scenario: Scenario) {
  const app = express()
  if (scenario === 'express-rate-limit') {
    app.use(
      rateLimit({
        windowMs: 60_000,
        limit: NEVER,
        standardHeaders: 'draft-8',
        legacyHeaders: false,
        keyGenerator: (req) => account(req.headers),
      }),
    )
  } else if (scenario === 'express-tollgate') {
    app.use(
      expressMetered(await seededMeter(), { account: (req) => account(req.headers), cost: 1 }),
    )
  }
  const hello: RequestHandler = (_req, res) => {
    res.json(BODY)
  }
  app.get('/', hello)
  return app
}

async function koaApp(scenario: Scenario) {
  const app = new Koa()
  if (scenario === 'koa-ratelimit') {
    app.use(
      ratelimit({
        driver: 'memory',
        db: new Map(),
        duration: 60_000,
        max: NEVER,
        id: (ctx) => account(ctx.headers),
      }),
    )
  } else if (scenario === 'koa-tollgate') {
    app.use(koaMetered(await seededMeter(), { account: (ctx) => account(ctx.headers), cost: 1 }))
  }
  const hello: Middleware = (ctx) => {
    ctx.body = BODY
  }
  app.use(hello)
  return app
}

const scenario = process.argv[2] as Scenario
if (!SCENARIOS.includes(scenario)) {
  throw new Error(`usage: http-server.ts <${SCENARIOS.join('|')}>`)
}
const handler = scenario.startsWith('express')
  ? await expressApp(scenario)
  : (await koaApp(scenario)).callback()
const server = createServer(handler)
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  if (process.send) process.send({ port })
  else console.log(`${scenario} on http://127.0.0.1:${port}`)
})

function stop() {
  server.closeAllConnections()
  // exit rather than wait, so a --cpu-prof profile is written at once
  server.close(() => process.exit(0))
}
// The driver asks for CPU time around its measurement: CPU per request is steadier than
// req/s on a machine whose other core is busy generating the load.
process.on('message', (message) => {
  if (message === 'cpu' && process.send) process.send({ cpu: process.cpuUsage() })
})
process.on('SIGTERM', stop)
process.on('disconnect', stop)
