/**
 * `CreateServerOptions` and their one `resolveOptions()`: defaults spread, unknown keys warned,
 * everything the hot path needs precomputed once.
 */
import { InvalidInputError, type MeterOptions, type Store } from '@tollgate/core'
import {
  checkBoolean,
  checkFunction,
  checkInt,
  checkStore,
  type KeyRegistry,
  memoryKeyRegistry,
  type OptionDefaults,
  readOptions,
  resolveRedeemAttempts,
} from '@tollgate/core/store'
import type { FastifyServerOptions } from 'fastify'
import { parseApiKey } from './api-keys.js'
import type { RedeemLimits } from './redeem-limiter.js'

/** Engine settings of the REST routes' meters (one per tenant). */
export type ServerMeterOptions = Pick<
  MeterOptions,
  | 'lowBalanceThreshold'
  | 'overdraftLimit'
  | 'overage'
  | 'redeemAttempts'
  | 'defaultTtlMs'
  | 'retentionMs'
>

/** Options of {@link createServer}. */
export interface CreateServerOptions {
  /**
   * Where the credits (and the API keys) live: any Tollgate store. The server migrates it on
   * `listen()` and closes it on `close()`.
   * @example pgliteStore({ dataDir: './.tollgate' })
   */
  store: Store
  /**
   * A `tg_sk_<id>_<secret>` key to register as an admin key of tenant `default` when the store
   * does not know its id yet. Without it, the first start generates one and `listen()` returns
   * it once.
   * @default process.env.TOLLGATE_ADMIN_KEY
   */
  adminKey?: string
  /** The server's clock (ms since epoch); every operation is stamped with it. @default Date.now */
  clock?: () => number
  /**
   * Stamp store-protocol operations with the `now` the client sends instead of the server's
   * clock. For tests and simulations only: a client could backdate its own tenant's operations.
   * @default false
   */
  clientClock?: boolean
  /** Largest request body in bytes; larger ones are 413 before they are parsed. @default 65_536 */
  bodyLimit?: number
  /**
   * Largest `/v1/store/codes` body of a tenant key, in bytes (at least `bodyLimit`). `httpStore()`
   * sends 1,000 code hashes (about 270 KB) per request. Admin keys may send up to 32 MiB.
   * @default 1_048_576
   */
  codesBodyLimit?: number
  /**
   * How often every known tenant is swept (expired holds released, expiry and cycles applied,
   * old idempotency records pruned). `0` turns the sweeper off.
   * @default 30_000
   */
  sweepIntervalMs?: number
  /**
   * Fastify logger options (pino), or `false`. `Authorization` headers are redacted, and no key
   * or code value is ever logged. @default true (level info)
   */
  logger?: FastifyServerOptions['logger']
  /** Engine settings for the REST routes. @default {} */
  meter?: ServerMeterOptions
  /**
   * The server's redeem brakes (per process), on top of the engine's `meter.redeemAttempts`.
   * @default { accountFailuresPerMinute: 20, failingAccountsPerMinute: 100 }
   */
  /**
   * An operation's deadline in ms, counted from the request's arrival: the default when the
   * request sends no `Tollgate-Deadline-Ms`, and the most it may ask for. An operation the
   * store cannot run within it is answered 503 with `Retry-After` and never applied.
   * @default 5_000
   */
  timeoutMs?: number
  redeemLimit?: RedeemLimitOptions
  /** The change feed `httpStore().watch()` streams from (`GET /v1/store/changes`, SSE). */
  changeFeed?: ChangeFeedOptions
  /** Webhook delivery: targets, retries, limits. See docs/webhooks.md. @default {} */
  webhooks?: WebhookOptions
  /** Prometheus metrics at `GET /metrics`. See docs/metrics.md. @default {} */
  metrics?: MetricsOptions
}

/** Options of the server's `GET /metrics`; see docs/metrics.md. */
export interface MetricsOptions {
  /** Serve `/metrics` and count what the server does. @default true */
  enabled?: boolean
  /**
   * Who may scrape: `'admin'` wants an admin key as a Bearer token (metrics show every tenant's
   * traffic); `'none'` opens it (a scrape target on a private network).
   * @default process.env.TOLLGATE_METRICS_AUTH, else 'admin'
   */
  auth?: 'admin' | 'none'
  /** Also export Node's process metrics (CPU, memory, event loop), as `tollgate_process_*`. @default true */
  processMetrics?: boolean
}

