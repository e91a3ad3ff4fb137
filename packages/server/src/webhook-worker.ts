/**
 * The webhook worker: turns outbox events into deliveries (the fan-out) and attempts due
 * deliveries, apart from the request path so that a slow or dead receiver never slows the
 * ledger: bounded concurrency, a deadline per attempt, a cap on what is read of an answer.
 *
 * Several server processes may run it on one store. The registry's claim hands each due
 * delivery to one of them under a lease (PostgreSQL: `FOR UPDATE SKIP LOCKED`), longer than an
 * attempt's deadline, so no delivery is attempted twice at once; a process killed mid-attempt
 * leaves its lease to run out, and another process (or the same one restarted) attempts the
 * delivery again: at least once.
 *
 * The fan-out reads the outbox per tenant that has endpoints, from a durable cursor stored with
 * the deliveries it makes. The outbox never returns an event past one that may still commit
 * with a lower seq (docs/store.md, "Reading by sequence under concurrency"), so the cursor moves
 * to the last event read. Deliveries are unique per (endpoint, event): fan-outs of several
 * processes over the same events add nothing twice.
 */
import { randomBytes } from 'node:crypto'
import type {
  NewWebhookDelivery,
  WebhookDelivery,
  WebhookEndpoint,
  WebhookRegistry,
} from '@tollgate/core/store'
import {
  type EventsRequest,
  newId,
  type StoredEvent,
  type WatchListener,
  type WatchSubscription,
} from '@tollgate/core/store'
import type { FastifyBaseLogger } from 'fastify'
import type { WebhookObserver } from './metrics.js'
import type { ResolvedWebhookOptions } from './options.js'
import { sendWebhook } from './webhook-send.js'

/** Events one fan-out read takes from the outbox. */
const FAN_OUT_PAGE = 500
/** Pages one tenant's fan-out reads per tick; the next tick continues. */
const FAN_OUT_PAGES_PER_TICK = 20
/** How often finished deliveries past the retention are dropped, and how many per pass. */
const PRUNE_INTERVAL_MS = 10 * 60_000
const PRUNE_LIMIT = 10_000

/** The Standard Webhooks body of an event. */
export function webhookBody(d: Pick<WebhookDelivery, 'type' | 'at' | 'account' | 'data'>): string {
  return JSON.stringify({
    type: d.type,
    timestamp: new Date(d.at).toISOString(),
    data: { account: d.account, ...d.data },
  })
}

/** True when an endpoint subscribed to this event type. */
export function wantsEvent(endpoint: WebhookEndpoint, type: string): boolean {
  return endpoint.events.includes('*') || endpoint.events.includes(type)
}

/** When attempt number `attempts` (1-based, just made) failed: the next try, or null for none. */
export function nextAttemptAt(
  attempts: number,
  now: number,
  schedule: readonly number[],
  jitter: number,
  random: () => number = Math.random,
): number | null {
  const base = schedule[attempts - 1]
  if (base === undefined) return null
  // Jitter spreads the retries of many deliveries that failed together (a receiver's outage).
  return now + Math.round(base * (1 + jitter * (2 * random() - 1)))
}

/** Where the worker reads events from: the store's outbox and, when it has one, its feed. */
export interface EventSource {
  events(request: EventsRequest): Promise<StoredEvent[]>
  watch?(listener: WatchListener): Promise<WatchSubscription>
}

/** Runs the fan-out and the deliveries of one server process. */
export class WebhookWorker {
  readonly #store: EventSource
  readonly #registry: WebhookRegistry
  readonly #o: ResolvedWebhookOptions
  readonly #clock: () => number
  readonly #log: FastifyBaseLogger
  readonly #observer: WebhookObserver | undefined
  /** This process's claims; random so that a restarted process is another owner. */
  readonly #owner = `w_${randomBytes(8).toString('hex')}`
  /** Where each tenant's next read starts (after this seq); from the durable cursor at first. */
  readonly #positions = new Map<string, number>()
  readonly #inFlight = new Set<Promise<void>>()
  #endpoints = new Map<string, WebhookEndpoint>()
  /** A fan-out has listed the endpoints at least once (then `#endpoints` is what it found). */
  #listed = false
  #timer: NodeJS.Timeout | null = null
  #watch: WatchSubscription | null = null
  #running: Promise<void> | null = null
  #again = false
  #stopped = false
  #prunedAt = Number.NEGATIVE_INFINITY

