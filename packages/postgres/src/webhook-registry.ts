/**
 * The webhooks of a Tollgate server running on this store (migration 5): endpoints in
 * `<schema>.webhooks`, deliveries in `<schema>.webhook_deliveries`, each tenant's fan-out cursor
 * in `<schema>.webhook_cursors`. Several server processes share the deliveries: a claim leases
 * due rows with `FOR UPDATE SKIP LOCKED` and `locked_until`, so two processes never attempt one
 * delivery at once, and a process that dies leaves its lease to run out.
 */
import { isTollgateError, StoreUnavailableError } from '@tollgate/core'
import type {
  StoredEventType,
  WebhookDelivery,
  WebhookDeliveryStatus,
  WebhookEndpoint,
  WebhookRegistry,
} from '@tollgate/core/store'
import type { SqlClient } from './driver.js'
import { statement } from './statements.js'

type Num = string | number

interface EndpointRow {
  tenant: string
  id: string
  url: string
  events: string[] | string
  secret: string
  created_at: Num
}

interface DeliveryRow {
  tenant: string
  webhook_id: string
  account: string
  event_seq: Num
  id: string
  event_id: string
  type: string
  at: Num
  data: Record<string, unknown> | string
  status: string
  attempts: Num
  next_at: Num
  last_attempt_at: Num | null
  last_status: Num | null
  last_error: string | null
  delivered_at: Num | null
  created_at: Num
}

const nullableNumber = (v: Num | null): number | null => (v === null ? null : Number(v))
const parsed = <T>(v: T | string): T => (typeof v === 'string' ? (JSON.parse(v) as T) : v)

function endpointOf(r: EndpointRow): WebhookEndpoint {
  return {
    id: r.id,
    tenant: r.tenant,
    url: r.url,
    events: parsed(r.events),
    secret: r.secret,
    createdAt: Number(r.created_at),
  }
}

function deliveryOf(r: DeliveryRow): WebhookDelivery {
  return {
    id: r.id,
    tenant: r.tenant,
    webhookId: r.webhook_id,
    eventId: r.event_id,
    eventSeq: Number(r.event_seq),
    account: r.account,
    type: r.type as StoredEventType,
    at: Number(r.at),
    data: parsed(r.data),
    status: r.status as WebhookDeliveryStatus,
    attempts: Number(r.attempts),
    nextAt: Number(r.next_at),
    lastAttemptAt: nullableNumber(r.last_attempt_at),
    lastStatus: nullableNumber(r.last_status),
    lastError: r.last_error,
    deliveredAt: nullableNumber(r.delivered_at),
    createdAt: Number(r.created_at),
  }
}

