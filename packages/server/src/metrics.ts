/**
 * The server's Prometheus metrics (`GET /metrics`, docs/metrics.md): one prom-client registry
 * per server (two servers in one process never share a series), every name `tollgate_…`, and no
 * tenant or account label (bounded cardinality).
 *
 * What is counted where:
 * - HTTP requests, in an `onResponse` hook, by Fastify's route pattern (never the raw URL);
 * - ledger operations, by wrapping the store the server runs them on: the REST meters and the
 *   store protocol (`/v1/store/execute`, each item of `/v1/store/batch`) both call
 *   `store.execute`, so each operation is counted once, wherever it came from;
 * - group-commit batches, through the store's optional `observe()` hook;
 * - the change feed and webhooks, through small observers their owners call;
 * - gauges that need a read (open streams, the outbox depth) at scrape time.
 */
import { isTollgateError, type Store } from '@tollgate/core'
import type { ExecuteRequest, Outcome, WebhookRegistry } from '@tollgate/core/store'
import type { FastifyReply, FastifyRequest } from 'fastify'
import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type Registry as PromRegistry,
  Registry,
} from 'prom-client'
import type { App, ServerContext } from './context.js'
import type { ResolvedServerOptions } from './options.js'
import { authProblem, sendProblem } from './problems.js'