  constructor(
    store: EventSource,
    registry: WebhookRegistry,
    options: ResolvedWebhookOptions,
    clock: () => number,
    log: FastifyBaseLogger,
    observer?: WebhookObserver,
  ) {
    this.#store = store
    this.#registry = registry
    this.#o = options
    this.#clock = clock
    this.#log = log
    this.#observer = observer
  }

  /** Starts polling, and wakes on the store's change feed when it has one. */
  async start(): Promise<void> {
    this.#timer = setInterval(() => this.wake(), this.#o.pollIntervalMs)
    this.#timer.unref()
    if (this.#store.watch !== undefined) {
      try {
        this.#watch = await this.#store.watch({ onChanges: () => this.#changed() })
      } catch (err) {
        this.#log.warn({ err }, 'webhooks: no change feed; polling only')
      }
    }
    this.wake()
  }

  /**
   * Something committed. A tick per committed batch costs two queries on the ledger's database
   * (the endpoints, the due deliveries), on the hot path's connections: when the last look found
   * no endpoint, there is nothing to fan out and nothing new to deliver, so the change waits for
   * the next poll. An endpoint created through this server wakes the worker at once; one
   * created through another process is found by the next poll (`pollIntervalMs`), which fans
   * out the events from its creation on: later, never lost.
   */
  #changed(): void {
    if (this.#listed && this.#endpoints.size === 0) return
    this.wake()
  }

