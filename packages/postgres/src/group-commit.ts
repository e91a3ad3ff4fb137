/**
 * Group commit: concurrent `execute` calls are queued and leave in batches, each batch one
 * transaction. No wait is added when the store is idle: the queue is drained on the next
 * microtask (so calls made in the same tick share a batch) and a batch leaves as soon as a slot
 * is free. Operations that arrive while every slot is busy form the next batches.
 *
 * An account already in a flying batch waits for a later one, so the process never queues on
 * its own row locks. The queue keeps arrival order per account.
 *
 * Shared batches wait for no row lock (see batch.ts): operations on an account that another
 * transaction holds come back from their batch and wait for the lock in a **lane**, a
 * transaction per account, so a row locked elsewhere for a minute costs a lane, not a batch
 * slot. Lanes are few (`maxLanes`); their accounts stay busy until they finish.
 *
 * Every operation has a deadline: one that passes while the operation is queued fails it there
 * (`expire`), and the queue holds at most `maxQueue` operations.
 */
import type { BatchItem } from './batch.js'

/** Counters and the batch-size histogram of a store. */
export interface StoreStats {
  /** Transactions that committed a batch. */
  batches: number
  /** Operations in committed batches. */
  operations: number
  /** Batches run again after losing a race (unique violation, deadlock). */
  retries: number
  /** Batches split in two to find the operation the database refused. */
  splits: number
  /** Batches that failed; each of their operations was rejected. */
  failedBatches: number
  /** Operations rejected because their batch failed, or failed alone. */
  failedOperations: number
  /** Operations failed alone (the database refused them), while the rest of their batch ran. */
  isolated: number
  /** Operations whose deadline passed before they could run (or commit): none was applied. */
  expired: number
  /** Operations refused at once because the queue was full. */
  shed: number
  /** Operations that waited for a row lock held elsewhere, in a lane. */
  contended: number
  /** Size of the largest committed batch. */
  largestBatch: number
  /**
   * Committed batches by size, in power-of-two ranges: `'1'`, `'2-3'`, `'4-7'`, … Only ranges
   * that occurred are present.
   */
  batchSizes: Record<string, number>
  /** Batches running now. */
  inFlight: number
  /** Most batches that were in flight at once. */
  peakInFlight: number
  /** Operations waiting for a batch now. */
  queued: number
}

/** A fresh stats object. */
export function emptyStats(): StoreStats {
  return {
    batches: 0,
    operations: 0,
    retries: 0,
    splits: 0,
    failedBatches: 0,
    failedOperations: 0,
    isolated: 0,
    expired: 0,
    shed: 0,
    contended: 0,
    largestBatch: 0,
    batchSizes: {},
    inFlight: 0,
    peakInFlight: 0,
    queued: 0,
  }
}

/** The histogram range of a batch size: `'1'`, `'2-3'`, `'4-7'`, … */
export function sizeRange(n: number): string {
  const lo = 2 ** (31 - Math.clz32(n))
  const hi = lo * 2 - 1
  return lo === 1 ? '1' : `${lo}-${hi}`
}

export interface GroupCommitOptions {
  /** false: every operation runs at once in a transaction of its own (the baseline). */
  enabled: boolean
  maxBatch: number
  maxWaitMs: number
  maxInFlight: number
  /** Most operations queued; {@link GroupCommit.submit} refuses more. */
  maxQueue: number
  /** Most lanes (transactions waiting for a row lock held elsewhere) at once. */
  maxLanes: number
}

/**
 * Runs a batch; resolves or rejects every item itself and never rejects, except the items it
 * returns: those did not run because their account's row is locked elsewhere (each with its
 * `accountKey` set), and go to a lane. `wait`: wait for row locks (lanes and the baseline)
 * rather than skip locked rows (shared batches).
 */
export type BatchRunner = (items: BatchItem[], wait: boolean) => Promise<BatchItem[]>

/** Operations of one account waiting for its row lock. */
interface Lane {
  key: string
  items: BatchItem[]
}

export class GroupCommit {
  readonly #o: GroupCommitOptions
  readonly #run: BatchRunner
  readonly #expire: (item: BatchItem) => void
  #queue: BatchItem[] = []
  /** When each queued item arrived (performance.now()), for maxWaitMs. */
  #arrived: number[] = []
  /** Accounts (`tenant\0account`) in flying batches and lanes, with how many hold each. */
  readonly #busy = new Map<string, number>()
  #inFlight = 0
  #peak = 0
  #lanes: Lane[] = []
  #lanesInFlight = 0
  #scheduled = false
  #timer: NodeJS.Timeout | null = null
  /** Fails queued operations whose deadline passed; armed for the earliest one. */
  #expiryTimer: NodeJS.Timeout | null = null
  #expiryAt = Number.POSITIVE_INFINITY
  #drained: (() => void)[] = []

