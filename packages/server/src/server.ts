/**
 * `createServer()`: the Tollgate HTTP service. Fastify 5 with zod schemas (the same ones core
 * validates with), API keys per tenant, the REST API, the store protocol for `httpStore()`, an
 * OpenAPI 3.1 document generated from the schemas, health checks, a periodic sweep and a
 * graceful shutdown. See docs/server.md.
 */
import type { AddressInfo } from 'node:net'
import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import {
  createMeter,
  InvalidInputError,
  isTollgateError,
  type Meter,
  StoreUnavailableError,
} from '@tollgate/core'
import { checkAccount, DEADLINE_HEADER } from '@tollgate/core/protocol'
import Fastify, { type FastifyReply, type FastifyRequest, LogController } from 'fastify'
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod'
import { LRUCache } from 'lru-cache'
import { generateApiKey, hashApiKey, KeyVerifier, parseApiKey } from './api-keys.js'
import { ChangeFeedHub } from './change-feed.js'
import type { App, Caller, ServerContext } from './context.js'
import { dashboardRoutes } from './dashboard-routes.js'
import { keyRoutes } from './key-routes.js'
import { countRequests, metricsRoutes, type ServerMetrics, withMetrics } from './metrics.js'
import { type CreateServerOptions, type ResolvedServerOptions, resolveOptions } from './options.js'
import {
  authProblem,
  clientErrorResponse,
  problemOf,
  REQUEST_ID_HEADER,
  requestIdOf,
  routeNotFound,
  sendProblem,
} from './problems.js'
import { RedeemLimiter } from './redeem-limiter.js'
import { restRoutes } from './rest-routes.js'
import { healthResponse } from './schemas.js'
import { storeRoutes } from './store-routes.js'
import { webhookRoutes } from './webhook-routes.js'
import { WebhookWorker } from './webhook-worker.js'

/** Options of {@link TollgateServer.listen}. */
export interface ListenOptions {
  /** `0` picks a free port. @default 7070 */
  port?: number
  /** @default '127.0.0.1' */
  host?: string
}

/** What {@link TollgateServer.listen} answers. */
export interface ListenResult {
  /** `http://host:port`, for `httpStore({ url })` and the CLI. */
  url: string
  port: number
  /**
   * The bootstrap admin key, when this start generated it: shown this once and never again.
   * Null on later starts and when `adminKey` / `TOLLGATE_ADMIN_KEY` was given.
   */
  adminKey: string | null
}

/** How long `/readyz` waits for the store before it says not ready. */
const READY_TIMEOUT_MS = 2_000
/** Accounts one tenant's sweep touches per tick; the next tick continues. */
const SWEEP_LIMIT = 1_000
/**
 * Tenants one sweeper tick visits; the next tick continues after the last one. Bounds the idle
 * load of a store with very many tenants (sweeping is not needed for correctness: due work is
 * also applied on the next touch of an account).
 */
const SWEEP_TENANTS_PER_TICK = 1_000
/** Tenants' REST meters kept at once (LRU): a meter is cheap to make again, memory is not. */
const MAX_METERS = 1_000
/** Tenants remembered for the sweeper when the store cannot list them (LRU). */
const MAX_SEEN_TENANTS = 10_000
const BEARER = /^Bearer +(\S+) *$/i
/** Where the API reference (Swagger UI, its assets served from the package) lives. */
const DOCS_PREFIX = '/docs'
/** A `Host` header the OpenAPI document's `servers` may name: a host name or address and port. */
const SANE_HOST = /^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?$/

/** A server made by {@link createServer}. */
export class TollgateServer {
  /** The Fastify instance, e.g. for `inject()` in tests or extra routes before `listen()`. */
  readonly fastify: App
  readonly #o: ResolvedServerOptions
  readonly #ctx: ServerContext
  readonly #meters = new LRUCache<string, Meter>({ max: MAX_METERS })
  /** Tenants seen, for a store without `tenants()`; unused (empty) otherwise. */
  readonly #seen = new LRUCache<string, true>({ max: MAX_SEEN_TENANTS })
  /** Where the periodic sweep continues: the last tenant the previous tick visited. */
  #sweepAfter: string | null = null
  #url: string | null = null
  #sweeper: NodeJS.Timeout | null = null
  #sweeping: Promise<void> | null = null
  #listening: Promise<ListenResult> | null = null
  #closing: Promise<void> | null = null
  #storeClosed = false
  #webhooks: WebhookWorker | null = null
  /** Null when `metrics.enabled` is false. */
  readonly #metrics: ServerMetrics | null

