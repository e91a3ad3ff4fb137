/**
 * `createMeter()`'s options and their one resolution: defaults spread by the options kit,
 * every value checked once, at creation, into what the meter's operations read.
 */
import type { EngineConfig } from '../engine/state.js'
import { InvalidInputError } from '../errors.js'
import {
  checkBoolean,
  checkFunction,
  checkInt,
  checkOneOf,
  checkStore,
  type OptionDefaults,
  readOptions,
} from '../options-kit.js'
import { checkAccount, parse, ttlSchema } from '../protocol/validation.js'
import type { Store } from '../store/store.js'
import type { OveragePolicy } from '../types.js'
import { type BalanceCacheOptions, resolveCacheOptions } from './balance-cache.js'
import { type LeaseOptions, type ResolvedLeaseOptions, resolveLeaseOptions } from './lease.js'
import { type RedeemAttemptsOptions, resolveRedeemAttempts } from './redeem-attempts.js'

/** Options of {@link createMeter}. */
export interface MeterOptions {
  /** Where the credits live. @example memoryStore() */
  store: Store
  /** The tenant this meter sees; nothing crosses tenants. @default 'default' */
  tenant?: string
  /** ms since epoch. Inject a fake clock to test expiry without sleeping. @default Date.now */
  clock?: () => number
  /** The balance cache, or `false` for none. @default { max: 10_000, ttlMs: 1_000 } */
  cache?: BalanceCacheOptions | false
  /** `low` is `available ≤ this`; per-account settings override it. @default null (off) */
  lowBalanceThreshold?: number | null
  /** Most debt an overdraft commit may create; per-account settings override. @default null (no limit) */
  overdraftLimit?: number | null
  /** What a commit above its hold does. @default 'clamp' */
  overage?: OveragePolicy
  /** Hold TTL when `reserve` is not given one. @default 60_000 */
  defaultTtlMs?: number
  /** Failed redeem attempts allowed per account and window. @default { max: 10, windowMs: 3_600_000 } */
  redeemAttempts?: RedeemAttemptsOptions
  /** How long idempotency keys and resolved holds are kept (at least 48 h). @default 172_800_000 */
  retentionMs?: number
  /**
   * Run `store.migrate()` before the first operation. Turn it off when migrations run as a
   * deploy step. @default true
   */
  migrate?: boolean
  /**
   * Serve reserves from a block of each active account's credits held in this process
   * (DESIGN §2): no store round trip per request. Usage settles to the store every `flushMs`,
   * when a lease runs out and on `close()`; a process that dies loses at most its unsettled
   * usage, which never passes `size` credits per account (a reserve that would pass it waits
   * for a lease to settle, or goes to the store). Reserves larger than `size`, or with an
   * idempotency key or metadata, go to the store. Not with `overage: 'overdraft'`. @default off
   * @example createMeter({ store, lease: { size: 1_000, ttlMs: 30_000, flushMs: 1_000 } })
   */
  lease?: LeaseOptions
}

/** {@link MeterOptions} checked, with defaults applied: what the meter's operations read. */
export interface ResolvedMeterOptions {
  store: Store
  tenant: string
  clock: () => number
  cache: Required<BalanceCacheOptions> | false
  config: EngineConfig
  defaultTtlMs: number
  retentionMs: number
  migrate: boolean
  lease: ResolvedLeaseOptions | null
}

const MIN_RETENTION_MS = 2 * 86_400_000
const OVERAGE_POLICIES = ['reject', 'clamp', 'overdraft'] as const

const METER_DEFAULTS = {
  store: undefined,
  tenant: 'default',
  // Read at creation, not at import: a fake Date installed by a test before it is honoured.
  clock: undefined,
  cache: undefined,
  lowBalanceThreshold: null,
  overdraftLimit: null,
  overage: 'clamp',
  defaultTtlMs: 60_000,
  redeemAttempts: undefined,
  retentionMs: MIN_RETENTION_MS,
  migrate: true,
  lease: undefined,
} satisfies OptionDefaults<MeterOptions>

/** Checks {@link MeterOptions} and applies their defaults. */
export function resolveMeterOptions(options: MeterOptions): ResolvedMeterOptions {
  const o = readOptions(options, { owner: 'createMeter', defaults: METER_DEFAULTS })
  const store = checkStore(o.store, 'memoryStore()')
  const tenant = checkAccount(o.tenant, 'tenant')
  const clock = checkFunction<() => number>(o.clock ?? Date.now, 'clock')
  const overage = checkOneOf(o.overage, 'overage', OVERAGE_POLICIES)
  const redeem = resolveRedeemAttempts(o.redeemAttempts, 'createMeter', 'redeemAttempts')
  if (checkInt(o.retentionMs, 'retentionMs') < MIN_RETENTION_MS) {
    throw new InvalidInputError('retentionMs', 'must be at least 48 hours')
  }
  const defaultTtlMs = parse(ttlSchema, o.defaultTtlMs, 'defaultTtlMs')
  const cache = resolveCacheOptions(o.cache, 'createMeter')
  const migrate = checkBoolean(o.migrate, 'migrate')
  const lease = o.lease === undefined ? null : resolveLeaseOptions(o.lease)
  if (lease !== null && overage === 'overdraft') {
    // Debt is the store's to record: a lease can only spend what it holds.
    throw new InvalidInputError('lease', "cannot be combined with overage: 'overdraft'")
  }
  return {
    lease,
    store,
    tenant,
    clock,
    cache,
    defaultTtlMs,
    retentionMs: o.retentionMs,
    migrate,
    config: {
      lowBalanceThreshold: nullableInt(o.lowBalanceThreshold, 'lowBalanceThreshold'),
      overdraftLimit: nullableInt(o.overdraftLimit, 'overdraftLimit'),
      overage,
      ...redeem,
    },
  }
}

function nullableInt(value: unknown, field: string): number | null {
  return value === null ? null : checkInt(value, field)
}