  constructor(options: GroupCommitOptions, run: BatchRunner, expire: (item: BatchItem) => void) {
    this.#o = options
    this.#run = run
    this.#expire = expire
  }

  get inFlight(): number {
    return this.#inFlight
  }

  /** Most batches in flight at once since the last {@link resetPeak}. */
  get peakInFlight(): number {
    return this.#peak
  }

  resetPeak(): void {
    this.#peak = this.#inFlight
  }

  get queued(): number {
    return this.#queue.length
  }

  /** Lanes running or waiting to run. */
  get lanes(): number {
    return this.#lanesInFlight + this.#lanes.length
  }

  /** Queues the item; false (and the item untouched) when the queue is full. */
  submit(item: BatchItem): boolean {
    if (!this.#o.enabled) {
      this.#launch([item], [], true)
      return true
    }
    if (this.#queue.length >= this.#o.maxQueue) return false
    this.#queue.push(item)
    if (this.#o.maxWaitMs > 0) this.#arrived.push(performance.now())
    if (item.deadline < this.#expiryAt) this.#armExpiry(item.deadline)
    if (!this.#scheduled) {
      this.#scheduled = true
      queueMicrotask(this.#tick)
    }
    return true
  }

  /** Resolves once nothing is queued or in flight. */
  drain(): Promise<void> {
    if (this.#idle()) return Promise.resolve()
    return new Promise((resolve) => this.#drained.push(resolve))
  }

  #idle(): boolean {
    return (
      this.#inFlight === 0 &&
      this.#queue.length === 0 &&
      this.#lanesInFlight === 0 &&
      this.#lanes.length === 0
    )
  }

  readonly #tick = (): void => {
    this.#scheduled = false
    this.#pump()
  }

  #pump(): void {
    const o = this.#o
    this.#pumpLanes()
    while (this.#inFlight < o.maxInFlight && this.#queue.length > 0) {
      if (o.maxWaitMs > 0 && this.#queue.length < o.maxBatch) {
        // A batch that is not full waits for company, up to maxWaitMs after its first arrival.
        const waited = performance.now() - this.#arrived[0]!
        if (waited < o.maxWaitMs) {
          // Not unref()ed: queued operations wait on it (PGlite holds no handle of its own).
          this.#timer ??= setTimeout(() => {
            this.#timer = null
            this.#pump()
          }, o.maxWaitMs - waited)
          return
        }
      }
      const accounts: string[] = []
      const batch = this.#take(accounts)
      // Everything queued waits for accounts in flight; a finishing batch pumps again.
      if (batch.length === 0) break
      this.#launch(batch, accounts, false)
    }
    this.#rearmExpiry()
  }

  #pumpLanes(): void {
    while (this.#lanesInFlight < this.#o.maxLanes && this.#lanes.length > 0) {
      const lane = this.#lanes.shift()!
      this.#lanesInFlight++
      const done = () => {
        this.#lanesInFlight--
        this.#release([lane.key])
        this.#pump()
        this.#checkDrained()
      }
      this.#run(lane.items, true).then(done, done)
    }
  }

