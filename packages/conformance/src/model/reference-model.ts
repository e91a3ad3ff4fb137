/**
 * A deliberately naive reference model of one tenant's ledger, written from the rules in
 * DESIGN.md §1 and docs/decisions.md, not from core's engine. Buckets are plain arrays that are
 * re-sorted into burn order on every use; housekeeping (cycle periods, hold TTLs, bucket expiry)
 * runs eagerly over every account before each operation, which gives the same balances as the
 * engine's lazy housekeeping because all of it is a function of time alone.
 *
 * Each operation returns an {@link Expect}: success with the result fields the model predicts,
 * an error with the codes it allows, or a replay of an earlier idempotent result. State changes
 * only when the model predicts success (plus failed-redeem counting, which the rules persist).
 *
 * Ids (grants, holds, cycles) are made by the engine; the caller passes them in from the real
 * result. Cycle buckets are granted inside housekeeping, so their ids are learnt afterwards from
 * the ledger's `cycle_grant` entries ({@link ReferenceModel.learnCycleGrantIds}).
 */
import type { Category, CycleEvery, ErrorCode, OveragePolicy } from '@tollgate/core'

const DAY_MS = 86_400_000

export interface ModelConfig {
  overage: OveragePolicy
  overdraftLimit: number | null
  lowBalanceThreshold: number | null
  redeemMaxFailures: number
  redeemWindowMs: number
  /** Resolved holds and idempotency keys older than this may have been pruned. */
  retentionMs: number
}

export type Expect<T> =
  | { kind: 'ok'; value: T }
  | { kind: 'error'; codes: readonly ErrorCode[] }
  | { kind: 'replay'; key: string }

export interface ModelBucket {
  id: string
  remaining: number
  held: number
  expiresAt: number | null
  priority: number
  category: Category
  createdAt: number
  /** Past its expiry: only a held part can be left, and it leaves as the holds resolve. */
  expired: boolean
}

/** Allocations point at bucket objects, so ids learnt later still show up in predictions. */
export interface ModelAllocation {
  bucket: ModelBucket
  amount: number
}

interface ModelHold {
  id: string
  account: string
  amount: number
  expiresAt: number
  status: 'pending' | 'committed' | 'released' | 'expired'
  allocations: ModelAllocation[]
  resolvedAt: number | null
}

interface ModelCycle {
  id: string
  amount: number
  every: CycleEvery
  rolloverMax: number | null
  priority: number
  category: Category
  anchor: number
  period: number
  active: boolean
  /** The current period's bucket (null when its grant all went to debt). */
  bucket: ModelBucket | null
}

interface ModelAccount {
  debt: number
  lowBalanceThreshold: number | null
  overdraftLimit: number | null
  cycle: ModelCycle | null
  /** Every cycle grant in ledger order, to learn their ids from `cycle_grant` entries. */
  cycleGrants: { bucket: ModelBucket | null }[]
  redeemFailures: number
  redeemWindowStart: number
  /** A commit ran under the overdraft policy: only then may debt be non-zero. */
  overdraftUsed: boolean
}

interface ModelBatch {
  credits: number
  codeExpiresAt: number | null
  validityDays: number | null
  maxRedemptions: number
  priority: number
  category: Category
}

export interface ModelBalance {
  account: string
  total: number
  held: number
  available: number
  debt: number
  low: boolean
  buckets: {
    id: string
    remaining: number
    held: number
    expiresAt: number | null
    priority: number
    category: Category
  }[]
  asOf: number
}

export interface CycleView {
  id: string
  amount: number
  anchor: number
  periodStart: number
  periodEnd: number
  active: boolean
}

const fail = (...codes: ErrorCode[]): { kind: 'error'; codes: readonly ErrorCode[] } => ({
  kind: 'error',
  codes,
})