const BEARER = /^Bearer +(\S+) *$/i
/** Tenants whose fan-out cursor one scrape reads for the outbox depth. */
const DEPTH_TENANTS = 100
/** Events one scrape reads past the slowest cursor: the depth gauge saturates here. */
const DEPTH_LIMIT = 1_000
/** The `route` label of a request no route matched (404s): one series, whatever the URL. */
const UNMATCHED = 'unmatched'
/** HTTP methods kept as labels; anything else is `other`. */
const METHODS = new Set(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'])

/** What the change-feed fan-out reports (see ChangeFeedHub). */
export interface ChangeFeedObserver {
  /** `n` account changes arrived from the store's feed. */
  changes(n: number): void
  /** The store's feed went down (false) or came back (true). */
  status(up: boolean): void
}

/** How one webhook attempt ended. */
export type WebhookAttemptResult = 'delivered' | 'retry' | 'failed' | 'dropped'

/** What the webhook worker reports (see WebhookWorker). */
export interface WebhookObserver {
  /**
   * One attempt ended; `lagSeconds` is the time from the event to its delivery, when it was
   * delivered.
   */
  attempt(result: WebhookAttemptResult, lagSeconds: number | null): void
}

/** What the server's metrics read at scrape time. */
export interface MetricsSources {
  /** Open `/v1/store/changes` streams, and whether the store's feed is open and live. */
  changeFeed(): { streams: number; up: boolean }
  /** Whether this server's webhook worker runs (the outbox depth is exported only then). */
  delivering(): boolean
}

/** The metrics of one server. */
export class ServerMetrics {
  readonly registry: PromRegistry = new Registry()
  readonly #requests: Counter<'method' | 'route' | 'status'>
  readonly #duration: Histogram<'method' | 'route' | 'status'>
  readonly #operations: Counter<'type' | 'outcome'>
  readonly #refusals: Counter
  readonly #storeErrors: Counter<'code'>
  readonly #batchSize: Histogram
  readonly #batchDuration: Histogram
  readonly #feedChanges: Counter
  readonly #feedDrops: Counter
  readonly #webhookAttempts: Counter<'result'>
  readonly #webhookFailures: Counter
  readonly #webhookLag: Histogram
  /** Observers handed to the change feed and the webhook worker. */
  readonly changeFeed: ChangeFeedObserver
  readonly webhooks: WebhookObserver

  constructor(store: Store, sources: MetricsSources, processMetrics: boolean) {
    const registers = [this.registry]
    if (processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'tollgate_' })
    this.#requests = new Counter({
      name: 'tollgate_http_requests_total',
      help: 'HTTP requests answered, by method, route pattern and status code.',
      labelNames: ['method', 'route', 'status'],
      registers,
    })
    this.#duration = new Histogram({
      name: 'tollgate_http_request_duration_seconds',
      help: 'Time from a request arriving to its answer being sent, in seconds.',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    })
    this.#operations = new Counter({
      name: 'tollgate_ledger_operations_total',
      help: 'Ledger operations the server ran on its store, by type and outcome (ok or the error code).',
      labelNames: ['type', 'outcome'],
      registers,
    })
    this.#refusals = new Counter({
      name: 'tollgate_refusals_total',
      help: 'Operations refused for insufficient credits.',
      registers,
    })
    this.#storeErrors = new Counter({
      name: 'tollgate_store_errors_total',
      help: 'Operations the store failed (not run: unavailable, past their deadline, saturated), by code.',
      labelNames: ['code'],
      registers,
    })
    this.#batchSize = new Histogram({
      name: 'tollgate_group_commit_batch_size',
      help: 'Operations per committed group-commit transaction.',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
      registers,
    })
    this.#batchDuration = new Histogram({
      name: 'tollgate_group_commit_batch_duration_seconds',
      help: 'Time from a group-commit batch starting to its commit, retries included, in seconds.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    })
    new Gauge({
      name: 'tollgate_change_feed_up',
      help: "1 while the server's subscription to the store's change feed is open and live, else 0.",
      registers,
      collect() {
        this.set(sources.changeFeed().up ? 1 : 0)
      },
    })
    new Gauge({
      name: 'tollgate_change_feed_streams',
      help: 'Open change streams (GET /v1/store/changes).',
      registers,
      collect() {
        this.set(sources.changeFeed().streams)
      },
    })
    this.#feedChanges = new Counter({
      name: 'tollgate_change_feed_changes_total',
      help: "Account changes received from the store's change feed.",
      registers,
    })
    this.#feedDrops = new Counter({
      name: 'tollgate_change_feed_drops_total',
      help: "Times the store's change feed went down.",
      registers,
    })
    this.#webhookAttempts = new Counter({
      name: 'tollgate_webhook_attempts_total',
      help: 'Webhook delivery attempts, by result: delivered, retry (failed, tried again later), failed (failed for good), dropped (its endpoint was deleted).',
      labelNames: ['result'],
      registers,
    })
    this.#webhookFailures = new Counter({
      name: 'tollgate_webhook_failures_total',
      help: 'Webhook delivery attempts the receiver did not accept (retry and failed).',
      registers,
    })
    this.#webhookLag = new Histogram({
      name: 'tollgate_webhook_delivery_lag_seconds',
      help: 'Time from an event to its webhook delivery, in seconds.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600],
      registers,
    })
    new Gauge({
      name: 'tollgate_webhook_outbox_depth',
      help: `Outbox events not yet turned into webhook deliveries, after the slowest tenant's cursor (at most ${DEPTH_LIMIT}).`,
      registers,
      async collect() {
        const { webhooks } = store
        if (sources.delivering() && webhooks !== undefined && store.events !== undefined) {
          this.set(await outboxDepth(webhooks, store.events.bind(store)))
        }
      },
    })

    this.changeFeed = {
      changes: (n) => this.#feedChanges.inc(n),
      status: (up) => {
        if (!up) this.#feedDrops.inc()
      },
    }
    this.webhooks = {
      attempt: (result, lagSeconds) => {
        this.#webhookAttempts.labels(result).inc()
        if (result === 'retry' || result === 'failed') this.#webhookFailures.inc()
        if (lagSeconds !== null) this.#webhookLag.observe(Math.max(0, lagSeconds))
      },
    }
  }

  /** Counts one answered request. */
  request(request: FastifyRequest, reply: FastifyReply): void {
    const method = METHODS.has(request.method) ? request.method : 'other'
    const route = request.routeOptions.url ?? UNMATCHED
    const status = String(reply.statusCode)
    this.#requests.labels(method, route, status).inc()
    this.#duration.labels(method, route, status).observe(reply.elapsedTime / 1_000)
  }

  /**
   * `store` with `execute` counted (type and outcome, refusals, store failures); every other
   * member is the store's own, bound to it.
   */
  countedStore(store: Store): Store {
    const executed = (type: string, outcome: Outcome): Outcome => {
      const code = outcome.error?.code
      this.#operations.labels(type, code ?? 'ok').inc()
      if (code === 'insufficient_credits') this.#refusals.inc()
      return outcome
    }
    const failed = (type: string, err: unknown): never => {
      const code = isTollgateError(err) ? err.code : 'unknown'
      this.#operations.labels(type, code).inc()
      this.#storeErrors.labels(code).inc()
      throw err
    }
    const execute = (request: ExecuteRequest): Outcome | Promise<Outcome> => {
      const type = request.op.type
      let result: Outcome | Promise<Outcome>
      try {
        result = store.execute(request)
      } catch (err) {
        return failed(type, err)
      }
      if (!isPromise(result)) return executed(type, result)
      return result.then(
        (outcome) => executed(type, outcome),
        (err: unknown) => failed(type, err),
      )
    }
    const bound = new Map<PropertyKey, unknown>()
    return new Proxy(store, {
      get(target, property) {
        if (property === 'execute') return execute
        const value: unknown = Reflect.get(target, property, target)
        if (typeof value !== 'function') return value
        let fn = bound.get(property)
        if (fn === undefined) {
          fn = value.bind(target)
          bound.set(property, fn)
        }
        return fn
      },
    })
  }

  /** Subscribes to the store's group-commit batches, when it reports them. */
  observeStore(store: Store): void {
    store.observe?.({
      batchCommitted: (size, seconds) => {
        this.#batchSize.observe(size)
        this.#batchDuration.observe(seconds)
      },
    })
  }
}

