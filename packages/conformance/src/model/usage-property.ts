/**
 * The usage property test (docs/usage.md): random sequences of grants (some expiring), debits,
 * adjustments, holds committed under, at or over their amount, released or left to their TTL,
 * and clock steps, on a fresh tenant; then, for hours, days and months:
 * (a) each period of an account equals the figures of the ledger entries in it, as the
 *     definitions give them (granted, spent, released, expired);
 * (b) over the whole window, Σ granted − Σ spent − Σ expired is the account's net balance
 *     (`total − debt`): the usage adds up to the ledger replay;
 * (c) the tenant-wide report is the sum of the accounts', period by period;
 * (d) grouped by `feature`, each value's periods are its entries' figures and the `null` group
 *     holds the rest.
 */
import {
  createMeter,
  isTollgateError,
  type LedgerEntry,
  type Meter,
  type OveragePolicy,
  type Store,
  type UsageInterval,
  type UsagePeriod,
} from '@tollgate/core'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { ConformanceOptions } from '../describe-store-conformance.js'
import { readLedger } from '../testing/ledger.js'

const HOUR_MS = 3_600_000
const DAY_MS = 24 * HOUR_MS
const ACCOUNTS = ['acct-a', "b'; --"]
const FEATURES = ['chat', 'search', undefined] as const

type Command =
  | { kind: 'grant'; account: number; amount: number; expiresInMs: number | null; feature: number }
  | { kind: 'debit'; account: number; amount: number; feature: number }
  | { kind: 'adjust'; account: number; delta: number }
  | { kind: 'reserve'; account: number; amount: number; ttlMs: number; feature: number }
  | { kind: 'commit'; hold: number; actual: number | null; feature: number }
  | { kind: 'release'; hold: number }
  | { kind: 'advance'; ms: number }

const account = fc.nat({ max: ACCOUNTS.length - 1 })
const feature = fc.nat({ max: FEATURES.length - 1 })
const duration = fc.oneof(
  fc.integer({ min: 1, max: 120_000 }),
  fc.integer({ min: 60_000, max: 3 * HOUR_MS }),
  fc.integer({ min: HOUR_MS, max: 2 * DAY_MS }),
)
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('grant' as const),
      account,
      amount: fc.integer({ min: 1, max: 300 }),
      expiresInMs: fc.option(duration, { nil: null }),
      feature,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('debit' as const),
      account,
      amount: fc.integer({ min: 1, max: 80 }),
      feature,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('adjust' as const),
      account,
      delta: fc.integer({ min: -50, max: 50 }).filter((n) => n !== 0),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('reserve' as const),
      account,
      amount: fc.integer({ min: 1, max: 80 }),
      ttlMs: fc.constantFrom(1_000, 60_000, HOUR_MS),
      feature,
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('commit' as const),
      hold: fc.nat(),
      actual: fc.option(fc.integer({ min: 0, max: 150 }), { nil: null }),
      feature,
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('release' as const), hold: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: duration }) },
)

const setupArb = fc.record({
  overage: fc.constantFrom<OveragePolicy>('clamp', 'overdraft', 'reject'),
  // A month end, so month periods split a run.
  start: fc.constantFrom(Date.UTC(2025, 0, 31, 20, 30), Date.UTC(2024, 1, 28, 23, 59, 59)),
})

interface Figures {
  granted: number
  spent: number
  released: number
  expired: number
}

/** The definitions of docs/usage.md, entry by entry, written out for the test. */
function expectedOf(e: LedgerEntry): Figures {
  const f = { granted: 0, spent: 0, released: 0, expired: 0 }
  if (['grant', 'redeem', 'cycle_grant', 'adjust'].includes(e.type)) f.granted = e.delta
  else if (e.type === 'debit') f.spent = -e.delta
  else if (e.type === 'commit') {
    f.spent = -e.delta
    // The hold's part it did not charge.
    f.released = Math.max(0, -e.heldDelta - f.spent)
  } else if (e.type === 'release') f.released = -e.heldDelta
  else if (e.type === 'expire') f.expired = -e.delta
  return f
}

function add(to: Figures, f: Figures): void {
  to.granted += f.granted
  to.spent += f.spent
  to.released += f.released
  to.expired += f.expired
}

/** The expected periods of `entries` over the report's period starts. */
function expectedPeriods(entries: readonly LedgerEntry[], starts: number[], to: number) {
  const out: UsagePeriod[] = starts.map((start) => ({
    start,
    granted: 0,
    spent: 0,
    released: 0,
    expired: 0,
  }))
  for (const e of entries) {
    const i = starts.findLastIndex((s) => s <= e.at)
    if (i < 0 || e.at >= to) continue
    add(out[i]!, expectedOf(e))
  }
  return out
}

type Setup = typeof setupArb extends fc.Arbitrary<infer S> ? S : never

