/**
 * One server of the HTTP benchmark (`http.bench.ts` spawns one process per measurement, so the
 * load generator never shares a heap with the server it measures). Every scenario answers
 * `GET /` with the same small JSON body; they differ only in the middleware in front of it.
 *
 *   node --import tsx http-server.ts '<ServerConfig as JSON>'
 *
 * It grants every account of the scenario 2^50 credits (or, for a limiter, nothing: their
 * limit is never reached), listens on a free port and reports `{ port }` over IPC (or
 * `{ error }`). Answers `'cpu'` messages with its CPU time so far; SIGTERM or a lost parent
 * closes it.
 *
 * Only the scenario's framework, limiter and store are loaded (dynamic imports): a process
 * that imported every framework spent most of its start-up compiling the others, and the
 * bench starts one per measurement.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type IncomingHttpHeaders, type RequestListener } from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { createMeter, httpStore, type Meter, memoryStore, type Store } from '@tollgate/core'
import type { RequestHandler } from 'express'
import type { Middleware } from 'koa'
import {
  accountCount,
  accountName,
  LEASE,
  type Scenario,
  type ServerConfig,
  scenarioById,
} from './http-scenarios.js'

const BODY = { hello: 'world' }
/** A limit no scenario reaches: the limiter does all its work and never refuses. */
const NEVER = 1_000_000_000
/** Credits per account: nobody runs out. */
const CREDITS = 2 ** 50

const config = JSON.parse(process.argv[2] ?? '{}') as ServerConfig
const scenario = scenarioById(config.scenario)
if (!scenario) throw new Error(`http-server.ts: unknown scenario ${config.scenario}`)

/**
 * Process warnings (the driver starts this process with --no-warnings): those of the start
 * (e.g. an option the core build does not know) go to the driver with the port; later ones are
 * printed, except while closing (requests in flight then meet a closed meter).
 */
const warnings: string[] = []
let started = false
process.on('warning', (w) => {
  if (!started) warnings.push(w.message)
  else if (!stopping) console.error(`${config.scenario}: ${w.name}: ${w.message}`)
})

/** What to undo on the way out. */
const cleanups: (() => Promise<unknown> | unknown)[] = []

const account = (headers: IncomingHttpHeaders) => (headers['x-account'] as string | undefined) ?? ''

async function tollgateStore(s: Scenario): Promise<Store> {
  switch (s.store) {
    case 'memory':
      return memoryStore()
    case 'pglite': {
      const { pgliteStore } = await import('@tollgate/postgres')
      const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-bench-http-'))
      cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }))
      return pgliteStore({ dataDir })
    }
    case 'postgres': {
      const { postgresStore } = await import('@tollgate/postgres')
      return postgresStore({ connectionString: config.databaseUrl, schema: config.schema })
    }
    case 'server':
      if (!config.ledgerUrl || !config.apiKey) throw new Error('server scenario without ledgerUrl')
      return httpStore({ url: config.ledgerUrl, apiKey: config.apiKey })
    default:
      throw new Error(`not a Tollgate scenario: ${s.id}`)
  }
}

/** A meter on the scenario's store, every account granted plenty. */
async function seededMeter(s: Scenario): Promise<Meter> {
  const store = await tollgateStore(s)
  const meter = createMeter({ store, tenant: config.tenant, ...(s.lease ? { lease: LEASE } : {}) })
  cleanups.unshift(() => meter.close())
  const n = accountCount(s.accounts)
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(n, 32) }, async () => {
      while (next < n) await meter.grant(accountName(next++), CREDITS)
    }),
  )
  return meter
}

interface Limiter {
  consume(key: string): Promise<unknown>
}

async function rlfLimiter(s: Scenario): Promise<Limiter> {
  const { RateLimiterMemory, RateLimiterPostgres } = await import('rate-limiter-flexible')
  if (s.middleware === 'rlf-memory')
    return new RateLimiterMemory({ points: NEVER, duration: 3_600 })
  const { default: pg } = await import('pg')
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 10 })
  pool.on('error', () => {})
  cleanups.push(() => pool.end())
  return new Promise<Limiter>((resolve, reject) => {
    const limiter: Limiter = new RateLimiterPostgres(
      {
        storeClient: pool,
        schemaName: config.schema,
        tableName: 'rlf',
        keyPrefix: config.tenant,
        points: NEVER,
        duration: 3_600,
      },
      (error?: Error) => (error ? reject(error) : resolve(limiter)),
    )
  })
}

async function expressApp(s: Scenario) {
  const { default: express } = await import('express')
  const app = express()
  if (s.middleware === 'rate-limit') {
    const { rateLimit } = await import('express-rate-limit')
    app.use(
      rateLimit({
        windowMs: 60_000,
        limit: NEVER,
        standardHeaders: 'draft-8',
        legacyHeaders: false,
        keyGenerator: (req) => account(req.headers),
      }),
    )
  } else if (s.middleware === 'rlf-memory' || s.middleware === 'rlf-postgres') {
    const limiter = await rlfLimiter(s)
    app.use((req, res, next) => {
      limiter.consume(account(req.headers)).then(
        () => next(),
        () => {
          res.status(429).end()
        },
      )
    })
  } else if (s.middleware === 'tollgate') {
    const { metered: expressMetered } = await import('@tollgate/express')
    app.use(
      expressMetered(await seededMeter(s), { account: (req) => account(req.headers), cost: 1 }),
    )
  }
  const hello: RequestHandler = (_req, res) => {
    res.json(BODY)
  }
  app.get('/', hello)
  return app
}

