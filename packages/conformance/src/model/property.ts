/**
 * The model-based property test: random sequences of meter operations on a fresh tenant, each
 * one predicted by the {@link ReferenceModel} and followed by invariant checks on every account.
 * Every store runs it through the conformance suite; `numRuns` lets slow stores run fewer.
 *
 * Every operation is predicted, cycles and redeem codes included (no resyncing from the store):
 * success or the error code, the result's fields, and afterwards each account's fresh balance.
 * After each step, on every account:
 * (a) `balance({ fresh: true })` equals the model's: total, held, available, debt, low and the
 *     buckets in burn order;
 * (b) the ledger, read oldest first page by page, replays to that balance (Σ delta = total − debt,
 *     Σ heldDelta = held, Σ debtDelta = debt, balanceAfter = running Σ delta, `at` never
 *     decreases) and only ever grows (append-only); after `sweep()` it does so before any read;
 * (c) available ≥ 0, and debt only where a commit ran under the overdraft policy;
 * (d) a hold resolves at most once: the model predicts hold_resolved / hold_expired for a second
 *     settlement, and no hold is settled twice without a replay;
 * (e) repeating a call with its key reproduces the first result with `replayed: true`.
 */
import {
  type Balance,
  type Category,
  type CommitOptions,
  type CommitResult,
  type CreateCodesOptions,
  type CreateCodesResult,
  type CycleEvery,
  type CycleResult,
  createMeter,
  type DebitResult,
  type ExtendResult,
  type Grant,
  type GrantOptions,
  type Hold,
  type IncreaseResult,
  isTollgateError,
  type LedgerEntry,
  type Meter,
  type OveragePolicy,
  type RedeemResult,
  type ReleaseResult,
  type Store,
} from '@tollgate/core'
import { generateCode } from '@tollgate/core/engine'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { ConformanceOptions } from '../describe-store-conformance.js'
import { type Expect, type ModelAllocation, ReferenceModel } from './reference-model.js'

const DAY_MS = 86_400_000
const DEFAULT_TTL_MS = 60_000
const RETENTION_MS = 2 * DAY_MS
/** Low, so short sequences reach the redeem rate limit. */
const REDEEM_MAX_FAILURES = 2
const REDEEM_WINDOW_MS = 3_600_000
/** Ids a SQL store must escape, and one outside ASCII. */
const ACCOUNT_NAMES = ['acct-a', 'Ünïcødé ☃ b', "c'; DROP TABLE accounts;--"]

// ---------------------------------------------------------------- commands: plain data

type HoldRef = { open: number } | { any: number } | 'unknown'
type CommitActual = 'default' | { under: number } | { over: number }

type Command =
  | {
      kind: 'grant'
      account: number
      amount: number
      expiry: null | { validityDays: number } | { inMs: number }
      priority: number | undefined
      category: Category | undefined
      keyed: boolean
    }
  | { kind: 'debit'; account: number; amount: number; keyed: boolean }
  | { kind: 'adjust'; account: number; delta: number; keyed: boolean }
  | { kind: 'reserve'; account: number; amount: number; ttlMs: number | undefined; keyed: boolean }
  | {
      kind: 'commit'
      hold: HoldRef
      actual: CommitActual
      overage: OveragePolicy | undefined
      keyed: boolean
    }
  | { kind: 'release'; hold: HoldRef; keyed: boolean }
  | { kind: 'extend'; hold: HoldRef; ttlMs: number; keyed: boolean }
  | { kind: 'increase'; hold: HoldRef; amount: number; partial: boolean; keyed: boolean }
  | { kind: 'advance'; ms: number }
  | { kind: 'balance'; account: number }
  | { kind: 'sweep' }
  | { kind: 'repeat'; index: number }
  | { kind: 'conflict'; index: number; account: number }
  | {
      kind: 'configure'
      account: number
      lowBalanceThreshold: number | null | undefined
      overdraftLimit: number | null | undefined
    }
  | {
      kind: 'startCycle'
      account: number
      amount: number
      every: CycleEvery
      rollover: number | undefined
      priority: number | undefined
      category: Category | undefined
      keyed: boolean
    }
  | { kind: 'stopCycle'; account: number; keyed: boolean }
  | {
      kind: 'createCodes'
      credits: number
      count: number
      expiresInMs: number | undefined
      validityDays: number | undefined
      maxRedemptions: number | undefined
      category: Category | undefined
      keyed: boolean
    }
  | {
      kind: 'redeem'
      account: number
      code: number | 'unknown' | 'malformed'
      variant: 'canonical' | 'lower' | 'compact'
      keyed: boolean
    }