async function runSequence(
  options: ConformanceOptions,
  setup: Setup,
  commands: Command[],
): Promise<void> {
  const store: Store = await options.createStore()
  let now = setup.start
  const meter: Meter = createMeter({
    store,
    tenant: `usage-${RUN_ID}-${++tenants}`,
    clock: () => now,
    overage: setup.overage,
    overdraftLimit: 100,
  })
  const holds: string[] = []
  const meta = (i: number) => {
    const f = FEATURES[i]
    return f === undefined ? {} : { metadata: { feature: f } }
  }
  try {
    for (const cmd of commands) {
      try {
        const acct = ACCOUNTS[(cmd as { account?: number }).account ?? 0]!
        switch (cmd.kind) {
          case 'grant':
            await meter.grant(acct, cmd.amount, {
              ...meta(cmd.feature),
              ...(cmd.expiresInMs === null ? {} : { expiresAt: now + cmd.expiresInMs }),
            })
            break
          case 'debit':
            await meter.debit(acct, cmd.amount, meta(cmd.feature))
            break
          case 'adjust':
            await meter.adjust(acct, cmd.delta, { reason: 'property' })
            break
          case 'reserve':
            holds.push(
              (await meter.reserve(acct, cmd.amount, { ttlMs: cmd.ttlMs, ...meta(cmd.feature) }))
                .id,
            )
            break
          case 'commit':
            if (holds.length > 0) {
              const id = holds[cmd.hold % holds.length]!
              await meter.commit(id, cmd.actual ?? undefined, meta(cmd.feature))
            }
            break
          case 'release':
            if (holds.length > 0) await meter.release(holds[cmd.hold % holds.length]!)
            break
          case 'advance':
            now += cmd.ms
            break
        }
      } catch (err) {
        // Refusals (no credits, a resolved or expired hold, an overage) are part of the run.
        if (!isTollgateError(err)) throw err
      }
    }
    // Everything due (hold TTLs, bucket expiry) applied and in the ledger.
    await meter.sweep()
    await checkUsage(meter, setup.start, now)
  } finally {
    if (options.teardown) await options.teardown(store)
    else await meter.close()
  }
}

async function checkUsage(meter: Meter, start: number, end: number): Promise<void> {
  const ledgers = new Map<string, LedgerEntry[]>()
  for (const a of ACCOUNTS) ledgers.set(a, await readLedger(meter, a))
  const intervals: UsageInterval[] = ['day', 'month']
  if (end - start < 900 * HOUR_MS) intervals.push('hour')
  for (const interval of intervals) {
    const q = { interval, from: start, to: end + 1 }
    const tenant = await meter.usage(null, q)
    const summed = tenant.periods.map((p) => ({
      ...p,
      granted: 0,
      spent: 0,
      released: 0,
      expired: 0,
    }))
    const starts = tenant.periods.map((p) => p.start)
    for (const a of ACCOUNTS) {
      const entries = ledgers.get(a)!
      const r = await meter.usage(a, q)
      expect(
        r.periods.map((p) => p.start),
        `${interval} periods of ${a}`,
      ).toEqual(starts)
      // (a)
      expect(r.periods, `${interval} usage of ${a}`).toEqual(expectedPeriods(entries, starts, r.to))
      // (b)
      const total = { granted: 0, spent: 0, released: 0, expired: 0 }
      for (const p of r.periods) add(total, p)
      const b = await meter.balance(a, { fresh: true })
      expect(total.granted - total.spent - total.expired, `net balance of ${a}`).toBe(
        b.total - b.debt,
      )
      for (const [i, p] of r.periods.entries()) add(summed[i]!, p)
      // (d)
      const g = await meter.usage(a, { ...q, groupBy: 'feature' })
      expect(g.other).toBeNull()
      for (const group of g.groups ?? []) {
        const own = entries.filter((e) =>
          group.value === null
            ? typeof e.metadata.feature !== 'string'
            : e.metadata.feature === group.value,
        )
        expect(group.periods, `${a} feature ${group.value}`).toEqual(
          expectedPeriods(own, starts, r.to),
        )
      }
      const listed = new Set((g.groups ?? []).map((x) => x.value))
      for (const e of entries) {
        const f = expectedOf(e)
        const value = typeof e.metadata.feature === 'string' ? e.metadata.feature : null
        if (value !== null && (f.granted || f.spent || f.released || f.expired)) {
          expect(listed.has(value), `group ${value} of ${a}`).toBe(true)
        }
      }
      // The null group is the totals less every value's figures: listed exactly when the
      // entries without the key leave a figure in some period (a grant and an adjustment that
      // cancel within one period leave none).
      const none = expectedPeriods(
        entries.filter((e) => typeof e.metadata.feature !== 'string'),
        starts,
        r.to,
      )
      const noneHasFigures = none.some((p) => p.granted || p.spent || p.released || p.expired)
      expect(listed.has(null), `group null of ${a}`).toBe(noneHasFigures)
    }
    // (c)
    expect(tenant.periods, `${interval} tenant-wide usage`).toEqual(summed)
  }
}

// Unique per process, so a persistent store reused between runs never sees an old tenant.
const RUN_ID = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
let tenants = 0

const GROUP = 'usage property test'
const TITLE = 'usage periods equal the ledger entries in them and add up to the ledger replay'

/**
 * Registers the usage property test for a store: a fifth of `numRuns` random sequences of
 * 1–30 operations over two accounts, each on a fresh tenant. Skipped when `options.skip` names
 * its group or title, or when the store keeps no usage.
 * @example describeUsageProperty({ name: 'memory', createStore: () => memoryStore() })
 */
export function describeUsageProperty(options: ConformanceOptions): void {
  const skip = new Set(options.skip ?? [])
  describe(GROUP, () => {
    it.skipIf(skip.has(GROUP) || skip.has(TITLE))(
      TITLE,
      async (ctx) => {
        const probe = await options.createStore()
        const kind = probe.kind
        const has = typeof probe.usage === 'function'
        if (options.teardown) await options.teardown(probe)
        else await probe.close()
        if (!has) return ctx.skip(`${kind} store has no usage()`)
        const commands = fc.array(commandArb, { minLength: 1, maxLength: 30 })
        await fc.assert(
          fc.asyncProperty(setupArb, commands, (setup, cmds) => runSequence(options, setup, cmds)),
          { numRuns: Math.max(10, Math.round((options.numRuns ?? 1000) / 5)) },
        )
      },
      600_000,
    )
  })
}
