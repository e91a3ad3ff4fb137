/**
 * Credit leases (DESIGN §2): a meter holds a block of an account's credits in the process, as
 * one ordinary store hold, and serves reserves from it without a round trip. Local holds are
 * carved out of leases; commits and releases only move counters. Usage settles to the store by
 * committing the lease's hold with what was spent, which frees the rest: when the lease is
 * flushed (every `flushMs`, or when it is idle), when it no longer covers a reserve, and on
 * `close()`. See docs/decisions.md, "Leases".
 *
 * Why it is safe:
 * - the store sees every leased credit as held, so other meters (processes) cannot spend it;
 * - a local hold is backed by free credits of open leases of its account, so the credits spent
 *   locally never exceed the credits leased;
 * - the bound: the credits of an account's local holds that no lease commit has charged yet
 *   (committed ones, and pending ones, which may be committed any moment) total at most `size`,
 *   across all its leases, at every moment. A lease counts until the store has acknowledged its
 *   settling commit. A reserve that would pass the bound waits for a lease to settle, or, when
 *   only requests in flight fill it, goes to the store as an ordinary hold;
 * - a lease's store hold is extended while it is in use; if the process dies, the hold lapses
 *   after its TTL and the store gets back everything but the usage not yet settled: by the
 *   bound, at most `size` credits per account (what the app served but was not charged for).
 */

import { isDue } from '../engine/due.js'
import { growth, settleHold } from '../engine/settle.js'
import {
  HoldExpiredError,
  HoldResolvedError,
  IdempotencyConflictError,
  InsufficientCreditsError,
  InvalidInputError,
  isTollgateError,
  NotFoundError,
  OverageError,
} from '../errors.js'
import { checkInt, type OptionDefaults, readOptions } from '../options-kit.js'
import { randomChars } from '../store/ids.js'
import type {
  Balance,
  CommitResult,
  HoldData,
  IncreaseResult,
  OveragePolicy,
  ReleaseResult,
} from '../types.js'

/** Options of leases: `createMeter({ lease: { size, ttlMs, flushMs } })`. */
export interface LeaseOptions {
  /**
   * Credits one lease takes from an account at most (less when the account has less), and the
   * bound on what a process that dies loses: the local holds of an account not yet settled to
   * the store (committed or pending) never total more than `size` credits per process.
   */
  size: number
  /** TTL of the store hold behind a lease; extended while the lease is in use. @default 30_000 */
  ttlMs?: number
  /**
   * Usage settles to the store at least this often, and a lease unused for this long returns
   * its credits. @default 1_000
   */
  flushMs?: number
}

/** {@link LeaseOptions} checked, with defaults. */
export interface ResolvedLeaseOptions {
  size: number
  ttlMs: number
  flushMs: number
}

const LEASE_DEFAULTS = {
  size: undefined,
  ttlMs: 30_000,
  flushMs: 1_000,
} satisfies OptionDefaults<LeaseOptions>

/** Checks `createMeter({ lease })`. */
export function resolveLeaseOptions(lease: unknown): ResolvedLeaseOptions {
  const l = readOptions(lease as LeaseOptions, {
    owner: 'createMeter',
    field: 'lease',
    defaults: LEASE_DEFAULTS,
    expected: 'must be an object: { size, ttlMs?, flushMs? }',
    // A mistyped key would run leases of another shape than the one asked for: refuse it.
    unknown: 'throw',
  })
  const size = checkInt(l.size, 'lease.size', 1)
  const ttlMs = checkInt(l.ttlMs, 'lease.ttlMs', 2_000, 86_400_000)
  const flushMs = checkInt(l.flushMs, 'lease.flushMs', 10, Math.floor(ttlMs / 2))
  return { size, ttlMs, flushMs }
}

/** What the lease manager needs from the meter: the store path of hold operations. */
export interface LeaseBackend {
  now(): number
  overage: OveragePolicy
  /** A store hold; throws InsufficientCreditsError when the account has less than `amount`. */
  reserve(account: string, amount: number, ttlMs: number): Promise<LeaseHold>
  /** Commits a store hold with `actual`; resolves to the balance after it. */
  commit(holdId: string, actual: number): Promise<Balance>
  extend(holdId: string, ttlMs: number): Promise<{ expiresAt: number; balance: Balance }>
  warn(message: string): void
}