const account = fc.nat({ max: 2 })
const keyed = fc.boolean()
const amount = fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 300 }))
const priority = fc.option(fc.constantFrom(0, 10, 50, 99), { nil: undefined })
const category = fc.option(fc.constantFrom<Category>('paid', 'promotional'), { nil: undefined })
const ttlMs = fc.oneof(
  fc.constantFrom(1_000, DEFAULT_TTL_MS, DAY_MS),
  fc.integer({ min: 1_000, max: DAY_MS }),
)
/** Counted from the newest: mostly among holds not settled yet, else any hold, or none at all. */
const holdRef: fc.Arbitrary<HoldRef> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ open: fc.nat({ max: 3 }) }) },
  { weight: 3, arbitrary: fc.record({ any: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant<HoldRef>('unknown') },
)
/** Milliseconds to days, with the boundaries (TTLs, a day, a week) hit exactly. */
const duration = fc.oneof(
  fc.integer({ min: 1, max: 2_000 }),
  fc.integer({ min: 1_000, max: 7_200_000 }),
  fc.integer({ min: 3_600_000, max: 3 * DAY_MS }),
  fc.constantFrom(1_000, DEFAULT_TTL_MS, DAY_MS, 7 * DAY_MS, 31 * DAY_MS),
)

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('grant' as const),
      account,
      amount: fc.integer({ min: 1, max: 300 }),
      expiry: fc.oneof(
        fc.constant(null),
        fc.record({ validityDays: fc.integer({ min: 1, max: 3 }) }),
        fc.record({ inMs: duration }),
      ),
      priority,
      category,
      keyed,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('debit' as const), account, amount, keyed }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('adjust' as const),
      account,
      delta: fc.integer({ min: -300, max: 300 }).filter((n) => n !== 0),
      keyed,
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('reserve' as const),
      account,
      amount,
      ttlMs: fc.option(ttlMs, { nil: undefined }),
      keyed,
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('commit' as const),
      hold: holdRef,
      actual: fc.oneof(
        fc.constant<CommitActual>('default'),
        fc.record({ under: fc.integer({ min: 0, max: 50 }) }),
        fc.record({
          over: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 300, max: 2_000 })),
        }),
      ),
      overage: fc.option(fc.constantFrom<OveragePolicy>('reject', 'clamp', 'overdraft'), {
        nil: undefined,
      }),
      keyed,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('release' as const), hold: holdRef, keyed }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('extend' as const), hold: holdRef, ttlMs, keyed }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('increase' as const),
      hold: holdRef,
      amount,
      partial: fc.boolean(),
      keyed,
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: duration }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('balance' as const), account }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('sweep' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('repeat' as const), index: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('conflict' as const), index: fc.nat(), account }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('configure' as const),
      account,
      lowBalanceThreshold: fc.option(fc.option(fc.integer({ min: 0, max: 100 }), { nil: null }), {
        nil: undefined,
      }),
      overdraftLimit: fc.option(fc.option(fc.integer({ min: 0, max: 200 }), { nil: null }), {
        nil: undefined,
      }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('startCycle' as const),
      account,
      amount: fc.integer({ min: 1, max: 300 }),
      every: fc.oneof(
        fc.constantFrom<CycleEvery>('day', 'week', 'month'),
        fc.record({ days: fc.integer({ min: 1, max: 3 }) }),
      ),
      rollover: fc.option(fc.integer({ min: 0, max: 200 }), { nil: undefined }),
      priority,
      category,
      keyed,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('stopCycle' as const), account, keyed }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('createCodes' as const),
      credits: fc.integer({ min: 1, max: 300 }),
      count: fc.integer({ min: 1, max: 3 }),
      expiresInMs: fc.option(duration, { nil: undefined }),
      validityDays: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
      maxRedemptions: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
      category,
      keyed,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('redeem' as const),
      account,
      code: fc.oneof(
        { weight: 3, arbitrary: fc.nat() },
        { weight: 1, arbitrary: fc.constantFrom<'unknown' | 'malformed'>('unknown', 'malformed') },
      ),
      variant: fc.constantFrom<'canonical' | 'lower' | 'compact'>('canonical', 'lower', 'compact'),
      keyed,
    }),
  },
)

