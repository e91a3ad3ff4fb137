/**
 * `CreateServerOptions` and their one `resolveOptions()`: defaults spread, unknown keys warned,
 * everything the hot path needs precomputed once.
 */
import {
  InvalidInputError,
  type KeyRegistry,
  type MeterOptions,
  memoryKeyRegistry,
  type Store,
} from '@tollgate/core'
import type { FastifyServerOptions } from 'fastify'
import { parseApiKey } from './api-keys.js'

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
   * Failed redemptions per tenant per minute before redeem answers 429, on top of the engine's
   * per-account limit: it stops guessing across many accounts. @default 600
   */
  redeemFailuresPerMinute?: number
  /**
   * An operation's deadline in ms, counted from the request's arrival: the default when the
   * request sends no `Tollgate-Deadline-Ms`, and the most it may ask for. An operation the
   * store cannot run within it is answered 503 with `Retry-After` and never applied.
   * @default 5_000
   */
  timeoutMs?: number
}

/** The options with defaults applied. */
export interface ResolvedServerOptions {
  store: Store
  keys: KeyRegistry
  adminKey: string | null
  clock: () => number
  clientClock: boolean
  bodyLimit: number
  /** The limit of `/v1/store/codes`: a batch carries up to 100,000 code hashes. */
  codesBodyLimit: number
  sweepIntervalMs: number
  logger: FastifyServerOptions['logger']
  meter: ServerMeterOptions
  redeemFailuresPerMinute: number
  /** The server's own redeem throttle; store-protocol clients cannot loosen it. */
  redeemMaxFailures: number
  redeemWindowMs: number
  timeoutMs: number
}

const KEYS = new Set([
  'store',
  'adminKey',
  'clock',
  'clientClock',
  'bodyLimit',
  'sweepIntervalMs',
  'logger',
  'meter',
  'redeemFailuresPerMinute',
  'timeoutMs',
])
const METER_KEYS = new Set([
  'lowBalanceThreshold',
  'overdraftLimit',
  'overage',
  'redeemAttempts',
  'defaultTtlMs',
  'retentionMs',
])
/** Room for a full batch of 100,000 code records (about 260 bytes each as JSON). */
const CODES_BODY_LIMIT = 32 * 1024 * 1024
/** Paths pino blanks, should a custom serializer ever log request headers. */
const REDACT = [
  'req.headers.authorization',
  'req.headers["idempotency-key"]',
  'headers.authorization',
]

function positiveInt(value: unknown, field: string, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidInputError(field, `must be an integer ≥ ${min}`)
  }
  return value
}

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
  if (typeof options !== 'object' || options === null) {
    throw new InvalidInputError('options', 'createServer needs an options object with a store')
  }
  for (const key of Object.keys(options)) {
    if (!KEYS.has(key)) {
      process.emitWarning(`createServer: unknown option "${key}" is ignored`, 'TollgateWarning')
    }
  }
  const store = options.store
  if (typeof store !== 'object' || store === null || typeof store.execute !== 'function') {
    throw new InvalidInputError('store', 'must be a Tollgate store, e.g. pgliteStore()')
  }
  const adminKey = options.adminKey ?? process.env.TOLLGATE_ADMIN_KEY ?? null
  if (adminKey !== null && parseApiKey(adminKey) === null) {
    // The value itself is never echoed: it is a secret.
    throw new InvalidInputError('adminKey', 'must look like tg_sk_<id>_<secret>')
  }
  const clock = options.clock ?? Date.now
  if (typeof clock !== 'function') throw new InvalidInputError('clock', 'must be a function')
  const clientClock = options.clientClock ?? false
  if (typeof clientClock !== 'boolean') {
    throw new InvalidInputError('clientClock', 'must be a boolean')
  }
  const bodyLimit = positiveInt(options.bodyLimit ?? 65_536, 'bodyLimit', 1)
  const sweepIntervalMs = positiveInt(options.sweepIntervalMs ?? 30_000, 'sweepIntervalMs', 0)
  const meter = options.meter ?? {}
  if (typeof meter !== 'object' || meter === null) {
    throw new InvalidInputError('meter', 'must be an object')
  }
  for (const key of Object.keys(meter)) {
    if (!METER_KEYS.has(key)) {
      process.emitWarning(
        `createServer: unknown option "meter.${key}" is ignored`,
        'TollgateWarning',
      )
    }
  }
  const redeem = meter.redeemAttempts ?? {}
  return {
    store,
    keys: store.keys ?? memoryKeyRegistry(),
    adminKey,
    clock,
    clientClock,
    bodyLimit,
    codesBodyLimit: Math.max(bodyLimit, CODES_BODY_LIMIT),
    sweepIntervalMs,
    logger: resolveLogger(options.logger),
    meter: Object.fromEntries(
      Object.entries(meter).filter(([k]) => METER_KEYS.has(k)),
    ) as ServerMeterOptions,
    redeemFailuresPerMinute: positiveInt(
      options.redeemFailuresPerMinute ?? 600,
      'redeemFailuresPerMinute',
      1,
    ),
    redeemMaxFailures: positiveInt(redeem.max ?? 10, 'meter.redeemAttempts.max', 1),
    redeemWindowMs: positiveInt(redeem.windowMs ?? 3_600_000, 'meter.redeemAttempts.windowMs', 1),
    timeoutMs: positiveInt(options.timeoutMs ?? 5_000, 'timeoutMs', 1),
  }
}
