/**
 * The ledger rules (DESIGN §1) as one function over one account's state:
 * `applyOperation(state, op, ctx) → Effects`. No I/O, no clock of its own.
 *
 * The caller owns `state` and gets it back as the new state: the engine checks everything an
 * operation needs before it changes anything, so a refused operation leaves the state as the
 * lazy housekeeping (expiry, cycles) left it, and a store may persist the state either way.
 */
import {
  CodeUnavailableError,
  HoldExpiredError,
  HoldResolvedError,
  IdempotencyConflictError,
  InsufficientCreditsError,
  InvalidInputError,
  NotFoundError,
  RateLimitedError,
  TollgateError,
} from '../errors.js'
import type {
  Allocation,
  Balance,
  BalanceBucket,
  Category,
  LedgerEntry,
  Metadata,
} from '../types.js'
import { ensureBurnOrder, insertBucket } from './burn-order.js'
import { isBucketDue, isDue, isHoldDue, nextCycleAt } from './due.js'
import { decideKey, fingerprintOf } from './idempotency.js'
import { periodStart } from './periods.js'
import { growth, overdraftRoom, settleHold } from './settle.js'
import type {
  AccountRecord,
  AccountState,
  AlertLevel,
  BucketState,
  CycleState,
  Effects,
  EngineContext,
  EngineEvent,
  EntryDraft,
  HoldState,
  IncreaseOp,
  Operation,
} from './state.js'

const DAY_MS = 86_400_000
/** The metadata of entries and ops that carry none; shared, never mutated. */
export const NO_METADATA: Metadata = Object.freeze({}) as Metadata

/** A fresh account as first use creates it. */
export function newAccountState(account: string, now: number): AccountState {
  return {
    record: {
      account,
      debt: 0,
      lowBalanceThreshold: null,
      overdraftLimit: null,
      alertLevel: null,
      cycle: null,
      redeemFailures: 0,
      redeemWindowStart: 0,
      createdAt: now,
    },
    buckets: [],
    holds: [],
  }
}

/** The shared empty list: frozen, so a stray push fails loudly instead of leaking. */
const NONE: never[] = Object.freeze([]) as never[]

/** A list the caller may keep and change. */
function own<T>(list: T[]): T[] {
  return list === NONE ? [] : list
}

/** The effects being built for one operation, with running totals. It is the returned Effects. */
class Run implements Effects {
  result: Record<string, unknown> | null = null
  error: TollgateError | null = null
  replayed = false
  balance: Balance = undefined as unknown as Balance
  entries: EntryDraft[] = []
  touchedBuckets: BucketState[] = NONE
  touchedHolds: HoldState[] = NONE
  recordChanged = false
  saveIdempotency: Effects['saveIdempotency'] = null
  redemption: Effects['redemption'] = null
  events: EngineEvent[] = NONE
  /** Something durable changed (the store must persist). */
  changed = false
  net: number
  held: number

  constructor(
    readonly state: AccountState,
    readonly ctx: EngineContext,
  ) {
    let total = 0
    let held = 0
    for (const b of state.buckets) {
      total += b.remaining
      held += b.held
    }
    this.net = total - state.record.debt
    this.held = held
  }

  get account(): string {
    return this.state.record.account
  }

  /** Appends an entry and returns it so the caller can add its optional fields. */
  entry(
    type: EntryDraft['type'],
    delta: number,
    heldDelta: number,
    debtDelta: number,
    at: number,
  ): EntryDraft {
    this.net += delta
    this.held += heldDelta
    const e: EntryDraft = {
      id: '',
      account: this.state.record.account,
      type,
      // `+ 0` turns −0 (from negating a zero amount) into 0, as JSON and SQL stores return it.
      delta: delta + 0,
      heldDelta: heldDelta + 0,
      debtDelta: debtDelta + 0,
      balanceAfter: this.net,
      holdId: undefined,
      grantId: undefined,
      redemptionId: undefined,
      cycleId: undefined,
      idempotencyKey: undefined,
      reason: undefined,
      metadata: NO_METADATA,
      at,
    }
    this.entries.push(e)
    this.changed = true
    return e
  }

