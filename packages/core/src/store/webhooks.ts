/**
 * The webhook registry of a Tollgate server (DESIGN §5): endpoints, their deliveries and the
 * fan-out cursors that turn outbox events into deliveries. Like the {@link KeyRegistry} it lives
 * beside the ledger in stores that persist (`<schema>.webhooks`, `webhook_deliveries`,
 * `webhook_cursors` in `@tollgate/postgres`) and in memory for `memoryStore()`. The server
 * decides when to attempt a delivery and what to send; the registry keeps the state, hands out
 * due deliveries under a lease so that several processes never attempt one at once, and keeps
 * each account's deliveries in order. See docs/webhooks.md.
 */
import type { StoredEventType } from './store.js'

/** A webhook endpoint as stored. */
export interface WebhookEndpoint {
  /** `wh_…`. */
  id: string
  tenant: string
  url: string
  /** Event types delivered; `['*']` for every type. */
  events: string[]
  /** The signing secret, `whsec_<base64>` (Standard Webhooks). */
  secret: string
  createdAt: number
}

/** Where a delivery stands: attempts go on while `pending`; `failed` once retries ran out. */
export type WebhookDeliveryStatus = 'pending' | 'delivered' | 'failed'

/** A delivery to create: one event for one endpoint. */
export interface NewWebhookDelivery {
  /** `whd_…`. */
  id: string
  tenant: string
  webhookId: string
  /** The outbox event's id: the `webhook-id` header, the same on every attempt. */
  eventId: string
  /** The outbox event's seq: deliveries of one account are attempted in this order. */
  eventSeq: number
  account: string
  type: StoredEventType
  /** The event's time (ms since epoch). */
  at: number
  data: Record<string, unknown>
  /** When to make the first attempt. */
  nextAt: number
  createdAt: number
}

/** A delivery as stored. */
export interface WebhookDelivery extends NewWebhookDelivery {
  status: WebhookDeliveryStatus
  /** Attempts made so far. */
  attempts: number
  lastAttemptAt: number | null
  /** The receiver's HTTP status of the last attempt; null when it gave none. */
  lastStatus: number | null
  /** Why the last attempt failed (no receiver's words beyond a short excerpt). */
  lastError: string | null
  deliveredAt: number | null
}

/** A request for due deliveries. */
export interface WebhookClaim {
  now: number
  /** At most this many (1–1000). */
  limit: number
  /** The claimed deliveries are this caller's until `now + leaseMs`. */
  leaseMs: number
  /** Who claims: {@link WebhookRegistry.completeDelivery} must name it. */
  owner: string
}

/** What an attempt came to. */
export interface WebhookAttempt {
  at: number
  /** `delivered`, `pending` (retry at `nextAt`) or `failed` (no retry left). */
  status: WebhookDeliveryStatus
  nextAt: number
  responseStatus: number | null
  error: string | null
}

/** A page of one endpoint's deliveries, newest first. */
export interface WebhookDeliveryQuery {
  /** 1–1000. */
  limit: number
  /** Only deliveries with an event seq below this (the next page). */
  beforeSeq: number | null
  status: WebhookDeliveryStatus | null
}

/**
 * Where a Tollgate server keeps its webhooks. Rules every implementation keeps:
 * - `claimDueDeliveries` hands out only `pending` deliveries with `nextAt ≤ now` whose lease
 *   ran out (or was never taken), and never one of an (endpoint, account) while an earlier
 *   (lower `eventSeq`) delivery of that pair is still `pending`: receivers see each account's
 *   events in order. A claimed delivery is leased to the owner until `now + leaseMs`; no other
 *   claim returns it before, whatever the process (PostgreSQL: `FOR UPDATE SKIP LOCKED`).
 * - `completeDelivery` applies only while the caller still holds the lease.
 * - `enqueueDeliveries` ignores deliveries it already has (same endpoint and event), so a
 *   fan-out may run again over the same events, from any process.
 * - nothing crosses tenants.
 */
export interface WebhookRegistry {
  createWebhook(endpoint: WebhookEndpoint): Promise<void>
  /** The tenant's endpoint with this id, or null. */
  findWebhook(tenant: string, id: string): Promise<WebhookEndpoint | null>
  /** One tenant's endpoints, or every tenant's when `tenant` is null; oldest first. */
  listWebhooks(tenant: string | null): Promise<WebhookEndpoint[]>
  /** Deletes the endpoint and its deliveries; false when the tenant has no such endpoint. */
  deleteWebhook(tenant: string, id: string): Promise<boolean>
  /** The tenant's fan-out cursor: the outbox seq up to which events became deliveries; 0 at first. */
  fanOutCursor(tenant: string): Promise<number>
  /**
   * Stores the deliveries (skipping those it has: same endpoint and event, or an endpoint since
   * deleted) and, when `cursor` is given, moves the tenant's fan-out cursor to it (never back),
   * atomically. Returns how many deliveries were new.
   */
  enqueueDeliveries(
    tenant: string,
    deliveries: readonly NewWebhookDelivery[],
    cursor: number | null,
  ): Promise<number>
  /** Leases due deliveries (see the rules above), earliest due first. */
  claimDueDeliveries(claim: WebhookClaim): Promise<WebhookDelivery[]>
  /** Records an attempt; false when the lease was lost (another process may have it now). */
  completeDelivery(id: string, owner: string, attempt: WebhookAttempt): Promise<boolean>
  /** One endpoint's deliveries, newest first. */
  listDeliveries(
    tenant: string,
    webhookId: string,
    query: WebhookDeliveryQuery,
  ): Promise<WebhookDelivery[]>
  /**
   * Drops up to `limit` finished (delivered or failed) deliveries created before `before`;
   * returns how many. Pending deliveries stay whatever their age.
   */
  pruneDeliveries(before: number, limit: number): Promise<number>
  /**
   * Makes a delivery due again at `now` (pending, attempts kept), whatever its status; an
   * attempt in flight keeps its lease. Null when the tenant's endpoint has no such delivery.
   */
  redeliver(
    tenant: string,
    webhookId: string,
    deliveryId: string,
    now: number,
  ): Promise<WebhookDelivery | null>
}