const setupArb = fc.record({
  accounts: fc.integer({ min: 2, max: 3 }),
  overage: fc.constantFrom<OveragePolicy>('clamp', 'overdraft', 'reject'),
  overdraftLimit: fc.option(fc.integer({ min: 0, max: 300 }), { nil: null }),
  lowBalanceThreshold: fc.option(fc.integer({ min: 0, max: 100 }), { nil: null }),
  // Month ends and a leap day exercise the monthly clamping of cycles.
  start: fc.constantFrom(
    Date.UTC(2025, 0, 31, 12),
    Date.UTC(2024, 1, 29, 23, 59, 59, 500),
    Date.UTC(2025, 5, 15, 8, 30),
  ),
})
type Setup = typeof setupArb extends fc.Arbitrary<infer S> ? S : never

// ---------------------------------------------------------------- one run

/** One meter call, its prediction and how to compare them; kept for idempotent repeats. */
interface Call {
  key: string | undefined
  run(): Promise<{ ok: true; result: unknown } | { ok: false; error: unknown }>
  predict(result: unknown): Expect<unknown>
  check(value: unknown, result: unknown): void
  onSuccess(result: unknown): void
  /** JSON-safe form of a result, as a replay must reproduce it. */
  normalize(result: unknown): unknown
  /** What a replay of `original` must look like. */
  replayOf(original: unknown): unknown
}

interface CallSpec<R, T> {
  key: string | undefined
  real: () => Promise<R>
  model: (result: R | undefined) => Expect<T>
  check?: (value: T, result: R) => void
  onSuccess?: (result: R) => void
  normalize?: (result: R) => unknown
  replayOf?: (original: unknown) => unknown
}

const json = (value: unknown): unknown => JSON.parse(JSON.stringify(value))

/**
 * Deep equality of JSON-safe values, with vitest's diff when it fails. Compares the JSON text
 * first: almost every check passes, and 1000 runs make tens of thousands of them.
 */
function same(actual: unknown, expected: unknown, what: string): void {
  if (JSON.stringify(actual) === JSON.stringify(expected)) return
  expect(json(actual), what).toStrictEqual(json(expected))
}

function ensure(ok: boolean, what: string): void {
  if (!ok) throw new Error(what)
}

function makeCall<R, T>(spec: CallSpec<R, T>): Call {
  return {
    key: spec.key,
    async run() {
      try {
        return { ok: true, result: await spec.real() }
      } catch (error) {
        return { ok: false, error }
      }
    },
    predict: (result) => spec.model(result as R | undefined),
    check: (value, result) => spec.check?.(value as T, result as R),
    onSuccess: (result) => spec.onSuccess?.(result as R),
    normalize: (result) => json(spec.normalize ? spec.normalize(result as R) : result),
    replayOf: spec.replayOf ?? ((original) => ({ ...(original as object), replayed: true })),
  }
}

interface Env {
  meter: Meter
  model: ReferenceModel
  now: number
  accounts: string[]
  holds: { id: string; amount: number }[]
  codes: string[]
  /** Every keyed call, refused ones too (a refused call stores no key and may be retried). */
  keyed: Call[]
  /** The first successful result of each key, which replays must reproduce. */
  originals: Map<string, { call: Call; original: unknown }>
  nextKey: number
  /** Each account's ledger at the last check: later ledgers must extend it (append-only). */
  ledgers: Map<string, LedgerEntry[]>
  fresh: Map<string, Balance>
  /** Holds a first (non-replayed) commit or release succeeded on. */
  settled: Set<string>
}

// Unique per process, so a persistent store reused between test runs never sees an old tenant.
const RUN_ID = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
let tenants = 0

function newEnv(store: Store, setup: Setup): Env {
  const env: Env = {
    meter: createMeter({
      store,
      // A tenant per run, so a store shared between runs starts every run empty.
      tenant: `model-${RUN_ID}-${++tenants}`,
      // The fake clock: `advance` steps move it; nothing sleeps.
      clock: () => env.now,
      overage: setup.overage,
      overdraftLimit: setup.overdraftLimit,
      lowBalanceThreshold: setup.lowBalanceThreshold,
      redeemAttempts: { max: REDEEM_MAX_FAILURES, windowMs: REDEEM_WINDOW_MS },
      retentionMs: RETENTION_MS,
    }),
    model: new ReferenceModel({
      overage: setup.overage,
      overdraftLimit: setup.overdraftLimit,
      lowBalanceThreshold: setup.lowBalanceThreshold,
      redeemMaxFailures: REDEEM_MAX_FAILURES,
      redeemWindowMs: REDEEM_WINDOW_MS,
      retentionMs: RETENTION_MS,
    }),
    now: setup.start,
    accounts: ACCOUNT_NAMES.slice(0, setup.accounts),
    holds: [],
    codes: [],
    keyed: [],
    originals: new Map(),
    nextKey: 0,
    ledgers: new Map(),
    fresh: new Map(),
    settled: new Set(),
  }
  return env
}