  event(e: EngineEvent): void {
    if (this.events === NONE) this.events = []
    this.events.push(e)
  }

  touchBucket(b: BucketState): void {
    if (this.touchedBuckets === NONE) this.touchedBuckets = [b]
    else if (!this.touchedBuckets.includes(b)) this.touchedBuckets.push(b)
    this.changed = true
  }

  touchHold(h: HoldState): void {
    if (this.touchedHolds === NONE) this.touchedHolds = [h]
    else if (!this.touchedHolds.includes(h)) this.touchedHolds.push(h)
    this.changed = true
  }

  touchRecord(): void {
    this.recordChanged = true
    this.changed = true
  }

  available(): number {
    return this.net + this.state.record.debt - this.held
  }
}

/** True when metadata carries any key (the shared empty object never does). */
export function hasMetadata(m: Metadata): boolean {
  if (m === NO_METADATA) return false
  for (const _ in m) return true
  return false
}

/** Copies the caller's idempotency key and metadata onto an entry. */
function fromOp(
  e: EntryDraft,
  op: { idempotencyKey?: string | undefined; hideKey?: boolean | undefined; metadata?: Metadata },
): EntryDraft {
  // A key a transport made for its own retries is not the caller's: entries leave it out.
  if (op.idempotencyKey !== undefined && op.hideKey !== true) {
    e.idempotencyKey = op.idempotencyKey
  }
  if (op.metadata !== undefined && hasMetadata(op.metadata)) e.metadata = op.metadata
  return e
}

// ---------------------------------------------------------------- credits in and out

/**
 * Adds credits: repays debt first, puts the rest into a new bucket, writes one entry.
 * Returns the bucket id (also the grant id), how much went to debt, and the entry, for the
 * caller to add its own fields to.
 */
function credit(
  run: Run,
  amount: number,
  bucket: {
    expiresAt: number | null
    priority: number
    category: Category
    cycleId: string | null
  },
  entryType: EntryDraft['type'],
  at: number,
): { id: string; repaid: number; entry: EntryDraft } {
  const id = run.ctx.newId('grt', run.ctx.now)
  const rec = run.state.record
  const repaid = Math.min(rec.debt, amount)
  if (repaid > 0) {
    rec.debt -= repaid
    run.touchRecord()
  }
  const put = amount - repaid
  if (put > 0) {
    const b: BucketState = {
      id,
      amount: put,
      remaining: put,
      held: 0,
      expiresAt: bucket.expiresAt,
      priority: bucket.priority,
      category: bucket.category,
      createdAt: at,
      expired: false,
      cycleId: bucket.cycleId,
    }
    insertBucket(run.state.buckets, b)
    run.touchBucket(b)
  }
  const entry = run.entry(entryType, amount, 0, -repaid, at)
  entry.grantId = id
  run.event({
    type: 'granted',
    account: run.account,
    grantId: id,
    amount,
    source: entryType,
    at,
  })
  return { id, repaid, entry }
}

/** Takes `amount` of free credits in burn order. Caller has checked `amount ≤ available`. */
function take(run: Run, amount: number, hold: boolean): Allocation[] {
  // Built as a literal on the first hit: an array grown from [] reserves 17 slots.
  let allocations: Allocation[] = NONE
  let need = amount
  for (const b of run.state.buckets) {
    if (need === 0) break
    const free = b.remaining - b.held
    if (free <= 0) continue
    const n = Math.min(free, need)
    if (hold) b.held += n
    else b.remaining -= n
    need -= n
    if (allocations === NONE) allocations = [{ bucketId: b.id, amount: n }]
    else allocations.push({ bucketId: b.id, amount: n })
    run.touchBucket(b)
  }
  return allocations
}

function findBucket(state: AccountState, id: string): BucketState | undefined {
  for (const b of state.buckets) if (b.id === id) return b
  return undefined
}

/**
 * Resolves a hold's allocations: spends the first `spend` credits in burn order, frees the
 * rest. Freed parts of buckets that already expired leave the balance at `at`.
 */