  constructor(options: CreateServerOptions) {
    const { options: o, metrics } = withMetrics(resolveOptions(options), {
      changeFeed: () => ({ streams: this.#ctx.changes.size, up: this.#ctx.changes.up }),
      delivering: () => this.#webhooks !== null,
    })
    this.#o = o
    this.#metrics = metrics
    const callers = new WeakMap<FastifyRequest, Caller>()
    /** When each request arrived (performance.now()): its deadline counts from there. */
    const arrivals = new WeakMap<FastifyRequest, number>()
    const ctx: ServerContext = {
      options: o,
      // Real time, not the injectable clock: the cache is about seconds on the wall.
      verifier: new KeyVerifier(o.keys),
      limiter: new RedeemLimiter(o.redeemLimit, o.clock, {
        store: o.store,
        onError: (err) => {
          this.fastify.log.warn(
            { err },
            'redeem limiter: the store did not take a failure; this process counts alone',
          )
        },
      }),
      changes: new ChangeFeedHub(
        o.store,
        o.changeFeed,
        (details, message) => this.fastify.log.warn(details, message),
        metrics?.changeFeed,
      ),
      meterFor: (tenant) => this.#meterFor(tenant),
      tenantSettings: async (tenant, patch) => {
        const store = o.store
        if (store.tenantSettings === undefined || store.putTenantSettings === undefined) {
          throw new InvalidInputError(
            'settings',
            `the ${store.kind} store keeps no tenant settings`,
          )
        }
        try {
          return patch === undefined
            ? await store.tenantSettings(tenant)
            : await store.putTenantSettings(tenant, patch)
        } catch (err) {
          if (isTollgateError(err)) throw err
          throw new StoreUnavailableError('store failed', { cause: err })
        }
      },
      sawTenant: (tenant) => {
        if (o.store.tenants === undefined) this.#seen.set(tenant, true)
      },
      callerOf(request) {
        const caller = callers.get(request)
        // Only reachable if a /v1 route skipped the auth hook: fail closed.
        if (caller === undefined) throw new StoreUnavailableError('request was not authenticated')
        return caller
      },
      timeoutOf(request) {
        const header = request.headers[DEADLINE_HEADER]
        const asked = typeof header === 'string' ? Number(header) : Number.NaN
        const budget = asked >= 1 ? Math.min(asked, o.timeoutMs) : o.timeoutMs
        const arrived = arrivals.get(request) ?? performance.now()
        const left = Math.floor(budget - (performance.now() - arrived))
        if (left < 1) {
          throw new StoreUnavailableError(
            "the request's deadline passed before the operation ran",
            {
              retryAfterMs: 1_000,
            },
          )
        }
        return left
      },
      wakeWebhooks: () => this.#webhooks?.wake(),
    }
    this.#ctx = ctx

    const app = Fastify({
      logger: o.logger,
      // The client's X-Request-Id when sane, else a UUID; logged as `requestId` on every line.
      genReqId: requestIdOf,
      requestIdHeader: false,
      logController: new LogController({ requestIdLogLabel: 'requestId' }),
      bodyLimit: o.bodyLimit,
      // We answer 503 ourselves during shutdown, as problem+json like every other refusal.
      return503OnClosing: false,
      // Reasonable defaults for a service on its own port: no slowloris, no hung sockets.
      requestTimeout: 30_000,
      connectionTimeout: 60_000,
      // An account id is up to 200 characters, up to 12 bytes each once URL-encoded.
      routerOptions: { maxParamLength: 2_500 },
      // Refusals before any route runs (bad percent-encoding, an over-long parameter) are
      // problem+json like every other answer.
      frameworkErrors: (error, _request, reply) => {
        void sendProblem(reply, problemOf(error, o.bodyLimit))
      },
      // Node answers an HTTP/1.1 request without Host with a bare 400 of its own; nothing here
      // routes by host, so such a request is served (or refused as problem+json) like any other.
      http: { requireHostHeader: false },
      // Requests Node's parser refuses (headers too large, a malformed request line).
      clientErrorHandler: (error, socket) => {
        if ((error as NodeJS.ErrnoException).code === 'ECONNRESET' || socket.destroyed) return
        if (socket.writable) socket.write(clientErrorResponse((error as { code?: string }).code))
        socket.destroy(error)
      },
    }).withTypeProvider<ZodTypeProvider>()
    this.fastify = app
    if (metrics !== null) countRequests(app, metrics)

    app.setValidatorCompiler(validatorCompiler)
    // Responses are plain JSON.stringify: the response schemas document the API (OpenAPI);
    // re-validating every answer would cost the hot path and turn a drift into a 500.
    app.setSerializerCompiler(() => (data) => JSON.stringify(data))

    app.removeAllContentTypeParsers()
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
      try {
        done(null, parseJson(body as string))
      } catch {
        done(new InvalidInputError('body', 'is not valid JSON'), undefined)
      }
    })

    app.setErrorHandler((error, request, reply) => {
      const problem = problemOf(error, request.routeOptions.bodyLimit ?? o.bodyLimit)
      if (problem.status >= 500) {
        // The cause (a database's message) is logged here; the answer carries none of it.
        request.log.error({ err: error }, 'request failed')
      }
      return sendProblem(reply, problem)
    })
    app.setNotFoundHandler((request, reply) => sendProblem(reply, routeNotFound(request)))

    // First of the hooks, so that every answer carries the id: refusals, 404s and streams (the
    // change feed writes its head itself, which keeps headers set on the raw response).
    app.addHook('onRequest', async (request, reply) => {
      reply.raw.setHeader(REQUEST_ID_HEADER, request.id)
    })
    app.addHook('onRequest', async (request, reply) => {
      arrivals.set(request, performance.now())
      const url = request.routeOptions.url
      if (this.#closing !== null && url !== '/healthz') {
        reply.header('connection', 'close')
        return sendProblem(
          reply,
          problemOf(new StoreUnavailableError('server is shutting down'), 0),
        )
      }
      if (url === undefined || !url.startsWith('/v1/')) return
      const caller = await this.#authenticate(request)
      if (caller === null) return sendProblem(reply, authProblem())
      callers.set(request, caller)
      ctx.sawTenant(caller.tenant)
    })
    // During shutdown every answer closes its connection: a kept-alive socket would otherwise
    // hold `close()` open until the client's keep-alive timeout.
    app.addHook('onSend', async (_request, reply) => {
      if (this.#closing !== null) reply.header('connection', 'close')
    })
    // Routes whose body is all optional may be sent without one.
    app.addHook('preValidation', async (request) => {
      if (request.body === undefined && request.routeOptions.schema?.body !== undefined) {
        request.body = {}
      }
    })

    void app.register(fastifySwagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'Tollgate',
          description: 'Prepaid credits: grants, holds, debits, ledgers and redeem codes.',
          version: '1',
        },
        components: {
          securitySchemes: {
            apiKey: {
              type: 'http',
              scheme: 'bearer',
              bearerFormat: 'tg_sk_<id>_<secret>',
              description:
                'An API key, `Authorization: Bearer tg_sk_<id>_<secret>`. A tenant key acts on its ' +
                'tenant; an admin key acts on `default` or on the tenant named by `Tollgate-Tenant`, ' +
                'and manages keys (`tollgate keys create`). Every `/v1` route needs one; the health ' +
                'checks, this document and `/docs` do not.',
            },
          },
        },
      },
      transform: jsonSchemaTransform,
      transformObject: jsonSchemaTransformObject,
    })
    // The API reference in a browser. Public like /openapi.json: it documents, it does not act
    // (every operation it tries still needs a key). Its scripts, styles and fonts are files of
    // the package, served from here: it renders offline, with no CDN.
    void app.register(fastifySwaggerUi, {
      routePrefix: DOCS_PREFIX,
      // Served as /docs/json: the same document as /openapi.json, `servers` included.
      transformSpecification: (_doc, request) => this.#openapi(request),
      transformSpecificationClone: false,
      uiConfig: { deepLinking: true, persistAuthorization: false },
    })

    // Registered after the swagger plugin so that it sees every route.
    void app.register(async (scope) => {
      const zapp = scope.withTypeProvider<ZodTypeProvider>()
      restRoutes(zapp, ctx)
      storeRoutes(zapp, ctx)
      void zapp.register(async (keysScope) => {
        keyRoutes(keysScope.withTypeProvider<ZodTypeProvider>(), ctx)
      })
      webhookRoutes(zapp, ctx)
      if (metrics !== null) metricsRoutes(zapp, ctx, metrics)
      dashboardRoutes(zapp)

      zapp.get(
        '/healthz',
        {
          schema: { operationId: 'getHealth', tags: ['health'], response: { 200: healthResponse } },
        },
        async () => ({ status: 'ok' }),
      )
      zapp.get(
        '/readyz',
        {
          schema: {
            operationId: 'getReadiness',
            tags: ['health'],
            response: { 200: healthResponse, 503: healthResponse },
          },
        },
        async (_request, reply) => {
          const answers = this.#closing === null && (await this.#storeAnswers())
          // Checked again after the wait: a shutdown may have begun meanwhile.
          const ready = answers && this.#closing === null
          reply.code(ready ? 200 : 503)
          return { status: ready ? 'ready' : 'unavailable' }
        },
      )
      zapp.get('/openapi.json', { schema: { hide: true } }, async (request, reply: FastifyReply) =>
        reply.type('application/json').send(JSON.stringify(this.#openapi(request))),
      )
    })
  }

  /**
   * What the server holds in memory per tenant, each bounded whatever the number of tenants:
   * REST meters (LRU) and, for a store without `tenants()`, the tenants remembered for the
   * sweeper.
   * @example server.stats() // { meters: 12, sweptTenants: 0 }
   */
  stats(): { meters: number; sweptTenants: number } {
    return { meters: this.#meters.size, sweptTenants: this.#seen.size }
  }

  /** The URL once listening, else null. */
  get url(): string | null {
    return this.#url
  }

  /**
   * The OpenAPI document with `servers` naming this server as the request reached it (its
   * `Host`, so a proxy's or a container's name works), else the address it listens on.
   */
  #openapi(request: FastifyRequest): Record<string, unknown> {
    const host = request.headers.host
    const url =
      typeof host === 'string' && SANE_HOST.test(host)
        ? `${request.protocol}://${host}`
        : (this.#url ?? '/')
    return { ...(this.fastify.swagger() as unknown as Record<string, unknown>), servers: [{ url }] }
  }

  /** The Bearer key's caller, or null for any failure (all answered alike). */
  async #authenticate(request: FastifyRequest): Promise<Caller | null> {
    const header = request.headers.authorization
    const match = typeof header === 'string' ? BEARER.exec(header) : null
    if (match === null) return null
    const key = await this.#ctx.verifier.verify(match[1]!)
    if (key === null) return null
    const named = request.headers['tollgate-tenant']
    if (named === undefined) return { key, tenant: key.role === 'admin' ? 'default' : key.tenant }
    if (typeof named !== 'string') return null
    if (key.role !== 'admin') return named === key.tenant ? { key, tenant: named } : null
    return { key, tenant: checkAccount(named, 'Tollgate-Tenant') }
  }

  #meterFor(tenant: string): Meter {
    // Evicted meters are dropped, not closed: closing a meter closes the store. A cache-less
    // meter holds no timer and no connection, so nothing is left behind.
    let meter = this.#meters.get(tenant)
    if (meter === undefined) {
      // No cache: the REST API answers balances fresh, and another server may share the store.
      meter = createMeter({
        ...this.#o.meter,
        store: this.#o.store,
        tenant,
        clock: this.#o.clock,
        cache: false,
      })
      this.#meters.set(tenant, meter)
    }
    return meter
  }

  async #storeAnswers(): Promise<boolean> {
    if (this.#storeClosed) return false
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), READY_TIMEOUT_MS)
      timer.unref()
    })
    const probe = (async () => {
      try {
        await this.#o.store.dueAccounts('default', this.#o.clock(), 1)
        return true
      } catch {
        return false
      }
    })()
    try {
      return await Promise.race([probe, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * Migrates the store, registers the bootstrap admin key on the first start and starts
   * listening and sweeping.
   * @example const { url, adminKey } = await server.listen({ port: 7070 })
   */
  listen(options: ListenOptions = {}): Promise<ListenResult> {
    if (this.#closing !== null) return Promise.reject(new Error('the server was closed'))
    this.#listening ??= this.#listen(options)
    return this.#listening
  }

  async #listen(options: ListenOptions): Promise<ListenResult> {
    const { store, keys } = this.#o
    await store.migrate?.()
    if (store.keys === undefined) {
      this.fastify.log.warn(
        `the ${store.kind} store keeps no API keys: they live in memory and die with the process`,
      )
    }
    const adminKey = await this.#bootstrap()
    if (store.tenants === undefined) {
      for (const key of await keys.listKeys(null)) {
        if (key.revokedAt === null) this.#seen.set(key.tenant, true)
      }
      this.#seen.set('default', true)
    }
    await this.fastify.listen({ port: options.port ?? 7070, host: options.host ?? '127.0.0.1' })
    const address = this.fastify.server.address() as AddressInfo
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
    this.#url = `http://${host}:${address.port}`
    if (this.#o.sweepIntervalMs > 0) {
      this.#sweeper = setInterval(() => {
        if (this.#sweeping === null)
          this.#sweeping = this.#sweepTick().finally(() => (this.#sweeping = null))
      }, this.#o.sweepIntervalMs)
      this.#sweeper.unref()
    }
    await this.#startWebhooks()
    return { url: this.#url, port: address.port, adminKey }
  }

  /** Starts the webhook worker when the store can deliver (an outbox and a registry). */
  async #startWebhooks(): Promise<void> {
    const { store, webhooks, clock } = this.#o
    if (!webhooks.deliver || store.webhooks === undefined || store.events === undefined) return
    this.#webhooks = new WebhookWorker(
      {
        events: store.events.bind(store),
        watch: store.watch?.bind(store),
      },
      store.webhooks,
      webhooks,
      clock,
      this.fastify.log,
      this.#metrics?.webhooks,
    )
    await this.#webhooks.start()
  }

  /** Registers `adminKey` when its id is new; generates one when no admin key is active. */
  async #bootstrap(): Promise<string | null> {
    const { keys, adminKey, clock } = this.#o
    const log = this.fastify.log
    if (adminKey !== null) {
      const id = parseApiKey(adminKey)!.id
      const existing = await keys.findKey(id)
      if (existing === null) {
        await keys.createKey({
          id,
          tenant: 'default',
          role: 'admin',
          name: 'bootstrap admin',
          hash: hashApiKey(adminKey),
          createdAt: clock(),
          revokedAt: null,
        })
        log.info({ keyId: id }, 'registered the configured admin key')
      } else if (existing.hash !== hashApiKey(adminKey) || existing.revokedAt !== null) {
        log.warn(
          { keyId: id },
          'the configured admin key is revoked or differs from the stored one',
        )
      }
      return null
    }
    const active = await keys.listKeys(null)
    if (active.some((k) => k.role === 'admin' && k.revokedAt === null)) return null
    const { id, key } = generateApiKey()
    await keys.createKey({
      id,
      tenant: 'default',
      role: 'admin',
      name: 'bootstrap admin',
      hash: hashApiKey(key),
      createdAt: clock(),
      revokedAt: null,
    })
    log.info({ keyId: id }, 'generated the bootstrap admin key (returned by listen() once)')
    return key
  }

  /**
   * Sweeps every tenant once: expired holds released, expiry and cycles applied, old idempotency
   * records pruned. Tenants come from the store (`store.tenants()`: every tenant with accounts),
   * or, for a store that cannot list them, from those this server saw (keys and requests,
   * bounded). Failures are logged, not thrown.
   */
  async sweep(): Promise<void> {
    let after: string | null = null
    for (;;) {
      const page = await this.#tenantPage(after, SWEEP_TENANTS_PER_TICK)
      if (page === null) return
      await this.#sweepTenants(page)
      if (page.length < SWEEP_TENANTS_PER_TICK) return
      after = page[page.length - 1]!
    }
  }

  /** One periodic tick: the next {@link SWEEP_TENANTS_PER_TICK} tenants, round robin. */
  async #sweepTick(): Promise<void> {
    const page = await this.#tenantPage(this.#sweepAfter, SWEEP_TENANTS_PER_TICK)
    if (page === null) return
    this.#sweepAfter = page.length < SWEEP_TENANTS_PER_TICK ? null : page[page.length - 1]!
    await this.#sweepTenants(page)
  }

  /** Up to `limit` tenants after `after` in order; null when they cannot be read (logged). */
  async #tenantPage(after: string | null, limit: number): Promise<string[] | null> {
    const store = this.#o.store
    if (store.tenants === undefined) {
      const all = [...this.#seen.keys()].sort()
      return (after === null ? all : all.filter((t) => t > after)).slice(0, limit)
    }
    try {
      return await store.tenants(after, limit)
    } catch (err) {
      this.fastify.log.warn(
        { err: isTollgateError(err) ? err.message : String(err) },
        'sweep could not list tenants',
      )
      return null
    }
  }

  async #sweepTenants(tenants: readonly string[]): Promise<void> {
    for (const tenant of tenants) {
      if (this.#closing !== null) return
      try {
        await this.#meterFor(tenant).sweep({ limit: SWEEP_LIMIT })
      } catch (err) {
        this.fastify.log.warn(
          { err: isTollgateError(err) ? err.message : String(err), tenant },
          'sweep failed',
        )
      }
    }
  }

  /**
   * Stops accepting connections, lets in-flight requests finish, stops the sweeper and closes
   * the store (once). Safe to call more than once.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close(): Promise<void> {
    if (this.#sweeper !== null) clearInterval(this.#sweeper)
    // Attempts in flight finish (each within its deadline) before the store closes.
    const webhooks = this.#webhooks?.stop()
    try {
      // Streams never end on their own: the server would wait for them forever.
      await this.#ctx.changes.close()
      // Waits for in-flight requests; new ones on kept-alive sockets get a 503 meanwhile.
      await this.fastify.close()
    } finally {
      await this.#sweeping
      await webhooks
      this.#storeClosed = true
      await this.#o.store.close()
    }
  }
}

/**
 * Creates the Tollgate server over a store. Nothing listens until {@link TollgateServer.listen}.
 * @example
 * import { createServer } from '@tollgate/server'
 * import { pgliteStore } from '@tollgate/postgres'
 * const server = createServer({ store: pgliteStore({ dataDir: './.tollgate' }) })
 * const { url, adminKey } = await server.listen({ port: 7070 })
 * process.once('SIGTERM', () => void server.close())
 */
export function createServer(options: CreateServerOptions): TollgateServer {
  return new TollgateServer(options)
}

/**
 * JSON.parse that refuses `__proto__` keys (prototype pollution) and reads an empty body as
 * absent. The check is on the text first, so a normal body parses at full speed.
 */
function parseJson(text: string): unknown {
  if (text.trim() === '') return undefined
  if (!text.includes('__proto__') && !text.includes('\\u')) return JSON.parse(text)
  return JSON.parse(text, (key, value: unknown) => {
    if (key === '__proto__') throw new Error('__proto__ is not allowed')
    return value
  })
}