function pickAccount(env: Env, i: number): string {
  return env.accounts[i % env.accounts.length]!
}

/** A hold made so far, or one nobody made; null (skip the step) while there are none. */
function pickHold(env: Env, ref: HoldRef): { id: string; amount: number } | null {
  if (ref === 'unknown') return { id: 'hld_unknown', amount: 10 }
  const holds = 'open' in ref ? env.holds.filter((h) => !env.settled.has(h.id)) : env.holds
  const n = 'open' in ref ? ref.open : ref.any
  return holds[holds.length - 1 - (n % Math.max(1, holds.length))] ?? null
}

function newKey(env: Env, keyed: boolean): string | undefined {
  return keyed ? `key-${++env.nextKey}` : undefined
}

const ids = (allocations: ModelAllocation[]) =>
  allocations.map((a) => ({ bucketId: a.bucket.id, amount: a.amount }))

/** Marks a hold settled; a second first-time settlement breaks "a hold resolves at most once". */
function settleOnce(env: Env, holdId: string): void {
  ensure(!env.settled.has(holdId), `hold ${holdId} resolved twice`)
  env.settled.add(holdId)
}

/** Builds the call a command stands for; null for commands that are not meter calls. */
function callOf(env: Env, cmd: Command): Call | null {
  const { meter, model } = env
  switch (cmd.kind) {
    case 'grant': {
      const acct = pickAccount(env, cmd.account)
      const key = newKey(env, cmd.keyed)
      const o: GrantOptions = {}
      let expiresAt: number | undefined
      if (cmd.expiry && 'validityDays' in cmd.expiry) o.validityDays = cmd.expiry.validityDays
      if (cmd.expiry && 'inMs' in cmd.expiry) expiresAt = o.expiresAt = env.now + cmd.expiry.inMs
      if (cmd.priority !== undefined) o.priority = cmd.priority
      if (cmd.category !== undefined) o.category = cmd.category
      if (key !== undefined) o.idempotencyKey = key
      return makeCall<Grant, { repaidDebt: number; expiresAt: number | null }>({
        key,
        real: () => meter.grant(acct, cmd.amount, o),
        model: (r) =>
          model.grant(
            env.now,
            acct,
            cmd.amount,
            { expiresAt, validityDays: o.validityDays, priority: o.priority, category: o.category },
            key,
            r?.id ?? 'missing',
          ),
        check: (v, r) =>
          same(
            [r.account, r.amount, r.repaidDebt, r.expiresAt, r.createdAt],
            [acct, cmd.amount, v.repaidDebt, v.expiresAt, env.now],
            'grant: account, amount, repaidDebt, expiresAt, createdAt',
          ),
      })
    }
    case 'debit': {
      const acct = pickAccount(env, cmd.account)
      const key = newKey(env, cmd.keyed)
      return makeCall<DebitResult, { allocations: ModelAllocation[] }>({
        key,
        real: () =>
          meter.debit(acct, cmd.amount, key === undefined ? undefined : { idempotencyKey: key }),
        model: () => model.debit(env.now, acct, cmd.amount, key),
        check: (v, r) => same(r.allocations, ids(v.allocations), 'debit allocations'),
      })
    }
    case 'adjust': {
      const acct = pickAccount(env, cmd.account)
      const key = newKey(env, cmd.keyed)
      return makeCall<DebitResult & { grantId?: string }, { allocations: ModelAllocation[] }>({
        key,
        real: () =>
          meter.adjust(acct, cmd.delta, key === undefined ? undefined : { idempotencyKey: key }),
        model: (r) => model.adjust(env.now, acct, cmd.delta, key, r?.grantId ?? 'missing'),
        check: (v, r) =>
          same(
            [r.amount, r.allocations],
            [cmd.delta, ids(v.allocations)],
            'adjust: amount, allocations',
          ),
      })
    }
    case 'reserve': {
      const acct = pickAccount(env, cmd.account)
      const key = newKey(env, cmd.keyed)
      const o = {
        ...(cmd.ttlMs === undefined ? {} : { ttlMs: cmd.ttlMs }),
        ...(key ? { idempotencyKey: key } : {}),
      }
      return makeCall<Hold, { amount: number; expiresAt: number; allocations: ModelAllocation[] }>({
        key,
        real: () => meter.reserve(acct, cmd.amount, o),
        model: (r) =>
          model.reserve(
            env.now,
            acct,
            cmd.amount,
            cmd.ttlMs ?? DEFAULT_TTL_MS,
            key,
            r?.id ?? 'missing',
          ),
        check: (v, r) =>
          same(
            [r.account, r.amount, r.expiresAt, r.createdAt, r.allocations],
            [acct, v.amount, v.expiresAt, env.now, ids(v.allocations)],
            'hold: account, amount, expiresAt, createdAt, allocations',
          ),
        onSuccess: (r) => env.holds.push({ id: r.id, amount: r.amount }),
        normalize: (r) => ({ ...r.toJSON(), balance: r.balance }),
      })
    }
    case 'commit': {
      const hold = pickHold(env, cmd.hold)
      if (!hold) return null
      const key = newKey(env, cmd.keyed)
      let actual: number | undefined
      if (cmd.actual !== 'default') {
        actual =
          'under' in cmd.actual
            ? Math.max(0, hold.amount - cmd.actual.under)
            : hold.amount + cmd.actual.over
      }
      const o: CommitOptions = {}
      if (cmd.overage !== undefined) o.overage = cmd.overage
      if (key !== undefined) o.idempotencyKey = key
      return makeCall<
        CommitResult,
        { charged: number; shortfall: number; debt: number; freed: number }
      >({
        key,
        real: () => meter.commit(hold.id, actual, o),
        model: () => model.commit(env.now, hold.id, actual, cmd.overage, key),
        check: (v, r) => {
          const { holdId, charged, shortfall, debt, freed } = r
          same(
            { holdId, charged, shortfall, debt, freed },
            { holdId: hold.id, ...v },
            'commit result',
          )
        },
        onSuccess: () => settleOnce(env, hold.id),
      })
    }
    case 'release': {
      const hold = pickHold(env, cmd.hold)
      if (!hold) return null
      const key = newKey(env, cmd.keyed)
      return makeCall<ReleaseResult, { freed: number }>({
        key,
        real: () => meter.release(hold.id, key === undefined ? undefined : { idempotencyKey: key }),
        model: () => model.release(env.now, hold.id, key),
        check: (v, r) => same([r.holdId, r.freed], [hold.id, v.freed], 'release: holdId, freed'),
        onSuccess: () => settleOnce(env, hold.id),
      })
    }
    case 'extend': {
      const hold = pickHold(env, cmd.hold)
      if (!hold) return null
      const key = newKey(env, cmd.keyed)
      return makeCall<ExtendResult, { expiresAt: number }>({
        key,
        real: () =>
          meter.extend(hold.id, cmd.ttlMs, key === undefined ? undefined : { idempotencyKey: key }),
        model: () => model.extend(env.now, hold.id, cmd.ttlMs, key),
        check: (v, r) => same([r.id, r.expiresAt], [hold.id, v.expiresAt], 'extend: id, expiresAt'),
      })
    }
    case 'increase': {
      const hold = pickHold(env, cmd.hold)
      if (!hold) return null
      const key = newKey(env, cmd.keyed)
      const o = {
        ...(cmd.partial ? { partial: true } : {}),
        ...(key ? { idempotencyKey: key } : {}),
      }
      return makeCall<IncreaseResult, { amount: number; added: number; expiresAt: number }>({
        key,
        real: () => meter.increase(hold.id, cmd.amount, o),
        model: () => model.increase(env.now, hold.id, cmd.amount, cmd.partial, key),
        check: (v, r) =>
          same(
            [r.holdId, r.amount, r.added, r.expiresAt],
            [hold.id, v.amount, v.added, v.expiresAt],
            'increase: holdId, amount, added, expiresAt',
          ),
        // Later commits size their actual from the hold as it is now.
        onSuccess: (r) => {
          hold.amount = r.amount
        },
      })
    }
    case 'balance':
    case 'advance':
    case 'sweep':
    case 'repeat':
      return null
    case 'conflict': {
      // Reuses an earlier key for a grant of 1: a conflict unless it is that very call.
      const prior = env.keyed[cmd.index % Math.max(1, env.keyed.length)]
      if (!prior || !model.keyIsUsable(prior.key!, env.now)) return null
      const acct = pickAccount(env, cmd.account)
      const key = prior.key!
      return makeCall<Grant, unknown>({
        key,
        real: () => meter.grant(acct, 1, { idempotencyKey: key }),
        model: (r) => model.grant(env.now, acct, 1, {}, key, r?.id ?? 'missing'),
      })
    }
    case 'configure': {
      const acct = pickAccount(env, cmd.account)
      const s: { lowBalanceThreshold?: number | null; overdraftLimit?: number | null } = {}
      if (cmd.lowBalanceThreshold !== undefined) s.lowBalanceThreshold = cmd.lowBalanceThreshold
      if (cmd.overdraftLimit !== undefined) s.overdraftLimit = cmd.overdraftLimit
      return makeCall<Awaited<ReturnType<Meter['configure']>>, unknown>({
        key: undefined,
        real: () => meter.configure(acct, s),
        model: () => model.configure(env.now, acct, s),
        check: (v, r) =>
          same(
            { lowBalanceThreshold: r.lowBalanceThreshold, overdraftLimit: r.overdraftLimit },
            v,
            'settings',
          ),
      })
    }
    case 'startCycle': {
      const acct = pickAccount(env, cmd.account)
      const key = newKey(env, cmd.keyed)
      const o = {
        amount: cmd.amount,
        every: cmd.every,
        ...(cmd.rollover === undefined ? {} : { rollover: { max: cmd.rollover } }),
        ...(cmd.priority === undefined ? {} : { priority: cmd.priority }),
        ...(cmd.category === undefined ? {} : { category: cmd.category }),
        ...(key === undefined ? {} : { idempotencyKey: key }),
      }
      return makeCall<CycleResult, { cycle: object; replaced: string | null }>({
        key,
        real: () => meter.startCycle(acct, o),
        model: (r) =>
          model.startCycle(
            env.now,
            acct,
            { ...o, rolloverMax: cmd.rollover ?? null },
            key,
            r?.cycle.id ?? 'missing',
          ),
        check: (v, r) => {
          same(r.replaced, v.replaced, 'replaced cycle')
          const rollover = cmd.rollover === undefined ? null : { max: cmd.rollover }
          expect(r.cycle).toEqual({ ...v.cycle, account: acct, every: cmd.every, rollover })
        },
      })
    }
    case 'stopCycle': {
      const acct = pickAccount(env, cmd.account)
      const key = newKey(env, cmd.keyed)
      return makeCall<CycleResult, { cycle: object }>({
        key,
        real: () => meter.stopCycle(acct, key === undefined ? undefined : { idempotencyKey: key }),
        model: () => model.stopCycle(env.now, acct, key),
        check: (v, r) => expect(r.cycle).toMatchObject(v.cycle),
      })
    }
    case 'createCodes': {
      const key = newKey(env, cmd.keyed)
      const o: CreateCodesOptions = { credits: cmd.credits, count: cmd.count }
      if (cmd.expiresInMs !== undefined) o.codeExpiresAt = env.now + cmd.expiresInMs
      if (cmd.validityDays !== undefined) o.validityDays = cmd.validityDays
      if (cmd.maxRedemptions !== undefined) o.maxRedemptions = cmd.maxRedemptions
      if (cmd.category !== undefined) o.category = cmd.category
      if (key !== undefined) o.idempotencyKey = key
      const { idempotencyKey: _k, codeExpiresAt, ...rest } = o
      return makeCall<CreateCodesResult, unknown>({
        key,
        real: () => meter.createCodes(o),
        model: (r) =>
          model.createCodes(
            env.now,
            {
              ...rest,
              ...(codeExpiresAt === undefined ? {} : { codeExpiresAt: codeExpiresAt as number }),
            },
            key,
            r?.codes ?? [],
          ),
        check: (_v, r) =>
          same([r.codes.length, r.count, r.credits], [cmd.count, cmd.count, cmd.credits], 'codes'),
        onSuccess: (r) => env.codes.push(...r.codes),
        // The plaintext codes exist only in the first response.
        replayOf: (original) => ({ ...(original as object), codes: [], replayed: true }),
      })
    }
    case 'redeem': {
      // Known codes only once some exist; 'unknown' and 'malformed' cover the rest.
      if (typeof cmd.code === 'number' && env.codes.length === 0) return null
      const acct = pickAccount(env, cmd.account)
      const key = newKey(env, cmd.keyed)
      const known = typeof cmd.code === 'number'
      const canonical = known
        ? env.codes[(cmd.code as number) % env.codes.length]!
        : generateCode('TG')
      let input = canonical
      if (cmd.code === 'malformed') {
        // Another check character: a typo caught without a lookup.
        const last = canonical.at(-1) === '0' ? '1' : '0'
        input = canonical.slice(0, -1) + last
      } else if (cmd.variant === 'lower') input = canonical.toLowerCase()
      else if (cmd.variant === 'compact') input = canonical.replaceAll('-', '')
      return makeCall<RedeemResult, { creditsGranted: number; expiresAt: number | null }>({
        key,
        real: () =>
          meter.redeem(acct, input, key === undefined ? undefined : { idempotencyKey: key }),
        // A malformed code is refused by validation and never reaches the ledger rules.
        model: (r) =>
          cmd.code === 'malformed'
            ? { kind: 'error', codes: ['invalid_input'] }
            : model.redeem(env.now, acct, known ? canonical : null, key, r?.grantId ?? 'missing'),
        check: (v, r) =>
          same(
            [r.account, r.creditsGranted, r.expiresAt, r.newBalance],
            [acct, v.creditsGranted, v.expiresAt, r.balance.available],
            'redeem: account, creditsGranted, expiresAt, newBalance',
          ),
      })
    }
  }
}