  /** Runs a tick soon; ticks never overlap (a wake during one runs another after it). */
  wake(): void {
    if (this.#stopped) return
    if (this.#running !== null) {
      this.#again = true
      return
    }
    this.#running = this.#tick().finally(() => {
      this.#running = null
      if (this.#again) {
        this.#again = false
        this.wake()
      }
    })
  }

  async #tick(): Promise<void> {
    try {
      await this.#fanOut()
    } catch (err) {
      this.#log.warn({ err }, 'webhooks: fan-out failed; the next tick retries')
    }
    try {
      await this.#dispatch()
    } catch (err) {
      this.#log.warn({ err }, 'webhooks: claiming deliveries failed; the next tick retries')
    }
    const now = this.#clock()
    if (now - this.#prunedAt >= PRUNE_INTERVAL_MS) {
      this.#prunedAt = now
      try {
        await this.#registry.pruneDeliveries(now - this.#o.retentionMs, PRUNE_LIMIT)
      } catch (err) {
        this.#log.warn({ err }, 'webhooks: pruning old deliveries failed; the next pass retries')
      }
    }
  }

  async #fanOut(): Promise<void> {
    const endpoints = await this.#registry.listWebhooks(null)
    this.#endpoints = new Map(endpoints.map((e) => [e.id, e]))
    this.#listed = true
    const byTenant = new Map<string, WebhookEndpoint[]>()
    for (const e of endpoints) {
      const list = byTenant.get(e.tenant)
      if (list) list.push(e)
      else byTenant.set(e.tenant, [e])
    }
    for (const tenant of this.#positions.keys()) {
      if (!byTenant.has(tenant)) this.#positions.delete(tenant)
    }
    for (const [tenant, list] of byTenant) {
      if (this.#stopped) return
      await this.#fanOutTenant(tenant, list)
    }
  }

  async #fanOutTenant(tenant: string, endpoints: readonly WebhookEndpoint[]): Promise<void> {
    const now = this.#clock()
    let position = this.#positions.get(tenant)
    position ??= await this.#registry.fanOutCursor(tenant)
    for (let page = 0; page < FAN_OUT_PAGES_PER_TICK; page++) {
      const events = await this.#store.events({ tenant, after: position, limit: FAN_OUT_PAGE })
      if (events.length === 0) break
      const deliveries: NewWebhookDelivery[] = []
      for (const event of events) {
        for (const endpoint of endpoints) {
          // An endpoint gets the events from its creation on, not the tenant's history.
          if (event.at < endpoint.createdAt || !wantsEvent(endpoint, event.type)) continue
          deliveries.push(this.#deliveryOf(endpoint, event, now))
        }
      }
      position = events[events.length - 1]!.seq
      await this.#registry.enqueueDeliveries(tenant, deliveries, position)
      if (events.length < FAN_OUT_PAGE) break
    }
    this.#positions.set(tenant, position)
  }

  #deliveryOf(endpoint: WebhookEndpoint, event: StoredEvent, now: number): NewWebhookDelivery {
    return {
      id: newId('whd', now),
      tenant: event.tenant,
      webhookId: endpoint.id,
      eventId: event.id,
      eventSeq: event.seq,
      account: event.account,
      type: event.type,
      at: event.at,
      data: event.data,
      nextAt: now,
      createdAt: now,
    }
  }

  async #dispatch(): Promise<void> {
    while (!this.#stopped) {
      const free = this.#o.concurrency - this.#inFlight.size
      if (free <= 0) return
      const claimed = await this.#registry.claimDueDeliveries({
        now: this.#clock(),
        limit: free,
        leaseMs: this.#o.leaseMs,
        owner: this.#owner,
      })
      for (const delivery of claimed) {
        const attempt: Promise<void> = this.#attempt(delivery).finally(() => {
          this.#inFlight.delete(attempt)
          // A finished delivery may unblock the account's next one, and frees a slot.
          this.wake()
        })
        this.#inFlight.add(attempt)
      }
      if (claimed.length < free) return
    }
  }

  async #attempt(delivery: WebhookDelivery): Promise<void> {
    try {
      const endpoint =
        this.#endpoints.get(delivery.webhookId) ??
        (await this.#registry.findWebhook(delivery.tenant, delivery.webhookId))
      if (endpoint === null) {
        // Deleted meanwhile (its deliveries normally go with it): never attempted again.
        await this.#registry.completeDelivery(delivery.id, this.#owner, {
          at: this.#clock(),
          status: 'failed',
          nextAt: this.#clock(),
          responseStatus: null,
          error: 'the webhook was deleted',
        })
        this.#observer?.attempt('dropped', null)
        return
      }
      const result = await sendWebhook(
        {
          url: endpoint.url,
          secret: endpoint.secret,
          id: delivery.eventId,
          body: webhookBody(delivery),
          now: this.#clock(),
        },
        this.#o,
      )
      const at = this.#clock()
      const attempts = delivery.attempts + 1
      const next = result.ok
        ? null
        : nextAttemptAt(attempts, at, this.#o.retryScheduleMs, this.#o.retryJitter)
      const kept = await this.#registry.completeDelivery(delivery.id, this.#owner, {
        at,
        status: result.ok ? 'delivered' : next === null ? 'failed' : 'pending',
        nextAt: next ?? at,
        responseStatus: result.status,
        error: result.error,
      })
      this.#observer?.attempt(
        result.ok ? 'delivered' : next === null ? 'failed' : 'retry',
        result.ok ? (at - delivery.at) / 1_000 : null,
      )
      if (!kept) {
        this.#log.warn(
          { deliveryId: delivery.id },
          'webhooks: a delivery outlived its lease; another process may attempt it again',
        )
      } else if (!result.ok && next === null) {
        this.#log.warn(
          { deliveryId: delivery.id, webhookId: delivery.webhookId, error: result.error },
          'webhooks: delivery failed for good after its last retry',
        )
      }
    } catch (err) {
      // The lease runs out and the delivery is attempted again.
      this.#log.warn({ err, deliveryId: delivery.id }, 'webhooks: could not record an attempt')
    }
  }

  /** Stops claiming; waits for the tick and for attempts in flight (each has its deadline). */
  async stop(): Promise<void> {
    this.#stopped = true
    if (this.#timer !== null) clearInterval(this.#timer)
    await this.#watch?.close().catch(() => {})
    await this.#running
    await Promise.allSettled([...this.#inFlight])
  }
}
