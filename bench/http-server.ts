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
 */
import 'reflect-metadata'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type IncomingHttpHeaders, type RequestListener } from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import fastifyRateLimit from '@fastify/rate-limit'
import { getRequestListener } from '@hono/node-server'
import {
  Controller,
  type DynamicModule,
  Get,
  Module,
  type Provider,
  type Type,
} from '@nestjs/common'
import { APP_GUARD, NestFactory, Reflector } from '@nestjs/core'
import { ExpressAdapter } from '@nestjs/platform-express'
import {
  getOptionsToken,
  getStorageToken,
  ThrottlerGuard,
  ThrottlerModule,
  type ThrottlerModuleOptions,
  type ThrottlerStorage,
} from '@nestjs/throttler'
import { createMeter, httpStore, type Meter, memoryStore, type Store } from '@tollgate/core'
import { metered as expressMetered } from '@tollgate/express'
import { tollgate as fastifyTollgate } from '@tollgate/fastify'
import { metered as honoMetered } from '@tollgate/hono'
import { metered as koaMetered } from '@tollgate/koa'
import { Credits, TollgateModule } from '@tollgate/nestjs'
import { pgliteStore, postgresStore } from '@tollgate/postgres'
import express, { type RequestHandler } from 'express'
import { rateLimit } from 'express-rate-limit'
import Fastify from 'fastify'
import { Hono } from 'hono'
import { rateLimiter as honoRateLimiter } from 'hono-rate-limiter'
import Koa, { type Middleware } from 'koa'
import ratelimit from 'koa-ratelimit'
import pg from 'pg'
import { RateLimiterMemory, RateLimiterPostgres } from 'rate-limiter-flexible'
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

function tollgateStore(s: Scenario): Store {
  switch (s.store) {
    case 'memory':
      return memoryStore()
    case 'pglite': {
      const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-bench-http-'))
      cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }))
      return pgliteStore({ dataDir })
    }
    case 'postgres':
      return postgresStore({ connectionString: config.databaseUrl, schema: config.schema })
    case 'server':
      if (!config.ledgerUrl || !config.apiKey) throw new Error('server scenario without ledgerUrl')
      return httpStore({ url: config.ledgerUrl, apiKey: config.apiKey })
    default:
      throw new Error(`not a Tollgate scenario: ${s.id}`)
  }
}

/** A meter on the scenario's store, every account granted plenty. */
async function seededMeter(s: Scenario): Promise<Meter> {
  const store = tollgateStore(s)
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
  if (s.middleware === 'rlf-memory')
    return new RateLimiterMemory({ points: NEVER, duration: 3_600 })
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 10 })
  pool.on('error', () => {})
  cleanups.push(() => pool.end())
  return new Promise<Limiter>((resolve, reject) => {
    const limiter: RateLimiterPostgres = new RateLimiterPostgres(
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
  const app = express()
  if (s.middleware === 'rate-limit') {
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
  const app = new Koa()
  if (s.middleware === 'rate-limit') {
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
  const app = new Hono()
  if (s.middleware === 'rate-limit') {
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

/** `@nestjs/throttler`'s guard, keyed on the account header as the other limiters are. */
class AccountThrottlerGuard extends ThrottlerGuard {
  protected override async getTracker(req: Record<string, unknown>): Promise<string> {
    return account(req.headers as IncomingHttpHeaders)
  }
}

@Controller()
class HelloController {
  @Get()
  hello() {
    return BODY
  }
}

@Controller()
class MeteredHelloController {
  @Get()
  @Credits(1)
  hello() {
    return BODY
  }
}

/** A Nest app on its default platform (Express), whose Express instance serves the requests. */
async function nestApp(s: Scenario): Promise<RequestListener> {
  const imports: DynamicModule[] = []
  const providers: Provider[] = []
  let controller: Type<unknown> = HelloController
  if (s.middleware === 'rate-limit') {
    imports.push(ThrottlerModule.forRoot([{ ttl: 60_000, limit: NEVER }]))
    providers.push({
      provide: APP_GUARD,
      // Built here rather than by class: under tsx, @nestjs/throttler's require() of the ES
      // module @nestjs/core loads a second copy, whose Reflector Nest does not provide.
      useFactory: (
        options: ThrottlerModuleOptions,
        storage: ThrottlerStorage,
        reflector: Reflector,
      ) => new AccountThrottlerGuard(options, storage, reflector),
      inject: [getOptionsToken(), getStorageToken(), Reflector],
    })
  } else if (s.middleware === 'tollgate') {
    const meter = await seededMeter(s)
    imports.push(TollgateModule.forRoot({ meter, account: (req) => account(req.headers) }))
    controller = MeteredHelloController
  } else if (s.middleware !== 'bare') {
    throw new Error(`no NestJS app for ${s.id}`)
  }
  class BenchModule {}
  Module({ imports, providers, controllers: [controller] })(BenchModule)
  const instance = express()
  const app = await NestFactory.create(BenchModule, new ExpressAdapter(instance), {
    logger: false,
    // Throw what failed (reported to the driver) rather than exit silently.
    abortOnError: false,
  })
  await app.init()
  cleanups.unshift(() => app.close())
  return instance
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
    case 'nestjs':
      return nestApp(s)
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