async function koaApp(s: Scenario) {
  const { default: Koa } = await import('koa')
  const app = new Koa()
  if (s.middleware === 'rate-limit') {
    const { default: ratelimit } = await import('koa-ratelimit')
    app.use(
      ratelimit({
        driver: 'memory',
        db: new Map(),
        duration: 60_000,
        max: NEVER,
        id: (ctx) => account(ctx.headers),
      }),
    )
  } else if (s.middleware === 'rlf-memory' || s.middleware === 'rlf-postgres') {
    const limiter = await rlfLimiter(s)
    app.use(async (ctx, next) => {
      try {
        await limiter.consume(account(ctx.headers))
      } catch {
        ctx.status = 429
        return
      }
      await next()
    })
  } else if (s.middleware === 'tollgate') {
    const { metered: koaMetered } = await import('@tollgate/koa')
    app.use(koaMetered(await seededMeter(s), { account: (ctx) => account(ctx.headers), cost: 1 }))
  }
  const hello: Middleware = (ctx) => {
    ctx.body = BODY
  }
  app.use(hello)
  return app
}

/**
 * A Fastify app whose handler serves the benchmark's server: `serverFactory` hands Fastify's
 * own request handler over, so requests take the same path as under `app.listen()`.
 */
async function fastifyApp(s: Scenario): Promise<RequestListener> {
  const { default: Fastify } = await import('fastify')
  let listener: RequestListener | undefined
  const app = Fastify({
    logger: false,
    serverFactory: (handler) => {
      listener = handler
      // Fastify wants a server it may close; the benchmark's own one is closed by stop().
      return createServer()
    },
  })
  if (s.middleware === 'rate-limit') {
    const { default: fastifyRateLimit } = await import('@fastify/rate-limit')
    await app.register(fastifyRateLimit, {
      max: NEVER,
      timeWindow: 60_000,
      keyGenerator: (req) => account(req.headers),
    })
  } else if (s.middleware === 'rlf-memory' || s.middleware === 'rlf-postgres') {
    const limiter = await rlfLimiter(s)
    app.addHook('onRequest', async (req, reply) => {
      try {
        await limiter.consume(account(req.headers))
      } catch {
        return reply.code(429).send()
      }
    })
  } else if (s.middleware === 'tollgate') {
    const { tollgate: fastifyTollgate } = await import('@tollgate/fastify')
    await app.register(fastifyTollgate, {
      meter: await seededMeter(s),
      account: (req) => account(req.headers),
      cost: 1,
    })
  }
  app.get('/', async () => BODY)
  await app.ready()
  cleanups.unshift(() => app.close())
  if (!listener) throw new Error('Fastify did not call serverFactory')
  return listener
}

/** A Hono app on `@hono/node-server`'s request listener (the way Node serves a Hono app). */
async function honoApp(s: Scenario): Promise<RequestListener> {
  const [{ Hono }, { getRequestListener }] = await Promise.all([
    import('hono'),
    import('@hono/node-server'),
  ])
  const app = new Hono()
  if (s.middleware === 'rate-limit') {
    const { rateLimiter: honoRateLimiter } = await import('hono-rate-limiter')
    app.use(
      honoRateLimiter({
        windowMs: 60_000,
        limit: NEVER,
        standardHeaders: 'draft-7',
        keyGenerator: (c) => c.req.header('x-account') ?? '',
      }),
    )
  } else if (s.middleware === 'rlf-memory' || s.middleware === 'rlf-postgres') {
    const limiter = await rlfLimiter(s)
    app.use(async (c, next) => {
      try {
        await limiter.consume(c.req.header('x-account') ?? '')
      } catch {
        return c.body(null, 429)
      }
      await next()
    })
  } else if (s.middleware === 'tollgate') {
    const { metered: honoMetered } = await import('@tollgate/hono')
    app.use(
      honoMetered(await seededMeter(s), {
        account: (c) => c.req.header('x-account') ?? '',
        cost: 1,
      }),
    )
  }
  app.get('/', (c) => c.json(BODY))
  return getRequestListener(app.fetch)
}

async function appFor(s: Scenario): Promise<RequestListener> {
  switch (s.framework) {
    case 'express':
      return expressApp(s)
    case 'koa':
      return (await koaApp(s)).callback()
    case 'fastify':
      return fastifyApp(s)
    case 'hono':
      return honoApp(s)
    case 'nestjs': {
      // Its own module: decorators and reflect-metadata load only for NestJS scenarios.
      const { nestApp } = await import('./http-server-nest.js')
      return nestApp(s, { seededMeter, account, cleanups, BODY, NEVER })
    }
  }
}

let stopping = false
async function stop(code = 0) {
  if (stopping) return
  stopping = true
  server.closeAllConnections()
  server.close()
  for (const cleanup of cleanups) {
    try {
      await cleanup()
    } catch {
      // on the way out: nothing to do about it
    }
  }
  process.exit(code)
}

const server = createServer()
server.keepAliveTimeout = 60_000
try {
  const handler: RequestListener = await appFor(scenario)
  server.on('request', handler)
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo
    // warnings are emitted on the next tick: let them arrive first
    setImmediate(() => {
      started = true
      if (process.send) process.send({ port, warnings })
      else console.log(`${scenario.id} on http://127.0.0.1:${port}`)
    })
  })
} catch (error) {
  const message = error instanceof Error ? error.message : String(error)
  if (process.send) process.send({ error: message }, () => void stop(1))
  else {
    console.error(error)
    await stop(1)
  }
}

// The driver asks for CPU time around its measurement: CPU per request is steadier than req/s
// on a machine whose other core is busy generating the load.
process.on('message', (message) => {
  if (message === 'cpu' && process.send) process.send({ cpu: process.cpuUsage() })
})
process.on('SIGTERM', () => void stop())
process.on('disconnect', () => void stop())