/** priority ↑ → expiresAt ↑ (none last) → promotional before paid → created first → id. */
function burnOrder(a: ModelBucket, b: ModelBucket): number {
  if (a.priority !== b.priority) return a.priority - b.priority
  const ea = a.expiresAt ?? Number.POSITIVE_INFINITY
  const eb = b.expiresAt ?? Number.POSITIVE_INFINITY
  if (ea !== eb) return ea < eb ? -1 : 1
  if (a.category !== b.category) return a.category === 'promotional' ? -1 : 1
  if (a.createdAt !== b.createdAt) return a.createdAt - b.createdAt
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

/** Start of period `i` in UTC; months keep the anchor's day (clamped) and time of day. */
export function periodStartOf(anchor: number, every: CycleEvery, i: number): number {
  if (every === 'day') return anchor + i * DAY_MS
  if (every === 'week') return anchor + i * 7 * DAY_MS
  if (every !== 'month') return anchor + i * every.days * DAY_MS
  const a = new Date(anchor)
  const midnight = Date.UTC(a.getUTCFullYear(), a.getUTCMonth(), a.getUTCDate())
  const first = new Date(Date.UTC(a.getUTCFullYear(), a.getUTCMonth() + i, 1))
  const lastDay = new Date(
    Date.UTC(first.getUTCFullYear(), first.getUTCMonth() + 1, 0),
  ).getUTCDate()
  first.setUTCDate(Math.min(a.getUTCDate(), lastDay))
  return first.getTime() + (anchor - midnight)
}

export class ReferenceModel {
  readonly #accounts = new Map<string, ModelAccount>()
  readonly #buckets = new Map<string, ModelBucket[]>()
  readonly #holds = new Map<string, ModelHold>()
  readonly #keys = new Map<string, { account: string; fingerprint: string; createdAt: number }>()
  readonly #codes = new Map<string, { batch: ModelBatch; redemptions: number; by: Set<string> }>()
  #pending = 0

  constructor(readonly config: ModelConfig) {}

  #account(name: string): ModelAccount {
    let a = this.#accounts.get(name)
    if (!a) {
      a = {
        debt: 0,
        lowBalanceThreshold: null,
        overdraftLimit: null,
        cycle: null,
        cycleGrants: [],
        redeemFailures: 0,
        redeemWindowStart: Number.NEGATIVE_INFINITY,
        overdraftUsed: false,
      }
      this.#accounts.set(name, a)
      this.#buckets.set(name, [])
    }
    return a
  }

  /** Live buckets (something left) in burn order, sorted afresh every time on purpose. */
  #live(name: string): ModelBucket[] {
    const live = (this.#buckets.get(name) ?? []).filter((b) => b.remaining > 0).sort(burnOrder)
    this.#buckets.set(name, live)
    return live
  }

  #available(name: string): number {
    return this.#live(name).reduce((sum, b) => sum + b.remaining - b.held, 0)
  }

  /** Credits in: debt first, the rest into a new bucket (none when nothing is left). */
  #credit(name: string, amount: number, b: Omit<ModelBucket, 'remaining' | 'held' | 'expired'>) {
    const acc = this.#account(name)
    const repaid = Math.min(acc.debt, amount)
    acc.debt -= repaid
    let bucket: ModelBucket | null = null
    if (amount > repaid) {
      bucket = { ...b, remaining: amount - repaid, held: 0, expired: false }
      this.#buckets.get(name)!.push(bucket)
    }
    return { bucket, repaid }
  }

  /** Free credits in burn order; the caller checked there are enough. */
  #take(name: string, amount: number, hold: boolean): ModelAllocation[] {
    const out: ModelAllocation[] = []
    let need = amount
    for (const b of this.#live(name)) {
      const n = Math.min(need, b.remaining - b.held)
      if (n <= 0) continue
      if (hold) b.held += n
      else b.remaining -= n
      need -= n
      out.push({ bucket: b, amount: n })
    }
    return out
  }

  /** Spends the first `spend` of a hold's allocations, frees the rest; freed parts of expired buckets leave. */
  #settle(hold: ModelHold, spend: number): void {
    let left = spend
    for (const a of hold.allocations) {
      const s = Math.min(a.amount, left)
      left -= s
      a.bucket.held -= a.amount
      a.bucket.remaining -= s
    }
    for (const a of hold.allocations) if (a.bucket.expired) a.bucket.remaining = a.bucket.held
  }

  /**
   * Applies everything due up to `now`, earliest first. At equal times a cycle boundary goes
   * first (the ending period's leftover must be measured before its bucket expires), then hold
   * TTLs, then bucket expiry; the last two commute.
   */
  #tick(now: number): void {
    for (const [name, acc] of this.#accounts) {
      for (;;) {
        let t = Number.POSITIVE_INFINITY
        let run: (() => void) | null = null
        const cycle = acc.cycle
        if (cycle?.active) {
          const next = periodStartOf(cycle.anchor, cycle.every, cycle.period + 1)
          if (next <= now) {
            t = next
            run = () => this.#nextPeriod(name, cycle, next)
          }
        }
        for (const h of this.#holds.values()) {
          if (
            h.account === name &&
            h.status === 'pending' &&
            h.expiresAt <= now &&
            h.expiresAt < t
          ) {
            t = h.expiresAt
            run = () => {
              h.status = 'expired'
              h.resolvedAt = h.expiresAt
              this.#settle(h, 0)
            }
          }
        }
        for (const b of this.#live(name)) {
          if (!b.expired && b.expiresAt !== null && b.expiresAt <= now && b.expiresAt < t) {
            t = b.expiresAt
            run = () => {
              b.expired = true
              b.remaining = b.held
            }
          }
        }
        if (!run) break
        run()
      }
    }
  }

  #nextPeriod(name: string, cycle: ModelCycle, start: number): void {
    const prev = cycle.bucket
    let leftover = 0
    if (prev && !prev.expired) {
      leftover = prev.remaining - prev.held
      prev.expired = true
      prev.remaining = prev.held
    }
    const carry = cycle.rolloverMax === null ? 0 : Math.min(leftover, cycle.rolloverMax)
    cycle.period += 1
    this.#cycleGrant(name, cycle, cycle.amount + carry, start)
  }

  #cycleGrant(name: string, cycle: ModelCycle, amount: number, at: number): void {
    const { bucket } = this.#credit(name, amount, {
      id: `~pending-cycle-grant-${++this.#pending}`,
      expiresAt: periodStartOf(cycle.anchor, cycle.every, cycle.period + 1),
      priority: cycle.priority,
      category: cycle.category,
      createdAt: at,
    })
    cycle.bucket = bucket
    this.#account(name).cycleGrants.push({ bucket })
  }

  /**
   * The common frame of a mutation: a known key replays (same account and input) or conflicts,
   * otherwise housekeeping runs, then the operation, and a successful keyed one stores its key.
   */
  #mutate<T>(
    now: number,
    account: string,
    key: string | undefined,
    input: unknown,
    body: () => Expect<T>,
  ): Expect<T> {
    const fingerprint = JSON.stringify(input)
    if (key !== undefined) {
      const saved = this.#keys.get(key)
      if (saved) {
        return saved.account === account && saved.fingerprint === fingerprint
          ? { kind: 'replay', key }
          : fail('idempotency_conflict')
      }
    }
    if (account !== '') this.#account(account)
    this.#tick(now)
    const out = body()
    if (out.kind === 'ok' && key !== undefined) {
      this.#keys.set(key, { account, fingerprint, createdAt: now })
    }
    return out
  }

  /**
   * Whether the model can tell what reusing `key` does: a key never stored is new, a stored one
   * is certainly kept for the retention period (after that a store may or may not have pruned it).
   */
  keyIsUsable(key: string, now: number): boolean {
    const saved = this.#keys.get(key)
    return saved === undefined || now < saved.createdAt + this.config.retentionMs
  }

  grant(
    now: number,
    account: string,
    amount: number,
    o: { expiresAt?: number; validityDays?: number; priority?: number; category?: Category },
    key: string | undefined,
    id: string,
  ): Expect<{ repaidDebt: number; expiresAt: number | null }> {
    // Validation comes before the store (decisions.md), so it comes before idempotency too.
    if (o.expiresAt !== undefined && o.expiresAt <= now) return fail('invalid_input')
    // The input is what the caller passed: `validityDays`, not the instant it works out to.
    const input = ['grant', account, amount, o.expiresAt ?? null, o.validityDays ?? null]
    const priority = o.priority ?? 50
    const category = o.category ?? 'paid'
    return this.#mutate(now, account, key, [...input, priority, category], () => {
      const expiresAt =
        o.validityDays !== undefined ? now + o.validityDays * DAY_MS : (o.expiresAt ?? null)
      const { repaid } = this.#credit(account, amount, {
        id,
        expiresAt,
        priority,
        category,
        createdAt: now,
      })
      return { kind: 'ok', value: { repaidDebt: repaid, expiresAt } }
    })
  }

  debit(now: number, account: string, amount: number, key: string | undefined) {
    return this.#mutate(now, account, key, ['debit', account, amount], () => {
      if (amount > this.#available(account)) return fail('insufficient_credits')
      return { kind: 'ok', value: { allocations: this.#take(account, amount, false) } }
    })
  }

  /** An operator's correction: positive adds a non-expiring paid bucket, negative spends like debit. */
  adjust(now: number, account: string, delta: number, key: string | undefined, grantId: string) {
    return this.#mutate(now, account, key, ['adjust', account, delta], () => {
      if (delta > 0) {
        const b = {
          id: grantId,
          expiresAt: null,
          priority: 50,
          category: 'paid' as const,
          createdAt: now,
        }
        this.#credit(account, delta, b)
        return { kind: 'ok', value: { allocations: [] as ModelAllocation[] } }
      }
      if (-delta > this.#available(account)) return fail('insufficient_credits')
      return { kind: 'ok', value: { allocations: this.#take(account, -delta, false) } }
    })
  }

  reserve(
    now: number,
    account: string,
    amount: number,
    ttlMs: number,
    key: string | undefined,
    id: string,
  ) {
    return this.#mutate(now, account, key, ['reserve', account, amount, ttlMs], () => {
      if (amount > this.#available(account)) return fail('insufficient_credits')
      const allocations = this.#take(account, amount, true)
      const expiresAt = now + ttlMs
      this.#holds.set(id, {
        id,
        account,
        amount,
        expiresAt,
        status: 'pending',
        allocations,
        resolvedAt: null,
      })
      return { kind: 'ok', value: { amount, expiresAt, allocations } }
    })
  }

  /** The pending hold commit/release/extend act on, or why they cannot (after housekeeping). */
  #holdError(now: number, id: string): Expect<never> | ModelHold {
    const hold = this.#holds.get(id)
    if (!hold) return fail('not_found')
    if (hold.status === 'pending') return hold
    const code: ErrorCode = hold.status === 'expired' ? 'hold_expired' : 'hold_resolved'
    // A hold resolved longer ago than the retention may have been pruned.
    return hold.resolvedAt! + this.config.retentionMs <= now ? fail(code, 'not_found') : fail(code)
  }

  commit(
    now: number,
    holdId: string,
    actual: number | undefined,
    overage: OveragePolicy | undefined,
    key: string | undefined,
  ) {
    const known = this.#holds.get(holdId)
    if (!known) return fail('not_found')
    const input = ['commit', holdId, actual ?? null, overage ?? null]
    return this.#mutate(now, known.account, key, input, () => {
      const hold = this.#holdError(now, holdId)
      if ('kind' in hold) return hold
      const name = hold.account
      const acc = this.#account(name)
      const want = actual ?? hold.amount
      const policy = overage ?? this.config.overage
      if (want > hold.amount && policy === 'reject') return fail('overage')
      const fromHold = Math.min(want, hold.amount)
      this.#settle(hold, fromHold)
      const extra = want - fromHold
      const taken = Math.min(extra, this.#available(name))
      this.#take(name, taken, false)
      let debt = 0
      if (policy === 'overdraft') {
        acc.overdraftUsed = true
        const limit = acc.overdraftLimit ?? this.config.overdraftLimit
        const room = limit === null ? Number.POSITIVE_INFINITY : Math.max(0, limit - acc.debt)
        debt = Math.min(extra - taken, room)
        acc.debt += debt
      }
      hold.status = 'committed'
      hold.resolvedAt = now
      const charged = fromHold + taken + debt
      return {
        kind: 'ok',
        value: { charged, shortfall: want - charged, debt, freed: hold.amount - fromHold },
      }
    })
  }

  release(now: number, holdId: string, key: string | undefined) {
    const known = this.#holds.get(holdId)
    if (!known) return fail('not_found')
    return this.#mutate(now, known.account, key, ['release', holdId], () => {
      const hold = this.#holdError(now, holdId)
      if ('kind' in hold) return hold
      hold.status = 'released'
      hold.resolvedAt = now
      this.#settle(hold, 0)
      return { kind: 'ok', value: { freed: hold.amount } }
    })
  }

  extend(now: number, holdId: string, ttlMs: number, key: string | undefined) {
    const known = this.#holds.get(holdId)
    if (!known) return fail('not_found')
    return this.#mutate(now, known.account, key, ['extend', holdId, ttlMs], () => {
      const hold = this.#holdError(now, holdId)
      if ('kind' in hold) return hold
      hold.expiresAt = now + ttlMs
      return { kind: 'ok', value: { expiresAt: hold.expiresAt } }
    })
  }

  /**
   * Grows a pending hold by `amount` free credits (all of them, or with `partial` what there
   * is). The hold's allocations are kept merged per bucket and in burn order, so its commit
   * spends it as a hold reserved at the new size would be spent.
   */
  increase(
    now: number,
    holdId: string,
    amount: number,
    partial: boolean,
    key: string | undefined,
  ): Expect<{ amount: number; added: number; expiresAt: number }> {
    const known = this.#holds.get(holdId)
    if (!known) return fail('not_found')
    return this.#mutate(now, known.account, key, ['increase', holdId, amount, partial], () => {
      const hold = this.#holdError(now, holdId)
      if ('kind' in hold) return hold
      const available = this.#available(hold.account)
      if (amount > available && !partial) return fail('insufficient_credits')
      const added = Math.min(amount, available)
      for (const part of this.#take(hold.account, added, true)) {
        const same = hold.allocations.find((a) => a.bucket === part.bucket)
        if (same) same.amount += part.amount
        else hold.allocations.push(part)
      }
      hold.allocations.sort((a, b) => burnOrder(a.bucket, b.bucket))
      hold.amount += added
      return { kind: 'ok', value: { amount: hold.amount, added, expiresAt: hold.expiresAt } }
    })
  }

  configure(
    now: number,
    account: string,
    s: { lowBalanceThreshold?: number | null; overdraftLimit?: number | null },
  ) {
    return this.#mutate(now, account, undefined, null, () => {
      const acc = this.#account(account)
      if (s.lowBalanceThreshold !== undefined) acc.lowBalanceThreshold = s.lowBalanceThreshold
      if (s.overdraftLimit !== undefined) acc.overdraftLimit = s.overdraftLimit
      const value = {
        lowBalanceThreshold: acc.lowBalanceThreshold,
        overdraftLimit: acc.overdraftLimit,
      }
      return { kind: 'ok', value }
    })
  }

  startCycle(
    now: number,
    account: string,
    o: {
      amount: number
      every: CycleEvery
      rolloverMax: number | null
      priority?: number
      category?: Category
    },
    key: string | undefined,
    id: string,
  ): Expect<{ cycle: CycleView; replaced: string | null }> {
    const priority = o.priority ?? 50
    const category = o.category ?? 'paid'
    const input = ['startCycle', account, o.amount, o.every, o.rolloverMax, priority, category]
    return this.#mutate(now, account, key, input, () => {
      const acc = this.#account(account)
      const replaced = acc.cycle?.active ? acc.cycle.id : null
      const cycle: ModelCycle = {
        ...o,
        id,
        priority,
        category,
        anchor: now,
        period: 0,
        active: true,
        bucket: null,
      }
      acc.cycle = cycle
      this.#cycleGrant(account, cycle, o.amount, now)
      return { kind: 'ok', value: { cycle: this.#cycleView(cycle), replaced } }
    })
  }

  stopCycle(now: number, account: string, key: string | undefined): Expect<{ cycle: CycleView }> {
    return this.#mutate(now, account, key, ['stopCycle', account], () => {
      const cycle = this.#account(account).cycle
      if (!cycle?.active) return fail('not_found')
      cycle.active = false
      return { kind: 'ok', value: { cycle: this.#cycleView(cycle) } }
    })
  }

  #cycleView(c: ModelCycle): CycleView {
    const periodStart = periodStartOf(c.anchor, c.every, c.period)
    const periodEnd = periodStartOf(c.anchor, c.every, c.period + 1)
    return {
      id: c.id,
      amount: c.amount,
      anchor: c.anchor,
      periodStart,
      periodEnd,
      active: c.active,
    }
  }

  /** Codes are tenant-wide: their idempotency keys belong to no account (`''`). */
  createCodes(
    now: number,
    o: {
      credits: number
      count: number
      codeExpiresAt?: number
      validityDays?: number
      maxRedemptions?: number
      priority?: number
      category?: Category
    },
    key: string | undefined,
    codes: string[],
  ): Expect<Record<string, never>> {
    if (o.codeExpiresAt !== undefined && o.codeExpiresAt <= now) return fail('invalid_input')
    const batch: ModelBatch = {
      credits: o.credits,
      codeExpiresAt: o.codeExpiresAt ?? null,
      validityDays: o.validityDays ?? null,
      maxRedemptions: o.maxRedemptions ?? 1,
      priority: o.priority ?? 50,
      category: o.category ?? 'promotional',
    }
    return this.#mutate(now, '', key, ['createCodes', o.count, batch], () => {
      for (const code of codes) this.#codes.set(code, { batch, redemptions: 0, by: new Set() })
      return { kind: 'ok', value: {} }
    })
  }

  /** `code` is the canonical code, or null for a well-formed code nobody created. */
  redeem(
    now: number,
    account: string,
    code: string | null,
    key: string | undefined,
    grantId: string,
  ) {
    return this.#mutate(now, account, key, ['redeem', account, code], () => {
      const acc = this.#account(account)
      const { redeemMaxFailures: max, redeemWindowMs: windowMs } = this.config
      const inWindow = now - acc.redeemWindowStart < windowMs
      if (inWindow && acc.redeemFailures >= max) return fail('rate_limited')
      const c = code === null ? undefined : this.#codes.get(code)
      let failure: ErrorCode | null = null
      if (!c) failure = 'invalid_input'
      else if (c.batch.codeExpiresAt !== null && c.batch.codeExpiresAt <= now)
        failure = 'code_unavailable'
      else if (c.by.has(account)) failure = 'code_unavailable'
      else if (c.redemptions >= c.batch.maxRedemptions) failure = 'code_unavailable'
      if (failure || !c) {
        // Failed attempts count in a fixed window that starts with the first failure.
        if (inWindow) acc.redeemFailures += 1
        else {
          acc.redeemWindowStart = now
          acc.redeemFailures = 1
        }
        return fail(failure ?? 'invalid_input')
      }
      c.redemptions += 1
      c.by.add(account)
      const { batch } = c
      const expiresAt = batch.validityDays === null ? null : now + batch.validityDays * DAY_MS
      const { priority, category } = batch
      this.#credit(account, batch.credits, {
        id: grantId,
        expiresAt,
        priority,
        category,
        createdAt: now,
      })
      return { kind: 'ok', value: { creditsGranted: batch.credits, expiresAt } }
    })
  }

  balance(now: number, account: string): ModelBalance {
    const acc = this.#account(account)
    this.#tick(now)
    const live = this.#live(account)
    const total = live.reduce((s, b) => s + b.remaining, 0)
    const held = live.reduce((s, b) => s + b.held, 0)
    const threshold = acc.lowBalanceThreshold ?? this.config.lowBalanceThreshold
    return {
      account,
      total,
      held,
      available: total - held,
      debt: acc.debt,
      low: threshold !== null && total - held <= threshold,
      buckets: live.map(({ id, remaining, held, expiresAt, priority, category }) => ({
        id,
        remaining,
        held,
        expiresAt,
        priority,
        category,
      })),
      asOf: now,
    }
  }

  overdraftUsed(account: string): boolean {
    return this.#account(account).overdraftUsed
  }

  /**
   * Names the cycle buckets from the `grantId`s of the account's `cycle_grant` entries, oldest
   * first, as the ledger stands at `now` (so the model first catches up to `now` itself).
   */
  learnCycleGrantIds(now: number, account: string, grantIds: string[]): void {
    this.#tick(now)
    const grants = this.#account(account).cycleGrants
    for (let i = 0; i < grants.length && i < grantIds.length; i++) {
      const bucket = grants[i]!.bucket
      if (bucket) bucket.id = grantIds[i]!
    }
  }
}