/** The statements of one schema's webhook tables. */
function webhookStatements(s: string) {
  const endpointCols = 'tenant, id, url, events, secret, created_at'
  const deliveryCols = `tenant, webhook_id, account, event_seq, id, event_id, type, at, data, status,
  attempts, next_at, last_attempt_at, last_status, last_error, delivered_at, created_at`
  const d = deliveryCols.replace(/(\w+)/g, 'd.$1')
  return {
    create: statement(
      `INSERT INTO ${s}.webhooks (${endpointCols}) VALUES ($1, $2, $3, $4::json, $5, $6)`,
    ),
    find: statement(`SELECT ${endpointCols} FROM ${s}.webhooks WHERE tenant = $1 AND id = $2`),
    list: statement(
      `SELECT ${endpointCols} FROM ${s}.webhooks
WHERE $1::text IS NULL OR tenant = $1 ORDER BY tenant, created_at, id`,
    ),
    // One statement, so an endpoint never outlives its deliveries or the other way round.
    delete: statement(`WITH gone AS (
  DELETE FROM ${s}.webhooks WHERE tenant = $1 AND id = $2 RETURNING id
), deliveries AS (
  DELETE FROM ${s}.webhook_deliveries WHERE tenant = $1 AND webhook_id IN (SELECT id FROM gone)
)
SELECT id FROM gone`),
    cursor: statement(`SELECT seq FROM ${s}.webhook_cursors WHERE tenant = $1`),
    // Only for endpoints that still exist; one row per (endpoint, event) whoever inserts first.
    enqueue: statement(`INSERT INTO ${s}.webhook_deliveries
  (tenant, webhook_id, account, event_seq, id, event_id, type, at, data, status, attempts,
   next_at, created_at)
SELECT $1, x.webhook_id, x.account, x.event_seq, x.id, x.event_id, x.type, x.at, x.data::json,
  'pending', 0, x.next_at, x.created_at
FROM unnest($2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::text[], $8::int8[],
  $9::text[], $10::int8[], $11::int8[])
  AS x(webhook_id, account, event_seq, id, event_id, type, at, data, next_at, created_at)
JOIN ${s}.webhooks w ON w.tenant = $1 AND w.id = x.webhook_id
ORDER BY x.webhook_id, x.account, x.event_seq
ON CONFLICT (tenant, webhook_id, account, event_seq) DO NOTHING
RETURNING 1 AS added`),
    moveCursor: statement(`INSERT INTO ${s}.webhook_cursors (tenant, seq) VALUES ($1, $2)
ON CONFLICT (tenant) DO UPDATE SET seq = greatest(${s}.webhook_cursors.seq, excluded.seq)`),
    /**
     * Leases due deliveries. A row another claim is taking is skipped (SKIP LOCKED); one it took
     * a moment ago is re-read under the lock with its new `locked_until` and left out. An
     * (endpoint, account) pair with an earlier pending delivery is left out: order per account.
     */
    claim: statement(`WITH due AS (
  SELECT d.tenant, d.webhook_id, d.account, d.event_seq
  FROM ${s}.webhook_deliveries d
  WHERE d.status = 'pending' AND d.next_at <= $1
    AND (d.locked_until IS NULL OR d.locked_until <= $1)
    AND NOT EXISTS (
      SELECT 1 FROM ${s}.webhook_deliveries e
      WHERE e.tenant = d.tenant AND e.webhook_id = d.webhook_id AND e.account = d.account
        AND e.event_seq < d.event_seq AND e.status = 'pending')
  ORDER BY d.next_at, d.event_seq
  LIMIT $2
  FOR UPDATE OF d SKIP LOCKED
)
UPDATE ${s}.webhook_deliveries d SET locked_until = $1 + $3, lock_owner = $4
FROM due
WHERE d.tenant = due.tenant AND d.webhook_id = due.webhook_id AND d.account = due.account
  AND d.event_seq = due.event_seq
RETURNING ${d}`),
    complete: statement(`UPDATE ${s}.webhook_deliveries SET status = $3, attempts = attempts + 1,
  last_attempt_at = $4, last_status = $5, last_error = $6, next_at = $7,
  delivered_at = CASE WHEN $3 = 'delivered' THEN $4::int8 END, locked_until = NULL, lock_owner = NULL
WHERE id = $1 AND lock_owner = $2 AND status = 'pending'
RETURNING id`),
    listDeliveries: statement(`SELECT ${deliveryCols} FROM ${s}.webhook_deliveries
WHERE tenant = $1 AND webhook_id = $2 AND ($3::int8 IS NULL OR event_seq < $3)
  AND ($4::text IS NULL OR status = $4)
ORDER BY event_seq DESC
LIMIT $5`),
    prune: statement(`DELETE FROM ${s}.webhook_deliveries
WHERE id IN (
  SELECT id FROM ${s}.webhook_deliveries
  WHERE status <> 'pending' AND created_at < $1
  LIMIT $2
)
RETURNING 1 AS dropped`),
    // The lease stays: an attempt in flight finishes and records itself first.
    redeliver: statement(`UPDATE ${s}.webhook_deliveries
SET status = 'pending', next_at = $4, delivered_at = NULL
WHERE tenant = $1 AND webhook_id = $2 AND id = $3
RETURNING ${deliveryCols}`),
  }
}