/** A store hold taken as a lease. */
export interface LeaseHold {
  id: string
  amount: number
  expiresAt: number
  balance: Balance
}

/** One lease: a store hold of `amount` credits of one account. */
class Lease {
  used = 0
  pending = 0
  /** No new local holds: waiting for its pending ones, then it settles. */
  closing = false
  /** The settling commit, while it runs. */
  settling: Promise<void> | null = null
  /** Clock reading of the last local hold carved from it. */
  lastUse: number
  /** When it was taken: it settles `flushMs` later if it was used. */
  readonly takenAt: number

  constructor(
    readonly holdId: string,
    readonly amount: number,
    public expiresAt: number,
    now: number,
  ) {
    this.lastUse = now
    this.takenAt = now
  }

  get free(): number {
    return this.amount - this.used - this.pending
  }
}

interface AccountLeases {
  leases: Lease[]
  /** The acquisition in flight: concurrent reserves wait for one store round trip. */
  acquiring: Promise<void> | null
  /** The last balance the store answered for this account (its leases counted as held). */
  storeBalance: Balance | null
}

/** Free credits of the account's open leases (those still taking holds). */
function openFree(acc: AccountLeases): number {
  let free = 0
  for (const l of acc.leases) if (!l.closing) free += l.free
  return free
}

/**
 * Credits of the account's local holds that no lease commit has charged yet: used (committed)
 * or pending, in every lease not yet settled. What the process would lose if it died now.
 */
function unsettled(acc: AccountLeases): number {
  let n = 0
  for (const l of acc.leases) n += l.used + l.pending
  return n
}

interface LocalHold {
  id: string
  account: string
  amount: number
  /** Which leases back it, and how much of each. */
  parts: Array<[Lease, number]>
  expiresAt: number
  createdAt: number
  /** Keyed increases while it is pending (key → input and result), oldest first; bounded. */
  increases: Map<string, { input: string; result: IncreaseResult }> | null
}

interface Resolution {
  kind: 'committed' | 'released'
  idempotencyKey: string | undefined
  result: CommitResult | ReleaseResult
}

/** A reserve served from a lease: the hold's data and the balance it leaves. */
export interface LeasedHold {
  data: HoldData
  balance: Balance
}

/** Resolutions kept for replays and `hold_resolved` answers (per generation). */
const RESOLVED_KEPT = 10_000
/** Store attempts to take a lease when other meters keep changing the account meanwhile. */
const ACQUIRE_ATTEMPTS = 4
/** Keyed increases a local hold remembers for replays (the oldest are forgotten first). */
const INCREASE_KEYS_KEPT = 1_000
/** Settles a reserve waits for when the bound is reached, before it goes to the store. */
const ROOM_ATTEMPTS = 4

/** Every prefix of a local hold id: `lh_` marks a hold that never reached the store. */
export const LOCAL_HOLD_PREFIX = 'lh_'

/** The leases of one meter. */
export class LeaseManager {
  readonly #o: ResolvedLeaseOptions
  readonly #b: LeaseBackend
  readonly #accounts = new Map<string, AccountLeases>()
  readonly #holds = new Map<string, LocalHold>()
  /** Recent resolutions, in two generations: a full one becomes the old one, dropped whole. */
  #resolved = new Map<string, Resolution>()
  #resolvedOld = new Map<string, Resolution>()
  readonly #idPrefix = `${LOCAL_HOLD_PREFIX}${randomChars(8)}_`
  #seq = 0
  /** How long settling commits take, ms (a moving average; 0 until one was measured). */
  #settleMs = 0
  #timer: NodeJS.Timeout | null = null
  #closed = false