/** All of an account's entries, oldest first, paging newest-first by cursor. */
async function readLedger(meter: Meter, account: string): Promise<LedgerEntry[]> {
  const entries: LedgerEntry[] = []
  let cursor: string | null = null
  do {
    const page = await meter.ledger(
      account,
      cursor === null ? { limit: 1000 } : { limit: 1000, cursor },
    )
    entries.push(...page.entries)
    cursor = page.nextCursor
  } while (cursor !== null)
  return entries.reverse()
}

/** (b) Replaying the ledger reproduces the balance; `balanceAfter` is the running net. */
function checkLedger(
  env: Env,
  account: string,
  entries: LedgerEntry[],
  b: { total: number; held: number; debt: number },
) {
  let net = 0
  let held = 0
  let debt = 0
  let at = Number.NEGATIVE_INFINITY
  for (const e of entries) {
    net += e.delta
    held += e.heldDelta
    debt += e.debtDelta
    const what = `${account} entry ${e.id} (${e.type} at ${e.at})`
    ensure(e.account === account, `${what}: account is ${e.account}`)
    ensure(
      e.balanceAfter === net,
      `${what}: balanceAfter ${e.balanceAfter}, running Σ delta ${net}`,
    )
    ensure(e.at >= at && e.at <= env.now, `${what}: at goes back in time or past now`)
    at = e.at
  }
  same(
    { net, held, debt },
    { net: b.total - b.debt, held: b.held, debt: b.debt },
    `ledger replay of ${account}`,
  )
}