  /**
   * Takes up to maxBatch items whose account is not busy, keeping the rest in order. Items
   * whose deadline passed are failed here, not run.
   */
  #take(accounts: string[]): BatchItem[] {
    const max = this.#o.maxBatch
    const queue = this.#queue
    const arrived = this.#arrived
    const now = performance.now()
    const batch: BatchItem[] = []
    const mine = new Set<string>()
    const rest: BatchItem[] = []
    const restArrived: number[] = []
    for (let i = 0; i < queue.length; i++) {
      const item = queue[i]!
      if (item.deadline <= now) {
        this.#expire(item)
        continue
      }
      const key = item.accountKey
      const free = key === null || mine.has(key) || !this.#busy.has(key)
      if (batch.length < max && free) {
        batch.push(item)
        if (key !== null && !mine.has(key)) {
          mine.add(key)
          accounts.push(key)
        }
      } else {
        rest.push(item)
        if (arrived.length > 0) restArrived.push(arrived[i]!)
      }
    }
    this.#queue = rest
    this.#arrived = restArrived
    return batch
  }

  #hold(keys: readonly string[]): void {
    for (const key of keys) this.#busy.set(key, (this.#busy.get(key) ?? 0) + 1)
  }

  #release(keys: readonly string[]): void {
    for (const key of keys) {
      const n = this.#busy.get(key) ?? 0
      if (n <= 1) this.#busy.delete(key)
      else this.#busy.set(key, n - 1)
    }
  }

  #launch(batch: BatchItem[], accounts: string[], wait: boolean): void {
    if (++this.#inFlight > this.#peak) this.#peak = this.#inFlight
    this.#hold(accounts)
    const done = (contended: BatchItem[] | undefined) => {
      // Contended accounts stay busy, now for their lanes, before the batch lets go of them.
      if (contended !== undefined && contended.length > 0) this.#toLanes(contended)
      this.#inFlight--
      this.#release(accounts)
      this.#pump()
      this.#checkDrained()
    }
    this.#run(batch, wait).then(done, () => done(undefined))
  }

  /** Groups items by account, in arrival order, into lanes. */
  #toLanes(items: BatchItem[]): void {
    const byKey = new Map<string, Lane>()
    for (const item of items) {
      const key = item.accountKey!
      let lane = byKey.get(key)
      if (lane === undefined) {
        lane = { key, items: [] }
        byKey.set(key, lane)
        this.#lanes.push(lane)
        this.#hold([key])
      }
      lane.items.push(item)
    }
  }

  #checkDrained(): void {
    if (this.#drained.length > 0 && this.#idle()) {
      const waiting = this.#drained
      this.#drained = []
      for (const resolve of waiting) resolve()
    }
  }

  #armExpiry(at: number): void {
    if (this.#expiryTimer !== null) clearTimeout(this.#expiryTimer)
    this.#expiryAt = at
    this.#expiryTimer = setTimeout(
      () => {
        this.#expiryTimer = null
        this.#expiryAt = Number.POSITIVE_INFINITY
        this.#expireQueued()
        this.#rearmExpiry()
      },
      Math.max(0, at - performance.now()),
    )
    // Something is always in flight while operations are queued (a batch, a lane or the
    // maxWaitMs timer), and that keeps the process alive.
    this.#expiryTimer.unref()
  }

  /** Arms the expiry timer for the earliest queued deadline, or clears it when none. */
  #rearmExpiry(): void {
    let earliest = Number.POSITIVE_INFINITY
    for (const item of this.#queue) if (item.deadline < earliest) earliest = item.deadline
    for (const lane of this.#lanes) {
      for (const item of lane.items) if (item.deadline < earliest) earliest = item.deadline
    }
    if (earliest === Number.POSITIVE_INFINITY) {
      if (this.#expiryTimer !== null) clearTimeout(this.#expiryTimer)
      this.#expiryTimer = null
      this.#expiryAt = earliest
    } else if (earliest !== this.#expiryAt) {
      this.#armExpiry(earliest)
    }
  }

  /** Fails queued items, and items of lanes not started yet, whose deadline passed. */
  #expireQueued(): void {
    const now = performance.now()
    if (this.#lanes.length > 0) {
      for (const lane of this.#lanes) {
        const live = lane.items.filter((item) => item.deadline > now)
        if (live.length < lane.items.length) {
          for (const item of lane.items) if (item.deadline <= now) this.#expire(item)
          lane.items = live
        }
      }
      const empty = this.#lanes.filter((lane) => lane.items.length === 0)
      if (empty.length > 0) {
        this.#lanes = this.#lanes.filter((lane) => lane.items.length > 0)
        this.#release(empty.map((lane) => lane.key))
        // Their accounts are free again: what waited for them may go.
        queueMicrotask(() => {
          this.#pump()
          this.#checkDrained()
        })
      }
    }
    const queue = this.#queue
    if (!queue.some((item) => item.deadline <= now)) return
    const rest: BatchItem[] = []
    const restArrived: number[] = []
    for (let i = 0; i < queue.length; i++) {
      const item = queue[i]!
      if (item.deadline <= now) {
        this.#expire(item)
      } else {
        rest.push(item)
        if (this.#arrived.length > 0) restArrived.push(this.#arrived[i]!)
      }
    }
    this.#queue = rest
    this.#arrived = restArrived
  }
}