/** A {@link WebhookRegistry} over one schema; `ready` runs before each call (the migrations). */
export function sqlWebhookRegistry(
  client: SqlClient & { transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> },
  quotedSchema: string,
  ready: () => Promise<void>,
): WebhookRegistry {
  const st = webhookStatements(quotedSchema)
  /** A database failure is a 503 whose message does not carry the database's words. */
  const guarded = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      await ready()
      return await fn()
    } catch (err) {
      if (isTollgateError(err)) throw err
      throw new StoreUnavailableError('webhooks unavailable', { cause: err })
    }
  }
  return {
    createWebhook: (e) =>
      guarded(async () => {
        await client.query(st.create, [
          e.tenant,
          e.id,
          e.url,
          JSON.stringify(e.events),
          e.secret,
          e.createdAt,
        ])
      }),
    findWebhook: (tenant, id) =>
      guarded(async () => {
        const [row] = await client.query<EndpointRow>(st.find, [tenant, id])
        return row ? endpointOf(row) : null
      }),
    listWebhooks: (tenant) =>
      guarded(async () => (await client.query<EndpointRow>(st.list, [tenant])).map(endpointOf)),
    deleteWebhook: (tenant, id) =>
      guarded(async () => (await client.query(st.delete, [tenant, id])).length > 0),
    fanOutCursor: (tenant) =>
      guarded(async () => {
        const [row] = await client.query<{ seq: Num }>(st.cursor, [tenant])
        return row ? Number(row.seq) : 0
      }),
    enqueueDeliveries: (tenant, list, cursor) =>
      guarded(() =>
        client.transaction(async (tx) => {
          let added = 0
          const mine = list.filter((d) => d.tenant === tenant)
          if (mine.length > 0) {
            const rows = await tx.query(st.enqueue, [
              tenant,
              mine.map((d) => d.webhookId),
              mine.map((d) => d.account),
              mine.map((d) => d.eventSeq),
              mine.map((d) => d.id),
              mine.map((d) => d.eventId),
              mine.map((d) => d.type),
              mine.map((d) => d.at),
              mine.map((d) => JSON.stringify(d.data)),
              mine.map((d) => d.nextAt),
              mine.map((d) => d.createdAt),
            ])
            added = rows.length
          }
          if (cursor !== null) await tx.query(st.moveCursor, [tenant, cursor])
          return added
        }),
      ),
    claimDueDeliveries: ({ now, limit, leaseMs, owner }) =>
      guarded(async () => {
        const rows = await client.query<DeliveryRow>(st.claim, [now, limit, leaseMs, owner])
        return rows.map(deliveryOf).sort((a, b) => a.nextAt - b.nextAt || a.eventSeq - b.eventSeq)
      }),
    completeDelivery: (id, owner, a) =>
      guarded(
        async () =>
          (
            await client.query(st.complete, [
              id,
              owner,
              a.status,
              a.at,
              a.responseStatus,
              a.error,
              a.nextAt,
            ])
          ).length > 0,
      ),
    listDeliveries: (tenant, webhookId, q) =>
      guarded(async () =>
        (
          await client.query<DeliveryRow>(st.listDeliveries, [
            tenant,
            webhookId,
            q.beforeSeq,
            q.status,
            q.limit,
          ])
        ).map(deliveryOf),
      ),
    pruneDeliveries: (before, limit) =>
      guarded(async () => (await client.query(st.prune, [before, limit])).length),
    redeliver: (tenant, webhookId, deliveryId, now) =>
      guarded(async () => {
        const [row] = await client.query<DeliveryRow>(st.redeliver, [
          tenant,
          webhookId,
          deliveryId,
          now,
        ])
        return row ? deliveryOf(row) : null
      }),
  }
}