function settleAllocations(run: Run, hold: HoldState, spend: number, at: number): void {
  let left = spend
  for (const a of hold.allocations) {
    const b = findBucket(run.state, a.bucketId)
    if (!b) continue // cannot happen while the hold is pending: held credits stay in their bucket
    const s = Math.min(a.amount, left)
    left -= s
    b.held -= a.amount
    b.remaining -= s
    run.touchBucket(b)
  }
  for (const a of hold.allocations) {
    const b = findBucket(run.state, a.bucketId)
    if (b?.expired) expireFree(run, b, at, 'bucket_expiry')
  }
  // A resolved hold needs no allocations; stores that keep resolved holds keep less.
  hold.allocations = NONE
}

/** Removes a bucket's free (unheld) remainder with an `expire` entry. */
function expireFree(run: Run, b: BucketState, at: number, reason: string): void {
  const amount = b.remaining - b.held
  if (amount <= 0) return
  b.remaining -= amount
  run.touchBucket(b)
  const e = run.entry('expire', -amount, 0, 0, at)
  e.grantId = b.id
  e.reason = reason
  run.event({ type: 'expired', account: run.account, kind: 'bucket', id: b.id, amount, at })
}

// ---------------------------------------------------------------- lazy housekeeping

/**
 * Brings the account up to `now`, in time order: cycle periods that started, pending holds
 * past their TTL (released), buckets past their expiry (free remainder leaves).
 */
function housekeep(run: Run): void {
  const { state, ctx } = run
  const now = ctx.now
  const cycle = state.record.cycle
  for (;;) {
    let t = Number.POSITIVE_INFINITY
    let kind = 0 // 1 cycle, 2 hold, 3 bucket (this order at equal times)
    let hold: HoldState | undefined
    let bucket: BucketState | undefined
    const next = nextCycleAt(state.record)
    if (isDue(next, now)) {
      t = next!
      kind = 1
    }
    for (const h of state.holds) {
      if (isHoldDue(h, now) && h.expiresAt < t) {
        t = h.expiresAt
        kind = 2
        hold = h
      }
    }
    for (const b of state.buckets) {
      if (isBucketDue(b, now) && b.expiresAt! < t) {
        t = b.expiresAt!
        kind = 3
        bucket = b
      }
    }
    if (kind === 0) break
    if (kind === 1) advanceCycle(run, cycle!, t)
    else if (kind === 2) {
      const h = hold!
      h.status = 'expired'
      h.resolvedAt = t
      run.touchHold(h)
      const e = run.entry('release', 0, -h.amount, 0, t)
      e.holdId = h.id
      e.reason = 'hold_ttl'
      run.event({
        type: 'expired',
        account: run.account,
        kind: 'hold',
        id: h.id,
        amount: h.amount,
        at: t,
      })
      settleAllocations(run, h, 0, t)
    } else {
      const b = bucket!
      b.expired = true
      run.touchBucket(b)
      expireFree(run, b, t, 'bucket_expiry')
    }
  }
}

/** Materialises the period starting at `start`: ends the last one (with rollover), refills. */
function advanceCycle(run: Run, cycle: CycleState, start: number): void {
  const prev = cycle.bucketId === null ? undefined : findBucket(run.state, cycle.bucketId)
  let leftover = 0
  if (prev && !prev.expired) {
    leftover = prev.remaining - prev.held
    prev.expired = true
    run.touchBucket(prev)
    expireFree(run, prev, start, 'cycle_end')
  }
  const carry = cycle.rolloverMax === null ? 0 : Math.min(leftover, cycle.rolloverMax)
  cycle.period += 1
  const end = periodStart(cycle.anchor, cycle.every, cycle.period + 1)
  const granted = credit(
    run,
    cycle.amount + carry,
    { expiresAt: end, priority: cycle.priority, category: cycle.category, cycleId: cycle.id },
    'cycle_grant',
    start,
  )
  granted.entry.cycleId = cycle.id
  if (carry > 0) granted.entry.metadata = { rollover: carry }
  cycle.bucketId = granted.id
  run.touchRecord()
}

function cycleData(account: string, c: CycleState): Record<string, unknown> {
  return {
    id: c.id,
    account,
    amount: c.amount,
    every: c.every,
    rollover: c.rolloverMax === null ? null : { max: c.rolloverMax },
    anchor: c.anchor,
    periodStart: periodStart(c.anchor, c.every, c.period),
    periodEnd: periodStart(c.anchor, c.every, c.period + 1),
    active: c.active,
  }
}