  constructor(options: ResolvedLeaseOptions, backend: LeaseBackend) {
    this.#o = options
    this.#b = backend
    // Each lease settles `flushMs` after it was taken, so leases taken at different times
    // settle at different ticks: a quarter of `flushMs` apart at most, never all at once.
    this.#timer = setInterval(
      () => {
        this.flush('tick').catch((err: unknown) =>
          backend.warn(`lease flush failed: ${String(err)}`),
        )
      },
      Math.max(5, Math.floor(options.flushMs / 4)),
    )
    this.#timer.unref()
  }

  /** Whether reserves of `amount` can be served from leases at all. */
  eligible(amount: number): boolean {
    return !this.#closed && amount <= this.#o.size
  }

  /** True for ids of holds served from a lease. */
  owns(holdId: string): boolean {
    return holdId.startsWith(LOCAL_HOLD_PREFIX)
  }

  /**
   * Serves a reserve from open leases at once; undefined when they do not cover it, or when it
   * would put the account's unsettled local holds above `size` (the loss bound).
   */
  reserveNow(account: string, amount: number, ttlMs: number): LeasedHold | undefined {
    const acc = this.#accounts.get(account)
    if (acc === undefined) return undefined
    // One pass for both figures: this is the hot path.
    let free = 0
    let owed = 0
    for (const l of acc.leases) {
      owed += l.used + l.pending
      if (!l.closing) free += l.free
    }
    if (free < amount || owed + amount > this.#o.size) return undefined
    const now = this.#b.now()
    const parts: Array<[Lease, number]> = []
    let left = amount
    for (const l of acc.leases) {
      if (left === 0) break
      if (l.closing) continue
      const take = Math.min(l.free, left)
      if (take === 0) continue
      l.pending += take
      l.lastUse = now
      parts.push([l, take])
      left -= take
      // Used up: it settles as soon as its holds resolve (a lease runs out, it settles), so
      // the account's open leases stay few.
      if (l.free === 0) l.closing = true
    }
    if (parts.length === 0 && acc.leases.length > 0) {
      // A cost-0 hold takes no credits, but it is use: the account's lease is not idle.
      const open = acc.leases.find((l) => !l.closing)
      if (open) open.lastUse = now
    }
    // Running low: take the next lease now, in the background, so that the reserve that
    // finds this one empty does not wait for the store.
    if (free - amount < this.#o.size / 4 && acc.acquiring === null) this.#refill(account, acc)
    // Close to the loss bound at this account's pace: switch leases early (see #switchEarly).
    const room = this.#o.size - owed - amount
    if (room < this.#o.size / 2 && this.#settleMs > 0 && parts.length > 0) {
      const lease = parts[0]![0]
      const elapsed = now - lease.takenAt
      const perMs = elapsed > 0 ? (lease.used + lease.pending) / elapsed : 0
      if (perMs > 0 && room <= perMs * this.#settleMs * 2) this.#switchEarly(account, acc)
    }
    const id = this.#idPrefix + (this.#seq++).toString(36)
    const hold: LocalHold = {
      id,
      account,
      amount,
      parts,
      expiresAt: now + ttlMs,
      createdAt: now,
      increases: null,
    }
    this.#holds.set(id, hold)
    return {
      data: {
        id,
        account,
        amount,
        expiresAt: hold.expiresAt,
        createdAt: now,
        allocations: [],
        metadata: {},
      },
      balance: this.#adjust(account, acc.storeBalance),
    }
  }

  /**
   * Serves a reserve, taking a new lease first when the open ones do not cover it, and settling
   * leases first when serving it would pass the loss bound. Resolves to null when the bound
   * cannot make room for it now (requests in flight fill it, or the store did not take a
   * settlement): the reserve is then the store's, as an ordinary hold.
   */
  async reserve(account: string, amount: number, ttlMs: number): Promise<LeasedHold | null> {
    let acquisitions = 0
    let settles = 0
    for (;;) {
      const now = this.reserveNow(account, amount, ttlMs)
      if (now !== undefined) return now
      if (this.#closed) throw new InvalidInputError('lease', 'the meter is closing')
      const acc = this.#accounts.get(account)
      if (acc === undefined || openFree(acc) < amount) {
        await this.#acquire(account, amount, acquisitions++)
      } else if (settles++ >= ROOM_ATTEMPTS || !(await this.#makeRoom(acc, amount))) {
        return null
      }
    }
  }

  /**
   * Makes room under the bound for a reserve of `amount` by settling leases that hold usage:
   * those already closing first, then open ones, oldest first, until settling them would do.
   * A lease's pending local holds move to an open lease with free credits first, so that one
   * long request does not keep a used-up lease from settling. Resolves true once one of these
   * settles came back (try again); false when settling cannot make the room (local holds in
   * flight fill it) or a settle failed.
   */
  async #makeRoom(acc: AccountLeases, amount: number): Promise<boolean> {
    let inFlight = 0
    for (const l of acc.leases) inFlight += l.pending
    // No lease commit charges a hold still pending: only its resolution frees that room.
    if (inFlight + amount > this.#o.size) return false
    let room = this.#o.size - unsettled(acc)
    const settles: Promise<void>[] = []
    for (const closing of [true, false]) {
      for (const l of acc.leases) {
        if (room >= amount) break
        if (l.closing !== closing) continue
        if (l.settling !== null) {
          settles.push(l.settling)
          room += l.used
          continue
        }
        if (l.used === 0) continue
        l.closing = true
        if (l.pending > 0) this.#moveHolds(acc, l)
        // Holds that found no other lease: it settles once they resolve.
        if (l.pending > 0) continue
        settles.push(this.#settle(acc, l))
        room += l.used
      }
    }
    if (settles.length === 0) return false
    try {
      await Promise.race(settles)
      return true
    } catch {
      return false
    }
  }

  /** Moves the pending local holds of `from` (closing) to open leases with free credits. */
  #moveHolds(acc: AccountLeases, from: Lease): void {
    for (const hold of this.#holds.values()) {
      if (from.pending === 0) return
      for (let i = 0; i < hold.parts.length; i++) {
        const [lease, n] = hold.parts[i]!
        if (lease !== from) continue
        const to = acc.leases.find((l) => !l.closing && l.free >= n)
        if (to === undefined) continue
        from.pending -= n
        to.pending += n
        hold.parts[i] = [to, n]
        if (to.free === 0) to.closing = true
      }
    }
  }

  /**
   * When the account's pace would fill the loss bound within about two settle round trips,
   * the used lease stops taking holds and settles (as soon as its holds resolve) while the
   * next one, taken ahead, serves: its settle round trip then overlaps the rest of the bound
   * instead of starting when the bound is full, where every reserve of the account would wait
   * for it. Only settles sooner than otherwise, so the bound holds as before; an account
   * served slowly (or under a clock that stands still) never switches early.
   */
  #switchEarly(account: string, acc: AccountLeases): void {
    let used: Lease | null = null
    let next: Lease | null = null
    for (const l of acc.leases) {
      if (l.closing || l.settling !== null) continue
      if (l.used > 0 && (used === null || l.used > used.used)) used = l
    }
    if (used === null) return
    for (const l of acc.leases) {
      if (l !== used && !l.closing && l.free > 0 && (next === null || l.free > next.free)) next = l
    }
    if (next === null) {
      if (acc.acquiring === null) this.#refill(account, acc)
      return
    }
    used.closing = true
    if (used.pending > 0) this.#moveHolds(acc, used)
    if (used.pending === 0) {
      this.#settle(acc, used).catch((err: unknown) =>
        this.#b.warn(`lease settle failed: ${String(err)}`),
      )
    }
  }

  #refill(account: string, acc: AccountLeases): void {
    this.#startTaking(account, acc, 0).catch((err: unknown) => {
      // Nothing left to lease is no error here: the reserve that needs it will say so.
      if (!isTollgateError(err, 'insufficient_credits')) {
        this.#b.warn(`lease refill failed: ${String(err)}`)
      }
    })
  }

  /** Starts taking a lease for the account: the one acquisition in flight, others wait on it. */
  #startTaking(account: string, acc: AccountLeases, amount: number): Promise<void> {
    const taking = this.#take(account, acc, amount).finally(() => {
      acc.acquiring = null
    })
    acc.acquiring = taking
    return taking
  }

  /** Takes a new lease covering at least what `amount` lacks; one at a time per account. */
  async #acquire(account: string, amount: number, attempt: number): Promise<void> {
    let acc = this.#accounts.get(account)
    if (acc === undefined) {
      acc = { leases: [], acquiring: null, storeBalance: null }
      this.#accounts.set(account, acc)
    }
    if (acc.acquiring !== null) {
      // Someone is taking a lease for this account: its credits may cover us too.
      await acc.acquiring
      return
    }
    if (attempt >= ACQUIRE_ATTEMPTS) throw this.#insufficient(account, amount, acc)
    await this.#startTaking(account, acc, amount)
  }

  async #take(account: string, acc: AccountLeases, amount: number): Promise<void> {
    const free = openFree(acc)
    const need = amount - free
    let want = Math.max(this.#o.size, need)
    for (let attempt = 0; attempt < ACQUIRE_ATTEMPTS; attempt++) {
      try {
        const h = await this.#b.reserve(account, want, this.#o.ttlMs)
        acc.leases.push(new Lease(h.id, h.amount, h.expiresAt, this.#b.now()))
        acc.storeBalance = h.balance
        return
      } catch (err) {
        if (!isTollgateError(err, 'insufficient_credits')) throw err
        const available = (err as InsufficientCreditsError).available
        if (available < need || available <= 0) {
          // Credits of leases waiting to settle come back when they do: settle what can be.
          if (await this.#settleIdle(acc)) continue
          throw new InsufficientCreditsError(account, amount, available + free)
        }
        // Less than a whole lease is left: take what there is.
        want = available
      }
    }
    throw this.#insufficient(account, amount, acc)
  }

  #insufficient(account: string, amount: number, acc: AccountLeases): InsufficientCreditsError {
    return new InsufficientCreditsError(
      account,
      amount,
      openFree(acc) + Math.max(0, acc.storeBalance?.available ?? 0),
    )
  }

  /** Settles the leases of `acc` that nothing uses now; true when any credits came back. */
  async #settleIdle(acc: AccountLeases): Promise<boolean> {
    const idle = acc.leases.filter((l) => l.pending === 0 && l.settling === null)
    if (idle.length === 0) return false
    for (const l of idle) l.closing = true
    await Promise.all(idle.map((l) => this.#settle(acc, l)))
    return idle.some((l) => l.amount - l.used > 0)
  }

  /** Settles a lease: commits its store hold with what was used, which frees the rest. */
  #settle(acc: AccountLeases, lease: Lease): Promise<void> {
    if (lease.settling !== null) return lease.settling
    const started = this.#b.now()
    lease.settling = this.#b.commit(lease.holdId, lease.used).then(
      (balance) => {
        const ms = this.#b.now() - started
        this.#settleMs = this.#settleMs === 0 ? ms : (this.#settleMs * 3 + ms) / 4
        acc.storeBalance = balance
        this.#drop(acc, lease)
      },
      (err: unknown) => {
        lease.settling = null
        if (isTollgateError(err, 'hold_resolved')) {
          // A settling commit of ours was applied but its answer was lost (the connection
          // dropped): the usage is charged. Nothing else commits or releases a lease's hold.
          this.#drop(acc, lease)
          return
        }
        if (isTollgateError(err, 'hold_expired') || isTollgateError(err, 'not_found')) {
          // The store hold lapsed (the store was out of reach past the lease TTL): its credits
          // went back, and the usage not settled is lost. Bounded by the lease size.
          this.#b.warn(
            `lease ${lease.holdId} lapsed before it settled: ${lease.used} credits used were not charged`,
          )
          this.#drop(acc, lease)
          return
        }
        // Store unavailable: the next flush tries again.
        throw err
      },
    )
    return lease.settling
  }

  #drop(acc: AccountLeases, lease: Lease): void {
    const i = acc.leases.indexOf(lease)
    if (i >= 0) acc.leases.splice(i, 1)
  }

  /**
   * Settles usage and returns idle credits. `tick` (the timer): a lease used and taken
   * `flushMs` ago is replaced by a fresh one and settles once its holds resolve; one unused for
   * `flushMs` settles; leases in use are extended. `now` (`meter.flush()`): every used lease
   * settles once its holds resolve, no replacement taken. `close`: everything settles now,
   * pending local holds dropped.
   */
  async flush(mode: 'tick' | 'now' | 'close'): Promise<void> {
    const all = mode === 'close'
    const now = this.#b.now()
    this.#expireLocalHolds(now)
    const work: Promise<unknown>[] = []
    for (const [account, acc] of this.#accounts) {
      for (const lease of [...acc.leases]) {
        if (all) {
          lease.closing = true
          lease.pending = 0
        } else if (!lease.closing) {
          if (lease.used > 0 && mode === 'now') {
            lease.closing = true
          } else if (lease.used > 0 && now - lease.takenAt >= this.#o.flushMs) {
            // In use: a fresh lease first, so that requests never wait for the store.
            work.push(this.#rotate(account, acc, lease))
            continue
          }
          if (now - lease.lastUse >= this.#o.flushMs) lease.closing = true
        }
        if (lease.closing && lease.pending === 0) {
          work.push(this.#settle(acc, lease))
        } else if (lease.expiresAt - now < this.#o.ttlMs / 2) {
          work.push(
            this.#b.extend(lease.holdId, this.#o.ttlMs).then((r) => {
              lease.expiresAt = r.expiresAt
            }),
          )
        }
      }
      if (acc.leases.length === 0 && acc.acquiring === null) this.#accounts.delete(account)
    }
    const results = await Promise.allSettled(work)
    const failed = results.find((r) => r.status === 'rejected')
    if (failed) throw (failed as PromiseRejectedResult).reason
  }

  /**
   * Replaces a lease in use: takes a fresh one, then settles the old one once its holds
   * resolve. When the store has nothing left to lease, the old one settles anyway (its unused
   * credits come back to whoever needs them).
   */
  async #rotate(account: string, acc: AccountLeases, lease: Lease): Promise<void> {
    const taking = acc.acquiring ?? (this.#closed ? null : this.#startTaking(account, acc, 0))
    try {
      await taking
    } catch (err) {
      if (!isTollgateError(err, 'insufficient_credits')) throw err
    } finally {
      lease.closing = true
      if (lease.pending === 0) await this.#settle(acc, lease)
    }
  }

  /** Local holds past their TTL are released into their leases, as the store would. */
  #expireLocalHolds(now: number): void {
    for (const hold of this.#holds.values()) {
      if (!isDue(hold.expiresAt, now)) continue
      this.#holds.delete(hold.id)
      for (const [lease, n] of hold.parts) lease.pending -= n
      this.#remember(hold.id, {
        kind: 'released',
        idempotencyKey: undefined,
        result: this.#releaseResult(hold, hold.amount),
      })
      this.#settleIfDone(hold)
    }
  }

  #settleIfDone(hold: LocalHold): void {
    const acc = this.#accounts.get(hold.account)
    if (acc === undefined) return
    for (const [lease] of hold.parts) {
      if (lease.closing && lease.pending === 0 && lease.settling === null) {
        this.#settle(acc, lease).catch((err: unknown) =>
          this.#b.warn(`lease settle failed: ${String(err)}`),
        )
      }
    }
  }

  #remember(id: string, r: Resolution): void {
    // Not a FIFO Map with deletes at the front: V8 walks the deleted entries on every
    // `keys().next()`, and that grew to microseconds per commit.
    if (this.#resolved.size >= RESOLVED_KEPT) {
      this.#resolvedOld = this.#resolved
      this.#resolved = new Map()
    }
    this.#resolved.set(id, r)
  }

  /** The hold to settle, or the replay / error a settled or unknown one gets. */
  #open(
    holdId: string,
    idempotencyKey: string | undefined,
    now: number,
  ): LocalHold | CommitResult | ReleaseResult {
    const hold = this.#holds.get(holdId)
    if (hold !== undefined) {
      if (isDue(hold.expiresAt, now)) {
        this.#expireLocalHolds(now)
        throw new HoldExpiredError(holdId, hold.expiresAt)
      }
      return hold
    }
    const done = this.#resolved.get(holdId) ?? this.#resolvedOld.get(holdId)
    if (done === undefined) throw new NotFoundError('hold', holdId)
    if (idempotencyKey !== undefined && done.idempotencyKey === idempotencyKey) {
      return { ...done.result, replayed: true }
    }
    throw new HoldResolvedError(holdId, done.kind)
  }

  /** Commits a local hold: `actual` is spent from its leases; above the hold, from open leases. */
  commit(
    holdId: string,
    actual: number | undefined,
    overage: OveragePolicy | undefined,
    idempotencyKey: string | undefined,
  ): CommitResult {
    const now = this.#b.now()
    const hold = this.#open(holdId, idempotencyKey, now)
    if (!('parts' in hold)) return hold as CommitResult
    // As a store hold's commit, with what the account's open leases can still spend within the
    // loss bound as what is available beyond the hold, and no room for debt (overdraft meters
    // cannot lease): 'overdraft' acts as clamp, and what the bound leaves out is shortfall.
    const acc = this.#accounts.get(hold.account)
    const settled = settleHold(hold, actual, overage ?? this.#b.overage, {
      available: acc === undefined ? 0 : Math.min(openFree(acc), this.#room(acc)),
      overdraft: 0,
    })
    if (settled instanceof OverageError) throw settled
    if (settled.fromAvailable > 0) this.#takeExtra(hold.account, settled.fromAvailable)
    this.#holds.delete(holdId)
    let spend = settled.fromHold
    for (const [lease, n] of hold.parts) {
      lease.pending -= n
      const s = Math.min(spend, n)
      lease.used += s
      spend -= s
    }
    const result: CommitResult = {
      holdId,
      account: hold.account,
      charged: settled.charged,
      shortfall: settled.shortfall,
      debt: settled.debt,
      freed: settled.freed,
      balance: this.#adjust(hold.account, this.#accounts.get(hold.account)?.storeBalance ?? null),
      replayed: false,
    }
    this.#remember(holdId, { kind: 'committed', idempotencyKey, result })
    this.#settleIfDone(hold)
    return result
  }

  /**
   * Spends up to `n` more credits from the account's open leases, within the loss bound (the
   * committing hold is still counted as pending: spending it adds nothing); returns how many.
   */
  #takeExtra(account: string, n: number): number {
    const acc = this.#accounts.get(account)
    if (acc === undefined) return 0
    const want = Math.min(n, this.#room(acc))
    let took = 0
    for (const l of acc.leases) {
      if (took === want) break
      if (l.closing) continue
      const t = Math.min(l.free, want - took)
      l.used += t
      took += t
    }
    return took
  }

  /** Credits the account's leases may still spend before its unsettled usage reaches `size`. */
  #room(acc: AccountLeases): number {
    return Math.max(0, this.#o.size - unsettled(acc))
  }

  /** Releases a local hold back into its leases. */
  release(holdId: string, idempotencyKey: string | undefined): ReleaseResult {
    const now = this.#b.now()
    const hold = this.#open(holdId, idempotencyKey, now)
    if (!('parts' in hold)) return hold as ReleaseResult
    this.#holds.delete(holdId)
    for (const [lease, n] of hold.parts) lease.pending -= n
    const result = this.#releaseResult(hold, hold.amount)
    this.#remember(holdId, { kind: 'released', idempotencyKey, result })
    this.#settleIfDone(hold)
    return result
  }

  #releaseResult(hold: LocalHold, freed: number): ReleaseResult {
    return {
      holdId: hold.id,
      account: hold.account,
      freed,
      balance: this.#adjust(hold.account, this.#accounts.get(hold.account)?.storeBalance ?? null),
      replayed: false,
    }
  }

  /**
   * Grows a local hold from the account's open leases, within the loss bound: what they can
   * still hold is what is available to it (no store round trip; credits the leases do not
   * hold are out of its reach). All or nothing, or with `partial` as much as that allows.
   */
  increase(
    holdId: string,
    n: number,
    partial: boolean,
    idempotencyKey: string | undefined,
  ): IncreaseResult {
    const now = this.#b.now()
    const hold = this.#open(holdId, undefined, now)
    if (!('parts' in hold)) throw new HoldResolvedError(holdId, 'committed')
    const input = `${n}:${partial}`
    if (idempotencyKey !== undefined) {
      const seen = hold.increases?.get(idempotencyKey)
      if (seen !== undefined) {
        if (seen.input !== input) throw new IdempotencyConflictError(idempotencyKey)
        return { ...seen.result, replayed: true }
      }
    }
    const acc = this.#accounts.get(hold.account)
    const available = acc === undefined ? 0 : Math.min(openFree(acc), this.#room(acc))
    const added = growth(n, available, partial)
    if (added === null) throw new InsufficientCreditsError(hold.account, n, available)
    let left = added
    for (const l of acc?.leases ?? []) {
      if (left === 0) break
      if (l.closing) continue
      const take = Math.min(l.free, left)
      if (take === 0) continue
      l.pending += take
      l.lastUse = now
      const part = hold.parts.find(([p]) => p === l)
      if (part) part[1] += take
      else hold.parts.push([l, take])
      left -= take
      if (l.free === 0) l.closing = true
    }
    hold.amount += added
    if (acc !== undefined && openFree(acc) < this.#o.size / 4 && acc.acquiring === null) {
      this.#refill(hold.account, acc)
    }
    const result: IncreaseResult = {
      holdId,
      account: hold.account,
      amount: hold.amount,
      added,
      expiresAt: hold.expiresAt,
      balance: this.#adjust(hold.account, acc?.storeBalance ?? null),
      replayed: false,
    }
    if (idempotencyKey !== undefined) {
      hold.increases ??= new Map()
      if (hold.increases.size >= INCREASE_KEYS_KEPT) {
        hold.increases.delete(hold.increases.keys().next().value as string)
      }
      hold.increases.set(idempotencyKey, { input, result })
    }
    return result
  }

  /** Moves a local hold's expiry; its leases are extended by the flush while it is pending. */
  extend(holdId: string, ttlMs: number): HoldData & { balance: Balance; replayed: boolean } {
    const now = this.#b.now()
    const hold = this.#open(holdId, undefined, now)
    if (!('parts' in hold)) throw new HoldResolvedError(holdId, 'committed')
    hold.expiresAt = now + ttlMs
    return {
      id: hold.id,
      account: hold.account,
      amount: hold.amount,
      expiresAt: hold.expiresAt,
      createdAt: hold.createdAt,
      allocations: [],
      metadata: {},
      balance: this.#adjust(hold.account, this.#accounts.get(hold.account)?.storeBalance ?? null),
      replayed: false,
    }
  }

  /**
   * The account's balance as this meter sees it: the store's, with this meter's leases counted
   * as what they are (credits used but not settled are spent; leased credits not in local
   * holds are available).
   */
  adjust(balance: Balance): Balance {
    return this.#adjust(balance.account, balance)
  }

  #adjust(account: string, balance: Balance | null): Balance {
    const acc = this.#accounts.get(account)
    const base: Balance = balance ?? {
      account,
      total: 0,
      held: 0,
      available: 0,
      debt: 0,
      low: false,
      buckets: [],
      asOf: this.#b.now(),
    }
    if (acc === undefined || acc.leases.length === 0) return base
    let used = 0
    let leased = 0
    let pending = 0
    for (const l of acc.leases) {
      used += l.used
      leased += l.amount
      pending += l.pending
    }
    const total = base.total - used
    const held = base.held - leased + pending
    return { ...base, total, held, available: total - held }
  }

  /** Settles every lease (pending local holds are dropped) and stops the timer. */
  async close(): Promise<void> {
    this.#closed = true
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    await this.flush('close')
  }
}