/** Invariants on every account after a step; also learns the ids of cycle-funded buckets. */
async function checkAccounts(env: Env, afterSweep: boolean): Promise<void> {
  for (const account of env.accounts) {
    if (afterSweep) {
      // sweep() must already have applied everything due: the ledger alone shows it.
      checkLedger(
        env,
        account,
        await readLedger(env.meter, account),
        env.model.balance(env.now, account),
      )
    }
    const balance = await env.meter.balance(account, { fresh: true })
    const entries = await readLedger(env.meter, account)
    env.model.learnCycleGrantIds(
      env.now,
      account,
      entries.filter((e) => e.type === 'cycle_grant').map((e) => e.grantId ?? '?'),
    )
    // (a) the model's balance, buckets in burn order included.
    same(balance, env.model.balance(env.now, account), `balance of ${account}`)
    checkLedger(env, account, entries, balance)
    const before = env.ledgers.get(account) ?? []
    same(entries.slice(0, before.length), before, `the ledger of ${account} is append-only`)
    // (c)
    ensure(balance.available >= 0, `available of ${account} is negative`)
    ensure(
      balance.debt === 0 || env.model.overdraftUsed(account),
      `debt of ${account} without overdraft`,
    )
    env.ledgers.set(account, entries)
    env.fresh.set(account, balance)
  }
}