// ---------------------------------------------------------------- balance and alerts

function threshold(rec: AccountRecord, ctx: EngineContext): number | null {
  return rec.lowBalanceThreshold ?? ctx.config.lowBalanceThreshold
}

/** Builds the balance and fires low / depleted / recovered once per crossing. */
function finish(run: Run): void {
  const { state, ctx } = run
  const rec = state.record
  // Spent buckets leave the live list; they were reported in touchedBuckets already.
  let total = 0
  let held = 0
  let write = 0
  const buckets: BalanceBucket[] = []
  for (const b of state.buckets) {
    if (b.remaining === 0) continue
    state.buckets[write++] = b
    total += b.remaining
    held += b.held
    buckets.push({
      id: b.id,
      remaining: b.remaining,
      held: b.held,
      expiresAt: b.expiresAt,
      priority: b.priority,
      category: b.category,
    })
  }
  // Setting length is a slow runtime call; only shrink when a bucket was spent.
  if (write !== state.buckets.length) state.buckets.length = write
  const available = total - held
  const limit = threshold(rec, ctx)
  const low = limit !== null && available <= limit
  const level: AlertLevel = available === 0 ? 2 : low ? 1 : 0
  const prev = rec.alertLevel
  if (prev !== level) {
    rec.alertLevel = level
    if (prev === null) {
      // First evaluation: no crossing. Persisted with the record if anything else changed.
      run.recordChanged = true
    } else {
      run.touchRecord()
      const at = ctx.now
      const account = rec.account
      if (level > prev) {
        if (prev === 0 && limit !== null) run.event({ type: 'low', account, available, at })
        if (level === 2) run.event({ type: 'depleted', account, available, at })
      } else if (level === 0) {
        run.event({ type: 'recovered', account, available, at })
      }
    }
  }
  run.balance = {
    account: rec.account,
    total,
    held,
    available,
    debt: rec.debt,
    low,
    buckets,
    asOf: ctx.now,
  }
}

// ---------------------------------------------------------------- operations

function findHold(run: Run, id: string): HoldState | TollgateError {
  let hold: HoldState | undefined
  for (const h of run.state.holds) {
    if (h.id === id) {
      hold = h
      break
    }
  }
  if (!hold) return new NotFoundError('hold', id)
  if (hold.status === 'pending') return hold
  if (hold.status === 'expired') return new HoldExpiredError(id, hold.expiresAt)
  return new HoldResolvedError(id, hold.status)
}

function holdData(h: HoldState): Record<string, unknown> {
  return {
    id: h.id,
    account: h.account,
    amount: h.amount,
    expiresAt: h.expiresAt,
    createdAt: h.createdAt,
    allocations: own(h.allocations),
    metadata: h.metadata,
  }
}

/** A stored entry as callers see it: the fields an entry does not use are left out. */
export function toLedgerEntry(e: EntryDraft): LedgerEntry {
  const out: LedgerEntry = {
    id: e.id,
    account: e.account,
    type: e.type,
    delta: e.delta,
    heldDelta: e.heldDelta,
    debtDelta: e.debtDelta,
    balanceAfter: e.balanceAfter,
    metadata: e.metadata,
    at: e.at,
  }
  if (e.holdId !== undefined) out.holdId = e.holdId
  if (e.grantId !== undefined) out.grantId = e.grantId
  if (e.redemptionId !== undefined) out.redemptionId = e.redemptionId
  if (e.cycleId !== undefined) out.cycleId = e.cycleId
  if (e.idempotencyKey !== undefined) out.idempotencyKey = e.idempotencyKey
  if (e.reason !== undefined) out.reason = e.reason
  return out
}

/** Runs the operation proper. Returns its result, or an error after changing nothing. */
/** Credits coming in may not take the balance past 2^53 − 1, where sums stop being exact. */
function tooLarge(r: Run, amount: number, field: string): TollgateError | null {
  return r.net + r.state.record.debt + amount > Number.MAX_SAFE_INTEGER
    ? new InvalidInputError(field, 'would take the balance past 2^53 − 1')
    : null
}