/**
 * The server's metrics, or null when `metrics.enabled` is false, and the options the server runs
 * on: the same, with the store counted.
 */
export function withMetrics(
  options: ResolvedServerOptions,
  sources: MetricsSources,
): { options: ResolvedServerOptions; metrics: ServerMetrics | null } {
  if (!options.metrics.enabled) return { options, metrics: null }
  const { store } = options
  const metrics = new ServerMetrics(store, sources, options.metrics.processMetrics)
  metrics.observeStore(store)
  return { options: { ...options, store: metrics.countedStore(store) }, metrics }
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown }).then === 'function'
}

/**
 * Outbox events past the slowest fan-out cursor of the tenants that have webhooks: one read of
 * at most {@link DEPTH_LIMIT} events, so a scrape stays cheap however deep the backlog is.
 */
async function outboxDepth(
  registry: WebhookRegistry,
  events: NonNullable<Store['events']>,
): Promise<number> {
  const tenants = [...new Set((await registry.listWebhooks(null)).map((w) => w.tenant))]
  if (tenants.length === 0) return 0
  let slowest = Number.POSITIVE_INFINITY
  for (const tenant of tenants.slice(0, DEPTH_TENANTS)) {
    slowest = Math.min(slowest, await registry.fanOutCursor(tenant))
  }
  const pending = await events({ tenant: null, after: slowest, limit: DEPTH_LIMIT })
  return pending.length
}

/** Counts every answered request; on the root instance, so that 404s count too. */
export function countRequests(app: App, metrics: ServerMetrics): void {
  app.addHook('onResponse', async (request, reply) => metrics.request(request, reply))
}

/**
 * Registers `GET /metrics`. With `auth: 'admin'` a scrape needs an admin key as a Bearer token
 * (Prometheus: `authorization: { credentials: <key> }`).
 */
export function metricsRoutes(app: App, ctx: ServerContext, metrics: ServerMetrics): void {
  const open = ctx.options.metrics.auth === 'none'
  app.get(
    '/metrics',
    {
      schema: { hide: true },
      onRequest: async (request, reply) => {
        if (open) return
        const header = request.headers.authorization
        const match = typeof header === 'string' ? BEARER.exec(header) : null
        const key = match === null ? null : await ctx.verifier.verify(match[1]!)
        if (key === null || key.role !== 'admin') return sendProblem(reply, authProblem())
      },
    },
    async (_request, reply) => {
      const text = await metrics.registry.metrics()
      return reply.type(metrics.registry.contentType).send(text)
    },
  )
}