interface MemoryDelivery extends WebhookDelivery {
  lockedUntil: number | null
  owner: string | null
}

function publicDelivery(d: MemoryDelivery): WebhookDelivery {
  const { lockedUntil: _l, owner: _o, ...rest } = d
  return { ...rest, data: { ...rest.data } }
}

/** An in-memory {@link WebhookRegistry}: for `memoryStore()` and tests. */
export function memoryWebhookRegistry(): WebhookRegistry {
  const endpoints = new Map<string, WebhookEndpoint>()
  /** Deliveries in insertion order, which is event order per (endpoint, account). */
  const deliveries = new Map<string, MemoryDelivery>()
  const byEvent = new Set<string>()
  const cursors = new Map<string, number>()
  const owned = (tenant: string, id: string): WebhookEndpoint | undefined => {
    const e = endpoints.get(id)
    return e?.tenant === tenant ? e : undefined
  }
  return {
    async createWebhook(endpoint) {
      if (endpoints.has(endpoint.id)) throw new Error(`duplicate webhook id ${endpoint.id}`)
      endpoints.set(endpoint.id, { ...endpoint, events: [...endpoint.events] })
    },
    async findWebhook(tenant, id) {
      const e = owned(tenant, id)
      return e ? { ...e, events: [...e.events] } : null
    },
    async listWebhooks(tenant) {
      return [...endpoints.values()]
        .filter((e) => tenant === null || e.tenant === tenant)
        .map((e) => ({ ...e, events: [...e.events] }))
    },
    async deleteWebhook(tenant, id) {
      if (!owned(tenant, id)) return false
      endpoints.delete(id)
      for (const [key, d] of deliveries) {
        if (d.webhookId !== id) continue
        deliveries.delete(key)
        byEvent.delete(`${id}\0${d.eventId}`)
      }
      return true
    },
    async fanOutCursor(tenant) {
      return cursors.get(tenant) ?? 0
    },
    async enqueueDeliveries(tenant, list, cursor) {
      let added = 0
      for (const d of list) {
        const key = `${d.webhookId}\0${d.eventId}`
        if (d.tenant !== tenant || !owned(tenant, d.webhookId) || byEvent.has(key)) continue
        byEvent.add(key)
        deliveries.set(d.id, {
          ...d,
          data: { ...d.data },
          status: 'pending',
          attempts: 0,
          lastAttemptAt: null,
          lastStatus: null,
          lastError: null,
          deliveredAt: null,
          lockedUntil: null,
          owner: null,
        })
        added++
      }
      if (cursor !== null) cursors.set(tenant, Math.max(cursor, cursors.get(tenant) ?? 0))
      return added
    },
    async claimDueDeliveries({ now, limit, leaseMs, owner }) {
      const blocked = new Set<string>()
      const due: MemoryDelivery[] = []
      // Lowest seq first within each (endpoint, account): the first pending one blocks the rest.
      const pending = [...deliveries.values()]
        .filter((d) => d.status === 'pending')
        .sort((a, b) => a.eventSeq - b.eventSeq)
      for (const d of pending) {
        const pair = `${d.webhookId}\0${d.account}`
        if (blocked.has(pair)) continue
        blocked.add(pair)
        if (d.nextAt <= now && (d.lockedUntil === null || d.lockedUntil <= now)) due.push(d)
      }
      due.sort((a, b) => a.nextAt - b.nextAt || a.eventSeq - b.eventSeq)
      return due.slice(0, limit).map((d) => {
        d.lockedUntil = now + leaseMs
        d.owner = owner
        return publicDelivery(d)
      })
    },
    async completeDelivery(id, owner, attempt) {
      const d = deliveries.get(id)
      if (!d || d.owner !== owner || d.status !== 'pending') return false
      d.status = attempt.status
      d.attempts++
      d.lastAttemptAt = attempt.at
      d.lastStatus = attempt.responseStatus
      d.lastError = attempt.error
      d.nextAt = attempt.nextAt
      d.deliveredAt = attempt.status === 'delivered' ? attempt.at : null
      d.lockedUntil = null
      d.owner = null
      return true
    },
    async listDeliveries(tenant, webhookId, { limit, beforeSeq, status }) {
      if (!owned(tenant, webhookId)) return []
      return [...deliveries.values()]
        .filter(
          (d) =>
            d.webhookId === webhookId &&
            (beforeSeq === null || d.eventSeq < beforeSeq) &&
            (status === null || d.status === status),
        )
        .sort((a, b) => b.eventSeq - a.eventSeq)
        .slice(0, limit)
        .map(publicDelivery)
    },
    async pruneDeliveries(before, limit) {
      let dropped = 0
      for (const [key, d] of deliveries) {
        if (dropped >= limit) break
        if (d.status === 'pending' || d.createdAt >= before) continue
        deliveries.delete(key)
        byEvent.delete(`${d.webhookId}\0${d.eventId}`)
        dropped++
      }
      return dropped
    },
    async redeliver(tenant, webhookId, deliveryId, now) {
      const d = deliveries.get(deliveryId)
      if (!d || d.webhookId !== webhookId || !owned(tenant, webhookId)) return null
      // The lease stays: an attempt in flight finishes and records itself first.
      d.status = 'pending'
      d.nextAt = now
      d.deliveredAt = null
      return publicDelivery(d)
    },
  }
}