function run(r: Run, op: Operation): Record<string, unknown> | TollgateError {
  const { state, ctx } = r
  const now = ctx.now
  const rec = state.record
  switch (op.type) {
    case 'grant': {
      const tooMuch = tooLarge(r, op.amount, 'amount')
      if (tooMuch) return tooMuch
      const expiresAt = op.validityDays === null ? op.expiresAt : now + op.validityDays * DAY_MS
      const g = credit(
        r,
        op.amount,
        { expiresAt, priority: op.priority, category: op.category, cycleId: null },
        'grant',
        now,
      )
      fromOp(g.entry, op)
      return {
        id: g.id,
        account: rec.account,
        amount: op.amount,
        repaidDebt: g.repaid,
        expiresAt,
        priority: op.priority,
        category: op.category,
        metadata: op.metadata,
        createdAt: now,
      }
    }
    case 'debit': {
      const available = r.available()
      if (op.amount > available)
        return new InsufficientCreditsError(rec.account, op.amount, available)
      const allocations = take(r, op.amount, false)
      fromOp(r.entry('debit', -op.amount, 0, 0, now), op)
      return { account: rec.account, amount: op.amount, allocations: own(allocations) }
    }
    case 'adjust': {
      if (op.delta >= 0) {
        const tooMuch = tooLarge(r, op.delta, 'delta')
        if (tooMuch) return tooMuch
        const g = credit(
          r,
          op.delta,
          { expiresAt: null, priority: 50, category: 'paid', cycleId: null },
          'adjust',
          now,
        )
        fromOp(g.entry, op).reason = op.reason
        return { account: rec.account, amount: op.delta, allocations: [], grantId: g.id }
      }
      const amount = -op.delta
      const available = r.available()
      if (amount > available) return new InsufficientCreditsError(rec.account, amount, available)
      const allocations = take(r, amount, false)
      fromOp(r.entry('adjust', op.delta, 0, 0, now), op).reason = op.reason
      return { account: rec.account, amount: op.delta, allocations: own(allocations) }
    }
    case 'reserve': {
      const available = r.available()
      if (op.amount > available)
        return new InsufficientCreditsError(rec.account, op.amount, available)
      const allocations = take(r, op.amount, true)
      const hold: HoldState = {
        id: ctx.newId('hld', now),
        account: rec.account,
        amount: op.amount,
        expiresAt: now + op.ttlMs,
        createdAt: now,
        status: 'pending',
        allocations,
        metadata: op.metadata,
        resolvedAt: null,
      }
      state.holds.push(hold)
      r.touchHold(hold)
      fromOp(r.entry('hold', 0, op.amount, 0, now), op).holdId = hold.id
      return holdData(hold)
    }
    case 'commit': {
      const hold = findHold(r, op.holdId)
      if (hold instanceof TollgateError) return hold
      // Available before the allocations settle is available after: above the hold, the whole
      // hold is spent, so settling frees nothing.
      const s = settleHold(hold, op.actual, op.overage ?? ctx.config.overage, {
        available: r.available(),
        overdraft: overdraftRoom(rec, ctx.config),
      })
      if (s instanceof TollgateError) return s
      settleAllocations(r, hold, s.fromHold, now)
      // Spent directly from the balance: it is part of the commit entry, not a debit.
      if (s.fromAvailable > 0) take(r, s.fromAvailable, false)
      if (s.debt > 0) {
        rec.debt += s.debt
        r.touchRecord()
      }
      const { charged, shortfall, freed, debt: debtAdded } = s
      hold.status = 'committed'
      hold.resolvedAt = now
      r.touchHold(hold)
      // The entry is written after the allocations: expiry of freed parts comes first.
      const e = fromOp(r.entry('commit', -charged, -hold.amount, debtAdded, now), op)
      e.holdId = hold.id
      if (shortfall > 0) e.reason = 'shortfall'
      r.event({
        type: 'committed',
        account: rec.account,
        holdId: hold.id,
        charged,
        shortfall,
        at: now,
      })
      return { holdId: hold.id, account: rec.account, charged, shortfall, debt: debtAdded, freed }
    }
    case 'release': {
      const hold = findHold(r, op.holdId)
      if (hold instanceof TollgateError) return hold
      hold.status = 'released'
      hold.resolvedAt = now
      r.touchHold(hold)
      fromOp(r.entry('release', 0, -hold.amount, 0, now), op).holdId = hold.id
      settleAllocations(r, hold, 0, now)
      r.event({
        type: 'released',
        account: rec.account,
        holdId: hold.id,
        freed: hold.amount,
        at: now,
      })
      return { holdId: hold.id, account: rec.account, freed: hold.amount }
    }
    case 'extend': {
      const hold = findHold(r, op.holdId)
      if (hold instanceof TollgateError) return hold
      hold.expiresAt = now + op.ttlMs
      r.touchHold(hold)
      return holdData(hold)
    }
    case 'increase':
      return increase(r, op)
    case 'balance':
      // The account's settings and the ones in effect, as the store's config made them.
      return {
        lowBalanceThreshold: rec.lowBalanceThreshold,
        overdraftLimit: rec.overdraftLimit,
        effective: {
          lowBalanceThreshold: threshold(rec, ctx),
          overdraftLimit: rec.overdraftLimit ?? ctx.config.overdraftLimit,
        },
      }
    case 'configure': {
      if (op.lowBalanceThreshold !== undefined) rec.lowBalanceThreshold = op.lowBalanceThreshold
      if (op.overdraftLimit !== undefined) rec.overdraftLimit = op.overdraftLimit
      r.touchRecord()
      return { lowBalanceThreshold: rec.lowBalanceThreshold, overdraftLimit: rec.overdraftLimit }
    }
    case 'startCycle': {
      const tooMuch = tooLarge(r, op.amount, 'amount')
      if (tooMuch) return tooMuch
      const replaced = rec.cycle?.active ? rec.cycle.id : null
      const cycle: CycleState = {
        id: ctx.newId('cyc', now),
        amount: op.amount,
        every: op.every,
        rolloverMax: op.rolloverMax,
        priority: op.priority,
        category: op.category,
        anchor: now,
        period: 0,
        active: true,
        bucketId: null,
      }
      rec.cycle = cycle
      r.touchRecord()
      const g = credit(
        r,
        op.amount,
        {
          expiresAt: periodStart(now, op.every, 1),
          priority: op.priority,
          category: op.category,
          cycleId: cycle.id,
        },
        'cycle_grant',
        now,
      )
      fromOp(g.entry, op).cycleId = cycle.id
      cycle.bucketId = g.id
      return { cycle: cycleData(rec.account, cycle), replaced }
    }
    case 'stopCycle': {
      const cycle = rec.cycle
      if (!cycle?.active) return new NotFoundError('cycle', rec.account)
      cycle.active = false
      r.touchRecord()
      return { cycle: cycleData(rec.account, cycle), replaced: null }
    }
    case 'redeem':
      return redeem(r, op.codeHash)
  }
}

