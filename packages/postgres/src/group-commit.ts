/**
 * Group commit: concurrent `execute` calls are queued and leave in batches, each batch one
 * transaction. No wait is added when the store is idle: the queue is drained on the next
 * microtask (so calls made in the same tick share a batch) and a batch leaves as soon as a slot
 * is free. Operations that arrive while every slot is busy form the next batches.
 *
 * An account already in a flying batch waits for a later one, so the process never queues on
 * its own row locks. The queue keeps arrival order per account.
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
  /** Batches that failed; each of their operations was rejected. */
  failedBatches: number
  /** Operations rejected because their batch failed. */
  failedOperations: number
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
    failedBatches: 0,
    failedOperations: 0,
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
}

/** Runs a batch; resolves or rejects every item itself and never rejects. */
export type BatchRunner = (items: BatchItem[]) => Promise<void>

export class GroupCommit {
  readonly #o: GroupCommitOptions
  readonly #run: BatchRunner
  #queue: BatchItem[] = []
  /** When each queued item arrived (performance.now()), for maxWaitMs. */
  #arrived: number[] = []
  /** Accounts (`tenant\0account`) in flying batches. */
  readonly #busy = new Set<string>()
  #inFlight = 0
  #peak = 0
  #scheduled = false
  #timer: NodeJS.Timeout | null = null
  #drained: (() => void)[] = []

  constructor(options: GroupCommitOptions, run: BatchRunner) {
    this.#o = options
    this.#run = run
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

  submit(item: BatchItem): void {
    if (!this.#o.enabled) {
      this.#launch([item], [])
      return
    }
    this.#queue.push(item)
    if (this.#o.maxWaitMs > 0) this.#arrived.push(performance.now())
    if (!this.#scheduled) {
      this.#scheduled = true
      queueMicrotask(this.#tick)
    }
  }

  /** Resolves once nothing is queued or in flight. */
  drain(): Promise<void> {
    if (this.#inFlight === 0 && this.#queue.length === 0) return Promise.resolve()
    return new Promise((resolve) => this.#drained.push(resolve))
  }

  readonly #tick = (): void => {
    this.#scheduled = false
    this.#pump()
  }

  #pump(): void {
    const o = this.#o
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
      if (batch.length === 0) return
      this.#launch(batch, accounts)
    }
  }

  /** Takes up to maxBatch items whose account is not in flight, keeping the rest in order. */
  #take(accounts: string[]): BatchItem[] {
    const max = this.#o.maxBatch
    const queue = this.#queue
    const arrived = this.#arrived
    const batch: BatchItem[] = []
    const mine = new Set<string>()
    const rest: BatchItem[] = []
    const restArrived: number[] = []
    for (let i = 0; i < queue.length; i++) {
      const item = queue[i]!
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

  #launch(batch: BatchItem[], accounts: string[]): void {
    if (++this.#inFlight > this.#peak) this.#peak = this.#inFlight
    for (const key of accounts) this.#busy.add(key)
    const done = () => {
      this.#inFlight--
      for (const key of accounts) this.#busy.delete(key)
      this.#pump()
      if (this.#inFlight === 0 && this.#queue.length === 0 && this.#drained.length > 0) {
        const waiting = this.#drained
        this.#drained = []
        for (const resolve of waiting) resolve()
      }
    }
    this.#run(batch).then(done, done)
  }
}