function describeError(error: unknown): string {
  return isTollgateError(error) ? `${error.code} (${error.message})` : String(error)
}

/** Compares a prediction with what the meter did. Runs after {@link checkAccounts} (ids learnt). */
function verify(
  env: Env,
  call: Call,
  predicted: Expect<unknown>,
  actual: Awaited<ReturnType<Call['run']>>,
): void {
  if (predicted.kind === 'error') {
    if (actual.ok) {
      throw new Error(
        `expected ${predicted.codes.join(' | ')}, got success ${JSON.stringify(call.normalize(actual.result))}`,
      )
    }
    if (!isTollgateError(actual.error)) throw actual.error
    expect(predicted.codes, `error ${describeError(actual.error)}`).toContain(actual.error.code)
    return
  }
  if (!actual.ok) {
    throw new Error(
      `expected ${predicted.kind === 'ok' ? 'success' : 'a replay'}, got ${describeError(actual.error)}`,
    )
  }
  const result = call.normalize(actual.result)
  if (predicted.kind === 'replay') {
    // (e) a replay is the original result, `replayed: true` and the balance as it was then.
    const first = env.originals.get(predicted.key)!
    same(result, first.call.replayOf(first.original), `replay of ${predicted.key}`)
    return
  }
  const r = result as { replayed?: boolean; balance?: Balance }
  ensure(r.replayed !== true, 'a first call came back replayed')
  call.check(predicted.value, actual.result)
  if (r.balance) {
    same(r.balance, env.fresh.get(r.balance.account), 'the balance a result carries')
  }
}