/**
 * Grows a pending hold from free credits in burn order. The new parts join the hold's
 * allocations, which stay in burn order, so a commit spends the grown hold exactly as it would
 * have spent a hold reserved at that size. Growing by nothing answers without an entry.
 */
function increase(r: Run, op: IncreaseOp): Record<string, unknown> | TollgateError {
  const hold = findHold(r, op.holdId)
  if (hold instanceof TollgateError) return hold
  const rec = r.state.record
  const available = r.available()
  const added = growth(op.amount, available, op.partial)
  if (added === null) return new InsufficientCreditsError(rec.account, op.amount, available)
  if (added > 0) {
    const parts = take(r, added, true)
    // Copies: the old list may be in a result the caller still holds.
    const allocations = hold.allocations.map((a) => ({ bucketId: a.bucketId, amount: a.amount }))
    for (const p of parts) {
      const same = allocations.find((a) => a.bucketId === p.bucketId)
      if (same) same.amount += p.amount
      else allocations.push({ bucketId: p.bucketId, amount: p.amount })
    }
    // Held buckets are live, so each has a place in the burn order.
    const order = new Map(r.state.buckets.map((b, i) => [b.id, i]))
    allocations.sort((a, b) => (order.get(a.bucketId) ?? 0) - (order.get(b.bucketId) ?? 0))
    hold.allocations = allocations
    hold.amount += added
    r.touchHold(hold)
    fromOp(r.entry('hold', 0, added, 0, r.ctx.now), op).holdId = hold.id
  }
  return {
    holdId: hold.id,
    account: rec.account,
    amount: hold.amount,
    added,
    expiresAt: hold.expiresAt,
  }
}

