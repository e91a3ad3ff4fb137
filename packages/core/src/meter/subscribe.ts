/**
 * Durable event subscription without a server: reads a store's outbox (`Store.events()`) in
 * sequence order, woken by its change feed (`Store.watch()`) and, as a safety net or where the
 * store has no feed, by a poll. At least once and resumable: an event is handed over until its
 * handler returns, and a subscriber that remembers the last `seq` it handled resumes after it.
 */
import { InvalidInputError } from '../errors.js'
import { checkFunction, checkInt, readOptions, warn } from '../options-kit.js'
import type { Store, StoredEvent, WatchSubscription } from '../store/store.js'

/** Options of {@link Meter.subscribe}. */
export interface SubscribeOptions {
  /** Called for each event in `seq` order; the next waits for it. A throw retries the event. */
  onEvent: (event: StoredEvent) => void | Promise<void>
  /**
   * Resume after this store sequence number (the `seq` of the last event handled).
   * @default 0 (from the oldest event the store keeps)
   */
  after?: number
  /** Events read per page (1–1000). @default 100 */
  batchSize?: number
  /**
   * Read at least this often (ms): the only wake-up on a store without `watch()`, a safety net
   * on one with it. @default 1000
   */
  pollMs?: number
  /**
   * Told about a failed read or a handler that threw; the subscription retries after a pause
   * (doubling up to 30 s). @default a process warning
   */
  onError?: (error: unknown) => void
}

/** A running {@link Meter.subscribe}. */
export interface EventSubscription {
  /** The `seq` of the last event handled (where a new subscription would resume). */
  readonly position: number
  /** Stops reading; resolves when the handler in progress (if any) returned. */
  close(): Promise<void>
}

const DEFAULTS = {
  onEvent: undefined as unknown as SubscribeOptions['onEvent'],
  after: 0,
  batchSize: 100,
  pollMs: 1000,
  onError: undefined as SubscribeOptions['onError'],
}
/** Longest pause after failures. */
const MAX_BACKOFF_MS = 30_000
const SUBSCRIBER_ERROR_WARNING = 'TOLLGATE_SUBSCRIBER_ERROR'

/** Starts a subscription to one tenant's durable events of `store`. */
export function subscribe(
  store: Store,
  tenant: string,
  options: SubscribeOptions,
  ready: () => Promise<void>,
): EventSubscription {
  const o = readOptions(options, { owner: 'subscribe', defaults: DEFAULTS })
  const onEvent = checkFunction(o.onEvent, 'onEvent') as SubscribeOptions['onEvent']
  const batchSize = checkInt(o.batchSize, 'batchSize', 1, 1000)
  const pollMs = checkInt(o.pollMs, 'pollMs', 1, 3_600_000)
  const onError =
    o.onError === undefined
      ? (err: unknown) => warn(`Tollgate subscriber: ${String(err)}`, SUBSCRIBER_ERROR_WARNING)
      : (checkFunction(o.onError, 'onError') as (error: unknown) => void)
  if (!store.events) throw new InvalidInputError('store', `${store.kind} store keeps no events`)
  return new Subscription(store, tenant, checkInt(o.after, 'after'), {
    onEvent,
    onError,
    batchSize,
    pollMs,
    ready,
  })
}

class Subscription implements EventSubscription {
  #position: number
  #closed = false
  #wake: (() => void) | null = null
  /** A change arrived while the loop was reading: read again before sleeping. */
  #woken = false
  #watch: WatchSubscription | null = null
  readonly #done: Promise<void>

  constructor(
    readonly store: Store,
    readonly tenant: string,
    after: number,
    readonly o: {
      onEvent: SubscribeOptions['onEvent']
      onError: (error: unknown) => void
      batchSize: number
      pollMs: number
      ready: () => Promise<void>
    },
  ) {
    this.#position = after
    this.#done = this.#run()
  }

  get position(): number {
    return this.#position
  }

  #poke = (): void => {
    this.#woken = true
    const wake = this.#wake
    this.#wake = null
    wake?.()
  }

  async #run(): Promise<void> {
    const { store, tenant, o } = this
    let failures = 0
    try {
      await o.ready()
      if (store.watch && !this.#closed) {
        this.#watch = await store.watch({
          onChanges: (changes) => {
            for (const c of changes) {
              if (c.tenant === tenant) return this.#poke()
            }
          },
          // Changes missed while the feed was down are not replayed: read to catch up.
          onStatus: (up) => {
            if (up) this.#poke()
          },
        })
      }
    } catch (err) {
      // Without a feed the poll still reads; the error is worth telling.
      o.onError(err)
    }
    while (!this.#closed) {
      this.#woken = false
      let full = false
      try {
        const page = await store.events!({ tenant, after: this.#position, limit: o.batchSize })
        for (const event of page) {
          if (this.#closed) break
          await o.onEvent(event)
          this.#position = event.seq
        }
        full = page.length === o.batchSize
        failures = 0
      } catch (err) {
        failures++
        if (!this.#closed) o.onError(err)
      }
      if (this.#closed) break
      if (failures > 0) await this.#sleep(Math.min(o.pollMs * 2 ** (failures - 1), MAX_BACKOFF_MS))
      else if (!full && !this.#woken) await this.#sleep(o.pollMs)
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = null
        resolve()
      }, ms)
      timer.unref()
      this.#wake = () => {
        clearTimeout(timer)
        resolve()
      }
    })
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#poke()
    await this.#done
    await this.#watch?.close()
    this.#watch = null
  }
}
