/**
 * The server's change feed (`GET /v1/store/changes`): one subscription to the store's
 * `watch()`, opened with the first stream and fanned out as server-sent events to every open
 * stream, each filtered to its key's tenant (every tenant for an admin key that names none).
 * Bounded: at most `maxSubscribers` streams, each with at most `maxBufferBytes` unsent (a slower
 * consumer is disconnected, never buffered for), and a heartbeat every `heartbeatMs`.
 */
import type { ServerResponse } from 'node:http'
import { StoreUnavailableError } from '@tollgate/core'
import { SSE_HEARTBEAT, sseEvent } from '@tollgate/core/protocol'
import type { AccountChange, Store, WatchSubscription } from '@tollgate/core/store'
import type { ChangeFeedObserver } from './metrics.js'
import type { ChangeFeedOptions } from './options.js'

interface Subscriber {
  /** Null: every tenant. */
  tenant: string | null
  res: ServerResponse
}

/** The fan-out of one store's change feed to the server's SSE streams. */
export class ChangeFeedHub {
  readonly #store: Store
  readonly #o: Required<ChangeFeedOptions>
  readonly #warn: (details: object, message: string) => void
  readonly #observer: ChangeFeedObserver | undefined
  readonly #subscribers = new Set<Subscriber>()
  #subscription: Promise<WatchSubscription> | null = null
  #heartbeat: NodeJS.Timeout | null = null
  /** The store's feed is live (false from a reported loss until it is back). */
  #up = true
  #reason = ''
  #closed = false
  /** The store's feed was opened (and not lost since: a failed open is retried). */
  #opened = false

  constructor(
    store: Store,
    options: Required<ChangeFeedOptions>,
    warn: (details: object, message: string) => void,
    observer?: ChangeFeedObserver,
  ) {
    this.#store = store
    this.#o = options
    this.#warn = warn
    this.#observer = observer
  }

  /** Open streams. */
  get size(): number {
    return this.#subscribers.size
  }

  /** The store's feed is open (a stream asked for it) and live. */
  get up(): boolean {
    return this.#opened && this.#up && !this.#closed
  }

  /**
   * Opens the store's feed if it is not yet open. Throws `StoreUnavailableError` (503) when the
   * store has no feed, the server is full or closing, or the store's feed cannot be opened.
   */
  async ready(): Promise<void> {
    if (this.#closed) throw new StoreUnavailableError('server is shutting down')
    if (typeof this.#store.watch !== 'function') {
      throw new StoreUnavailableError(`the ${this.#store.kind} store has no change feed`)
    }
    if (this.#subscribers.size >= this.#o.maxSubscribers) {
      throw new StoreUnavailableError('too many change streams open')
    }
    this.#subscription ??= this.#open(this.#store.watch.bind(this.#store))
    try {
      await this.#subscription
      this.#opened = true
    } catch (err) {
      // The next stream tries again.
      this.#subscription = null
      throw new StoreUnavailableError('the store change feed cannot be opened', { cause: err })
    }
  }

  /** Streams changes of `tenant` (null: every tenant) to `res` until either end closes. */
  add(tenant: string | null, res: ServerResponse): void {
    const sub: Subscriber = { tenant, res }
    this.#subscribers.add(sub)
    res.on('close', () => this.#subscribers.delete(sub))
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // A proxy (nginx) must pass each event on at once.
      'x-accel-buffering': 'no',
    })
    this.#send(sub, sseEvent('ready', { tenant }))
    if (!this.#up) this.#send(sub, sseEvent('status', { up: false, reason: this.#reason }))
  }

  async #open(watch: NonNullable<Store['watch']>): Promise<WatchSubscription> {
    const subscription = await watch({
      onChanges: (changes) => {
        this.#observer?.changes(changes.length)
        this.#fanOut(changes)
      },
      onStatus: (up, reason) => {
        this.#observer?.status(up)
        this.#up = up
        this.#reason = reason ?? ''
        if (!up) this.#warn({ reason }, 'store change feed down')
        const event = sseEvent('status', up ? { up } : { up, reason: this.#reason })
        for (const sub of this.#subscribers) this.#send(sub, event)
      },
    })
    this.#heartbeat ??= setInterval(() => {
      for (const sub of this.#subscribers) this.#send(sub, SSE_HEARTBEAT)
    }, this.#o.heartbeatMs)
    this.#heartbeat.unref()
    return subscription
  }

  #fanOut(changes: readonly AccountChange[]): void {
    if (this.#subscribers.size === 0) return
    let all: string | null = null
    const byTenant = new Map<string, string>()
    for (const sub of this.#subscribers) {
      let event: string | undefined
      if (sub.tenant === null) {
        all ??= sseEvent('changes', changes)
        event = all
      } else {
        event = byTenant.get(sub.tenant)
        if (event === undefined) {
          const own = changes.filter((c) => c.tenant === sub.tenant)
          event = own.length === 0 ? '' : sseEvent('changes', own)
          byTenant.set(sub.tenant, event)
        }
      }
      if (event !== '') this.#send(sub, event)
    }
  }

  /** Writes to one stream, or drops the stream when it has fallen too far behind. */
  #send(sub: Subscriber, text: string): void {
    const { res } = sub
    if (res.destroyed) return
    if (res.writableLength + text.length > this.#o.maxBufferBytes) {
      this.#subscribers.delete(sub)
      this.#warn({ tenant: sub.tenant }, 'change stream consumer too slow: disconnected')
      res.destroy()
      return
    }
    res.write(text)
  }

  /** Ends every stream and closes the store's feed. */
  async close(): Promise<void> {
    this.#closed = true
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat)
    for (const sub of this.#subscribers) sub.res.end()
    this.#subscribers.clear()
    const subscription = await this.#subscription?.catch(() => null)
    await subscription?.close()
  }
}