function redeem(r: Run, codeHash: string): Record<string, unknown> | TollgateError {
  const { ctx } = r
  const rec = r.state.record
  const now = ctx.now
  const { redeemMaxFailures: max, redeemWindowMs: windowMs } = ctx.config
  const inWindow = now - rec.redeemWindowStart < windowMs
  if (inWindow && rec.redeemFailures >= max) {
    return new RateLimitedError(rec.redeemWindowStart + windowMs - now)
  }
  const lookup = ctx.code
  const code = lookup?.code ?? null
  let failure: TollgateError | null = null
  if (!code) failure = new InvalidInputError('code', 'unknown code')
  else if (code.codeExpiresAt !== null && code.codeExpiresAt <= now)
    failure = new CodeUnavailableError('expired')
  else if (lookup?.redeemedByAccount) failure = new CodeUnavailableError('already_redeemed')
  else if (code.redemptions >= code.maxRedemptions) failure = new CodeUnavailableError('exhausted')
  if (!failure && code) failure = tooLarge(r, code.credits, 'code')
  if (failure || !code) {
    if (inWindow) rec.redeemFailures += 1
    else {
      rec.redeemWindowStart = now
      rec.redeemFailures = 1
    }
    r.touchRecord()
    return failure ?? new InvalidInputError('code', 'unknown code')
  }
  code.redemptions += 1
  const redemptionId = ctx.newId('rdm', now)
  const expiresAt = code.validityDays === null ? null : now + code.validityDays * DAY_MS
  const g = credit(
    r,
    code.credits,
    { expiresAt, priority: code.priority, category: code.category, cycleId: null },
    'redeem',
    now,
  )
  g.entry.redemptionId = redemptionId
  r.redemption = { codeHash, redemptionId }
  r.changed = true
  return {
    redemptionId,
    account: rec.account,
    creditsGranted: code.credits,
    expiresAt,
    grantId: g.id,
  }
}

/**
 * Applies one operation to one account's state at `ctx.now`.
 *
 * Order: idempotency (a replay or conflict changes nothing) → lazy housekeeping → the
 * operation (all or nothing) → balance and alert crossings → the idempotency record.
 */
export function applyOperation(state: AccountState, op: Operation, ctx: EngineContext): Effects {
  const r = new Run(state, ctx)
  const fx = r
  const key = op.idempotencyKey
  if (key !== undefined) {
    const saved = ctx.idempotency
    const decision = decideKey(op, state.record.account, saved)
    if (decision === 'replay') {
      // A copy: the caller may mutate what it gets, the record must stay as it was.
      const result = structuredClone(saved!.result) as Record<string, unknown> & {
        balance: Balance
      }
      fx.replayed = true
      fx.result = result
      fx.balance = result.balance
      return fx
    }
    if (decision === 'conflict') {
      fx.error = new IdempotencyConflictError(key)
      finish(r)
      return fx
    }
  }
  ensureBurnOrder(state.buckets)
  housekeep(r)
  const out = run(r, op)
  if (out instanceof Error) fx.error = out
  else fx.result = out
  finish(r)
  if (key !== undefined && fx.error === null && fx.result !== null) {
    fx.saveIdempotency = {
      key,
      account: state.record.account,
      fingerprint: fingerprintOf(op),
      // Not a deep copy: it shares objects with `fx.result` (see `Effects.saveIdempotency`).
      // A deep copy per keyed operation was the engine's largest cost under httpStore, whose
      // every write carries a transport key, and a SQL store writes the record as JSON anyway.
      result: { ...fx.result, balance: fx.balance },
      createdAt: ctx.now,
    }
    r.changed = true
  }
  return fx
}