/** Options of the server's webhooks; see docs/webhooks.md. */
export interface WebhookOptions {
  /**
   * Run this process's delivery worker. Routes work either way; a process that should only
   * serve the API (others deliver) turns it off.
   * @default true
   */
  deliver?: boolean
  /**
   * Allow targets on loopback, private and link-local addresses (and `localhost`). Off by
   * default: a tenant could otherwise make the server reach its own network (SSRF). Turn it on
   * when the server and every receiver are yours (self-hosting).
   * @default false
   */
  allowPrivateTargets?: boolean
  /** Allow `http:` targets; otherwise https only. @default the value of `allowPrivateTargets` */
  allowHttp?: boolean
  /**
   * Waits before each retry, in ms, after the first attempt failed: one retry per entry, then
   * the delivery is marked failed. Each wait varies by ±`retryJitter`.
   * @default [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000] (about a day)
   * @example { retryScheduleMs: [1_000, 2_000, 4_000] }
   */
  retryScheduleMs?: number[]
  /** How far each retry wait varies, as a fraction (0–1). @default 0.2 */
  retryJitter?: number
  /** Deadline of one attempt (connect, send, answer), in ms. @default 10_000 */
  timeoutMs?: number
  /** Attempts in flight at once in this process. @default 16 */
  concurrency?: number
  /** Bytes of an answer read at most; the status decides. @default 65_536 */
  maxResponseBytes?: number
  /** How often the worker looks for work without a change notification, in ms. @default 1_000 */
  pollIntervalMs?: number
  /** Endpoints per tenant. @default 20 */
  maxPerTenant?: number
  /**
   * How long delivered and failed deliveries are kept (listed, retried by hand), in ms; pending
   * ones stay until they finish. @default 604_800_000 (7 days)
   */
  retentionMs?: number
}

/** {@link WebhookOptions} with defaults applied. */
export interface ResolvedWebhookOptions {
  deliver: boolean
  allowPrivateTargets: boolean
  allowHttp: boolean
  retryScheduleMs: number[]
  retryJitter: number
  timeoutMs: number
  concurrency: number
  maxResponseBytes: number
  pollIntervalMs: number
  maxPerTenant: number
  retentionMs: number
  /** A claimed delivery is this process's for this long: well past an attempt's deadline. */
  leaseMs: number
}

/** Options of the server's change feed; see docs/server.md, "Change feed". */
export interface ChangeFeedOptions {
  /** Streams open at once; one more is answered 503 with `Retry-After`. @default 1_000 */
  maxSubscribers?: number
  /**
   * Bytes a stream may have waiting to be sent; a consumer that falls further behind is
   * disconnected (it reconnects and drops its cache), so that it never holds the server's memory.
   * @default 1_048_576
   */
  maxBufferBytes?: number
  /** A comment line is sent this often on an idle stream, so both ends see a dead one. @default 15_000 */
  heartbeatMs?: number
}

/** Options of the server's redeem limiter; see docs/server.md, "Redeem throttling". */
export interface RedeemLimitOptions {
  /**
   * Failed redemptions per account per minute; past it that account gets 429 without a store
   * round trip. Above the engine's own limit (`meter.redeemAttempts`, 10 an hour), so the engine
   * answers first, with its exact Retry-After; the engine's refusals count here too. @default 20
   */
  accountFailuresPerMinute?: number
  /**
   * Distinct accounts of a tenant that may fail per minute; past it each further failing account
   * is stopped at its first failure (correct redemptions still pass). @default 100
   */
  failingAccountsPerMinute?: number
}

/** The options with defaults applied. */
export interface ResolvedServerOptions {
  store: Store
  keys: KeyRegistry
  adminKey: string | null
  clock: () => number
  clientClock: boolean
  bodyLimit: number
  /** The limit of `/v1/store/codes` for tenant keys. */
  codesBodyLimit: number
  /** The limit of `/v1/store/codes` for admin keys: a batch carries up to 100,000 code hashes. */
  adminCodesBodyLimit: number
  sweepIntervalMs: number
  logger: FastifyServerOptions['logger']
  meter: ServerMeterOptions
  redeemLimit: RedeemLimits
  /** The server's own redeem throttle; store-protocol clients cannot loosen it. */
  redeemMaxFailures: number
  redeemWindowMs: number
  timeoutMs: number
  changeFeed: Required<ChangeFeedOptions>
  webhooks: ResolvedWebhookOptions
  metrics: Required<MetricsOptions>
}

/** Room for a full batch of 100,000 code records (about 260 bytes each as JSON): admin keys. */
const ADMIN_CODES_BODY_LIMIT = 32 * 1024 * 1024
/** Tenant keys: parsing 1 MiB takes milliseconds, so no tenant can stall the event loop. */
const CODES_BODY_LIMIT = 1024 * 1024