async function runCall(env: Env, call: Call, isRepeat: boolean): Promise<void> {
  const actual = await call.run()
  const predicted = call.predict(actual.ok ? actual.result : undefined)
  await checkAccounts(env, false)
  verify(env, call, predicted, actual)
  if (call.key !== undefined && !isRepeat) env.keyed.push(call)
  if (actual.ok && predicted.kind === 'ok') {
    call.onSuccess(actual.result)
    if (call.key !== undefined)
      env.originals.set(call.key, { call, original: call.normalize(actual.result) })
  }
}

async function step(env: Env, cmd: Command): Promise<void> {
  switch (cmd.kind) {
    case 'advance':
      // No checks here: the next step finds expiries and periods due and applies them lazily.
      env.now += cmd.ms
      return
    case 'balance':
      await checkAccounts(env, false)
      return
    case 'sweep':
      await env.meter.sweep()
      await checkAccounts(env, true)
      return
    case 'repeat': {
      // (e) the same call with the same key: a replay while the key is certainly still kept, or a
      // retry of a refused call, which stored no key.
      const prior = env.keyed[cmd.index % Math.max(1, env.keyed.length)]
      if (prior && env.model.keyIsUsable(prior.key!, env.now)) await runCall(env, prior, true)
      return
    }
    default: {
      const call = callOf(env, cmd)
      if (call) await runCall(env, call, false)
    }
  }
}

/** The title of the property's `describe` block; `skip` names it to leave the property out. */
const GROUP = 'model-based property test'
const TITLE = 'random operation sequences match the reference model and keep the ledger invariants'

/** One random sequence on a fresh store and tenant; throws at the first step that breaks a rule. */
async function runSequence(
  options: ConformanceOptions,
  setup: Setup,
  commands: Command[],
): Promise<void> {
  const store = await options.createStore()
  const env = newEnv(store, setup)
  try {
    for (const [i, cmd] of commands.entries()) {
      try {
        await step(env, cmd)
      } catch (err) {
        const at = new Date(env.now).toISOString()
        const why = err instanceof Error ? err.message : String(err)
        throw new Error(`step ${i} ${JSON.stringify(cmd)} at ${at}: ${why}`, { cause: err })
      }
    }
  } finally {
    // As in the rule tests: the caller's teardown owns the store; without one, closing the
    // meter closes the store too.
    if (options.teardown) await options.teardown(store)
    else await env.meter.close()
  }
}

/**
 * Registers the model-based property test for a store: `numRuns` random sequences of 1–40
 * operations over 2–3 accounts, each on a fresh store and tenant and predicted step by step by
 * the {@link ReferenceModel}. Skipped when `options.skip` names its group or title.
 * @example describeModelProperty({ name: 'memory', createStore: () => memoryStore() })
 */
export function describeModelProperty(options: ConformanceOptions): void {
  const skip = new Set(options.skip ?? [])
  describe(GROUP, () => {
    it.skipIf(skip.has(GROUP) || skip.has(TITLE))(
      TITLE,
      async () => {
        const commands = fc.array(commandArb, { minLength: 1, maxLength: 40, size: 'max' })
        await fc.assert(
          fc.asyncProperty(setupArb, commands, (setup, cmds) => runSequence(options, setup, cmds)),
          { numRuns: options.numRuns ?? 1000 },
        )
      },
      600_000,
    )
  })
}
