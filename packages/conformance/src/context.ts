/**
 * The per-test context of the conformance suite: a fresh store from the caller's factory, a
 * unique tenant (so stores shared between tests still isolate), a fake clock that tests move
 * by hand (no sleeping, no real timers) and a meter over all three.
 */
import { createMeter, type Meter, type MeterOptions, type Store } from '@tollgate/core'
import { afterEach, beforeEach, describe, it } from 'vitest'
import type { ConformanceOptions } from './describe-store-conformance.js'

export const SECOND = 1_000
export const MINUTE = 60 * SECOND
export const HOUR = 60 * MINUTE
export const DAY = 24 * HOUR

/**
 * Where every test's clock starts: the last day of January of a leap year, so month cycles
 * cross Jan 31 → Feb 29 → Mar 31 without any set-up.
 */
export const START = Date.UTC(2028, 0, 31, 12)

/** Meter options a test may choose; the context supplies store, clock and tenant. */
export type ContextMeterOptions = Omit<MeterOptions, 'store' | 'clock' | 'tenant'>

/** What {@link useMeter} hands to tests. Read the getters inside a test, not at registration. */
export interface MeterContext {
  /** The meter of this test (fake clock, unique tenant, the options given to `useMeter`). */
  readonly meter: Meter
  /** The store of this test, as `createStore()` returned it. */
  readonly store: Store
  /** The tenant of this test's meter. */
  readonly tenant: string
  /** The fake clock's reading. */
  now(): number
  /** Moves the fake clock forward by `ms`. */
  advance(ms: number): void
  /** Sets the fake clock to `ms` since epoch. */
  setNow(ms: number): void
  /**
   * Another meter over the same store, tenant and clock, with other settings: a second app
   * instance. It is not closed after the test (closing a meter closes its store).
   */
  meterWith(options?: ContextMeterOptions & { clock?: () => number }): Meter
  /** A meter over the same store and clock with a tenant of its own. */
  otherTenant(options?: ContextMeterOptions): Meter
  /** A fresh balance: skips the meter's cache, so the store is asked (and housekeeps). */
  balance(account: string, meter?: Meter): ReturnType<Meter['balance']>
}

/** Optional parts of the Store contract a rule may need (see {@link RuleTest}). */
export type StoreCapability = 'events' | 'watch' | 'usage' | 'accounts'

/**
 * A registered test: the title is the rule it checks. A rule that `needs` optional parts of the
 * Store contract is reported skipped (by name, with the reason) on a store without them.
 */
export type RuleTest = (
  title: string,
  fn: () => Promise<void> | void,
  needs?: readonly StoreCapability[],
) => void

// Unique per process run, so a persistent store (a database reused between runs) never hands a
// test the data of an earlier run.
const RUN_ID = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
let tenantCounter = 0

function nextTenant(): string {
  tenantCounter += 1
  return `conf-${RUN_ID}-${tenantCounter}`
}

/**
 * Registers `beforeEach`/`afterEach` hooks in the current `describe` block that give every test
 * a fresh store, a unique tenant, a fake clock at {@link START} and a meter over them.
 * @example
 * const t = useMeter(options, { overage: 'reject' })
 * it('…', async () => { await t.meter.grant('a', 10); t.advance(HOUR) })
 */
export function useMeter(
  options: ConformanceOptions,
  meterOptions: ContextMeterOptions = {},
): MeterContext {
  let now = START
  let store: Store | undefined
  let meter: Meter | undefined
  let tenant = ''
  const clock = () => now

  beforeEach(async () => {
    now = START
    store = await options.createStore()
    tenant = nextTenant()
    meter = createMeter({ ...meterOptions, store, tenant, clock })
  })

  afterEach(async () => {
    const s = store
    const m = meter
    store = undefined
    meter = undefined
    if (!s || !m) return
    if (options.teardown) await options.teardown(s)
    else await m.close()
  })

  const need = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is only available inside a test`)
    return value
  }

  return {
    get meter() {
      return need(meter, 'meter')
    },
    get store() {
      return need(store, 'store')
    },
    get tenant() {
      return tenant
    },
    now: () => now,
    advance(ms) {
      now += ms
    },
    setNow(ms) {
      now = ms
    },
    meterWith(extra = {}) {
      return createMeter({
        ...meterOptions,
        clock,
        ...extra,
        store: need(store, 'store'),
        tenant,
      })
    },
    otherTenant(extra = {}) {
      return createMeter({
        ...meterOptions,
        ...extra,
        clock,
        store: need(store, 'store'),
        tenant: nextTenant(),
      })
    },
    balance(account, m) {
      return (m ?? need(meter, 'meter')).balance(account, { fresh: true })
    },
  }
}

/**
 * Registers a `describe` block for one group of rules. Tests registered through the `test`
 * callback are skipped when their title, or the group's name, is in `options.skip`.
 */
export function ruleGroup(
  options: ConformanceOptions,
  name: string,
  body: (test: RuleTest) => void,
  store?: () => Store,
): void {
  const skip = new Set(options.skip ?? [])
  describe(name, () => {
    body((title, fn, needs = []) => {
      it.skipIf(skip.has(name) || skip.has(title))(title, (ctx) => {
        if (needs.length > 0) {
          if (!store) throw new Error(`rule "${title}" needs a store to check capabilities on`)
          const s = store()
          const missing = needs.filter((cap) => typeof s[cap] !== 'function')
          // Reported as skipped, with the reason: a store without an optional part is no failure,
          // and no pass either.
          if (missing.length > 0) return ctx.skip(`${s.kind} store has no ${missing.join(', ')}()`)
        }
        return fn()
      })
    })
  })
}