const DEFAULTS = {
  store: undefined,
  // Read from the environment at creation, not at import.
  adminKey: undefined,
  clock: undefined,
  clientClock: false,
  bodyLimit: 65_536,
  codesBodyLimit: CODES_BODY_LIMIT,
  sweepIntervalMs: 30_000,
  logger: undefined,
  meter: {},
  redeemLimit: {},
  timeoutMs: 5_000,
  changeFeed: {},
  webhooks: {},
  metrics: {},
} satisfies OptionDefaults<CreateServerOptions>

const METRICS_DEFAULTS = {
  enabled: true,
  // Read from the environment at creation, not at import.
  auth: undefined,
  processMetrics: true,
} satisfies OptionDefaults<MetricsOptions>

const CHANGE_FEED_DEFAULTS = {
  maxSubscribers: 1_000,
  maxBufferBytes: 1024 * 1024,
  heartbeatMs: 15_000,
} satisfies OptionDefaults<ChangeFeedOptions>

/** No defaults: what is not given is left to `createMeter`'s own. */
const METER_DEFAULTS = {
  lowBalanceThreshold: undefined,
  overdraftLimit: undefined,
  overage: undefined,
  redeemAttempts: undefined,
  defaultTtlMs: undefined,
  retentionMs: undefined,
} satisfies OptionDefaults<ServerMeterOptions>

const REDEEM_LIMIT_DEFAULTS = {
  accountFailuresPerMinute: 20,
  failingAccountsPerMinute: 100,
} satisfies OptionDefaults<RedeemLimitOptions>

const WEBHOOK_DEFAULTS = {
  deliver: true,
  allowPrivateTargets: false,
  allowHttp: undefined,
  retryScheduleMs: [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000],
  retryJitter: 0.2,
  timeoutMs: 10_000,
  concurrency: 16,
  maxResponseBytes: 65_536,
  pollIntervalMs: 1_000,
  maxPerTenant: 20,
  retentionMs: 7 * 24 * 60 * 60 * 1000,
} satisfies OptionDefaults<WebhookOptions>

/** At most this many retries: a schedule is a bound, not a loop. */
const MAX_RETRIES = 100

function resolveWebhooks(given: WebhookOptions | undefined): ResolvedWebhookOptions {
  const w = readOptions(given ?? {}, {
    owner: 'createServer',
    field: 'webhooks',
    defaults: WEBHOOK_DEFAULTS,
  })
  const allowPrivateTargets = checkBoolean(w.allowPrivateTargets, 'webhooks.allowPrivateTargets')
  const schedule = w.retryScheduleMs
  if (!Array.isArray(schedule) || schedule.length > MAX_RETRIES) {
    throw new InvalidInputError(
      'webhooks.retryScheduleMs',
      `must be an array of at most ${MAX_RETRIES} waits`,
    )
  }
  const retryJitter = w.retryJitter
  if (typeof retryJitter !== 'number' || !(retryJitter >= 0 && retryJitter <= 1)) {
    throw new InvalidInputError('webhooks.retryJitter', 'must be a number from 0 to 1')
  }
  const attemptMs = checkInt(w.timeoutMs, 'webhooks.timeoutMs', 1)
  return {
    deliver: checkBoolean(w.deliver, 'webhooks.deliver'),
    allowPrivateTargets,
    allowHttp: checkBoolean(w.allowHttp ?? allowPrivateTargets, 'webhooks.allowHttp'),
    retryScheduleMs: schedule.map((ms, i) => checkInt(ms, `webhooks.retryScheduleMs[${i}]`, 0)),
    retryJitter,
    timeoutMs: attemptMs,
    concurrency: checkInt(w.concurrency, 'webhooks.concurrency', 1),
    maxResponseBytes: checkInt(w.maxResponseBytes, 'webhooks.maxResponseBytes', 0),
    pollIntervalMs: checkInt(w.pollIntervalMs, 'webhooks.pollIntervalMs', 10),
    maxPerTenant: checkInt(w.maxPerTenant, 'webhooks.maxPerTenant', 1),
    retentionMs: checkInt(w.retentionMs, 'webhooks.retentionMs', 0),
    // Twice an attempt's deadline and then some: a live process always finishes (and records)
    // its attempt before another may claim the delivery.
    leaseMs: 2 * attemptMs + 5_000,
  }
}

/** Paths pino blanks, should a custom serializer ever log request headers. */
const REDACT = [
  'req.headers.authorization',
  'req.headers["idempotency-key"]',
  'headers.authorization',
]

function resolveLogger(logger: FastifyServerOptions['logger']): FastifyServerOptions['logger'] {
  if (logger === false) return false
  if (logger === undefined || logger === true) return { level: 'info', redact: REDACT }
  if (typeof logger !== 'object' || logger === null) {
    throw new InvalidInputError('logger', 'must be a boolean or Fastify logger options')
  }
  const redact = logger.redact
  if (redact === undefined) return { ...logger, redact: REDACT }
  if (Array.isArray(redact)) return { ...logger, redact: [...new Set([...redact, ...REDACT])] }
  return { ...logger, redact: { ...redact, paths: [...new Set([...redact.paths, ...REDACT])] } }
}

/** Defaults, checks and warnings for {@link CreateServerOptions}. */
export function resolveOptions(options: CreateServerOptions): ResolvedServerOptions {
  const o = readOptions(options, { owner: 'createServer', defaults: DEFAULTS })
  const store = checkStore(o.store, 'pgliteStore()')
  const adminKey = o.adminKey ?? process.env.TOLLGATE_ADMIN_KEY ?? null
  if (adminKey !== null && parseApiKey(adminKey) === null) {
    // The value itself is never echoed: it is a secret.
    throw new InvalidInputError('adminKey', 'must look like tg_sk_<id>_<secret>')
  }
  const clock = checkFunction<() => number>(o.clock ?? Date.now, 'clock')
  const clientClock = checkBoolean(o.clientClock, 'clientClock')
  const bodyLimit = checkInt(o.bodyLimit, 'bodyLimit', 1)
  const codesBodyLimit = Math.max(bodyLimit, checkInt(o.codesBodyLimit, 'codesBodyLimit', 1))
  const sweepIntervalMs = checkInt(o.sweepIntervalMs, 'sweepIntervalMs')
  const meter = readOptions(o.meter, {
    owner: 'createServer',
    field: 'meter',
    defaults: METER_DEFAULTS,
  })
  // The server's own redeem throttle: what its meters run with, whatever a client sends.
  const redeem = resolveRedeemAttempts(meter.redeemAttempts, 'createServer', 'meter.redeemAttempts')
  const limit = readOptions(o.redeemLimit, {
    owner: 'createServer',
    field: 'redeemLimit',
    defaults: REDEEM_LIMIT_DEFAULTS,
  })
  return {
    store,
    keys: store.keys ?? memoryKeyRegistry(),
    adminKey,
    clock,
    clientClock,
    bodyLimit,
    codesBodyLimit,
    adminCodesBodyLimit: Math.max(codesBodyLimit, ADMIN_CODES_BODY_LIMIT),
    sweepIntervalMs,
    logger: resolveLogger(o.logger),
    // Known keys only, and the throttle checked: each tenant's createMeter() would warn again.
    meter: {
      ...meter,
      redeemAttempts: { max: redeem.redeemMaxFailures, windowMs: redeem.redeemWindowMs },
    },
    redeemLimit: {
      accountFailuresPerMinute: checkInt(
        limit.accountFailuresPerMinute,
        'redeemLimit.accountFailuresPerMinute',
        1,
      ),
      failingAccountsPerMinute: checkInt(
        limit.failingAccountsPerMinute,
        'redeemLimit.failingAccountsPerMinute',
        1,
      ),
    },
    ...redeem,
    timeoutMs: checkInt(o.timeoutMs, 'timeoutMs', 1),
    webhooks: resolveWebhooks(o.webhooks),
    changeFeed: resolveChangeFeed(o.changeFeed),
    metrics: resolveMetrics(o.metrics),
  }
}

function resolveMetrics(options: MetricsOptions | undefined): Required<MetricsOptions> {
  const m = readOptions(options ?? {}, {
    owner: 'createServer',
    field: 'metrics',
    defaults: METRICS_DEFAULTS,
  })
  const fromEnv = m.auth === undefined
  const auth = m.auth ?? process.env.TOLLGATE_METRICS_AUTH ?? 'admin'
  if (auth !== 'admin' && auth !== 'none') {
    throw new InvalidInputError(
      fromEnv ? 'TOLLGATE_METRICS_AUTH' : 'metrics.auth',
      "must be 'admin' or 'none'",
    )
  }
  return {
    enabled: checkBoolean(m.enabled, 'metrics.enabled'),
    auth,
    processMetrics: checkBoolean(m.processMetrics, 'metrics.processMetrics'),
  }
}

function resolveChangeFeed(options: ChangeFeedOptions | undefined): Required<ChangeFeedOptions> {
  const f = readOptions(options ?? {}, {
    owner: 'createServer',
    field: 'changeFeed',
    defaults: CHANGE_FEED_DEFAULTS,
  })
  return {
    maxSubscribers: checkInt(f.maxSubscribers, 'changeFeed.maxSubscribers', 1),
    maxBufferBytes: checkInt(f.maxBufferBytes, 'changeFeed.maxBufferBytes', 1_024),
    heartbeatMs: checkInt(f.heartbeatMs, 'changeFeed.heartbeatMs', 100, 3_600_000),
  }
}
