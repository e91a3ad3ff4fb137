/**
 * The webhook registry's rules on the memory registry, PGlite and PostgreSQL alike: tenant
 * scoping, idempotent fan-out, the cursor, claims that keep each account's order and never hand
 * one delivery to two owners at once, leases that run out, and redelivery.
 */
import {
  memoryWebhookRegistry,
  type NewWebhookDelivery,
  type WebhookRegistry,
} from '@tollgate/core/store'
import { afterAll, describe, expect, it } from 'vitest'
import { pgliteStore } from './pglite-store.js'
import { postgresStore } from './postgres-store.js'
import { describePostgres, dropSchemaAfterAll, uniqueSchema } from './test-support.js'

let tenantCounter = 0
const freshTenant = () => `t${++tenantCounter}_${Math.random().toString(36).slice(2, 8)}`

function delivery(
  tenant: string,
  webhookId: string,
  seq: number,
  account: string,
  nextAt = 1_000,
): NewWebhookDelivery {
  return {
    id: `whd_${tenant}_${webhookId}_${seq}`,
    tenant,
    webhookId,
    eventId: `evt_${tenant}_${seq}`,
    eventSeq: seq,
    account,
    type: 'low',
    at: 900,
    data: { available: seq },
    nextAt,
    createdAt: 900,
  }
}

async function endpoint(registry: WebhookRegistry, tenant: string, id = `wh_${tenant}`) {
  await registry.createWebhook({
    id,
    tenant,
    url: 'https://example.com/hook',
    events: ['*'],
    secret: 'whsec_c2VjcmV0',
    createdAt: 800,
  })
  return id
}

const attempt = (status: 'delivered' | 'pending' | 'failed', at: number, nextAt = at) => ({
  status,
  at,
  nextAt,
  responseStatus: status === 'delivered' ? 200 : 500,
  error: status === 'delivered' ? null : 'HTTP 500',
})

function describeRegistry(name: string, registryOf: () => WebhookRegistry): void {
  describe(`webhook registry: ${name}`, () => {
    it('keeps endpoints per tenant: another tenant neither finds, lists nor deletes them', async () => {
      const r = registryOf()
      const a = freshTenant()
      const b = freshTenant()
      const id = await endpoint(r, a)
      expect((await r.findWebhook(a, id))?.url).toBe('https://example.com/hook')
      expect(await r.findWebhook(b, id)).toBeNull()
      expect((await r.listWebhooks(b)).map((e) => e.id)).toEqual([])
      expect((await r.listWebhooks(null)).map((e) => e.id)).toContain(id)
      expect(await r.deleteWebhook(b, id)).toBe(false)
      expect(await r.deleteWebhook(a, id)).toBe(true)
      expect(await r.findWebhook(a, id)).toBeNull()
      expect(await r.deleteWebhook(a, id)).toBe(false)
    })

    it('enqueues each (endpoint, event) once, for live endpoints only, and moves the cursor forward only', async () => {
      const r = registryOf()
      const t = freshTenant()
      const id = await endpoint(r, t)
      expect(await r.fanOutCursor(t)).toBe(0)
      expect(await r.enqueueDeliveries(t, [delivery(t, id, 1, 'x')], 5)).toBe(1)
      const again = { ...delivery(t, id, 1, 'x'), id: 'whd_other' }
      expect(await r.enqueueDeliveries(t, [again, delivery(t, 'wh_gone', 2, 'x')], 3)).toBe(0)
      expect(await r.fanOutCursor(t)).toBe(5)
      expect(await r.enqueueDeliveries(t, [], 9)).toBe(0)
      expect(await r.fanOutCursor(t)).toBe(9)
      const list = await r.listDeliveries(t, id, { limit: 10, beforeSeq: null, status: null })
      expect(list.map((d) => [d.id, d.status, d.attempts])).toEqual([
        [`whd_${t}_${id}_1`, 'pending', 0],
      ])
    })

    it("claims an account's deliveries one at a time, in event order; a failed one unblocks the next", async () => {
      const r = registryOf()
      const t = freshTenant()
      const id = await endpoint(r, t)
      await r.enqueueDeliveries(
        t,
        [delivery(t, id, 1, 'a'), delivery(t, id, 2, 'a'), delivery(t, id, 3, 'b')],
        null,
      )
      const claim = (now: number, owner = 'p1') =>
        r.claimDueDeliveries({ now, limit: 1000, leaseMs: 10_000, owner })
      const first = (await claim(1_000)).filter((d) => d.tenant === t)
      expect(first.map((d) => d.eventSeq).sort()).toEqual([1, 3])
      // Account a's second event waits while the first is undelivered (claimed, even).
      expect((await claim(1_050)).filter((d) => d.tenant === t)).toEqual([])
      const one = first.find((d) => d.eventSeq === 1)!
      expect(await r.completeDelivery(one.id, 'p1', attempt('pending', 1_060, 2_000))).toBe(true)
      expect((await claim(1_500)).filter((d) => d.tenant === t)).toEqual([])
      const retried = (await claim(2_000)).filter((d) => d.tenant === t)
      expect(retried.map((d) => [d.eventSeq, d.attempts])).toEqual([[1, 1]])
      expect(await r.completeDelivery(one.id, 'p1', attempt('failed', 2_010))).toBe(true)
      const next = (await claim(2_020)).filter((d) => d.tenant === t)
      expect(next.map((d) => d.eventSeq)).toEqual([2])
    })

    it('leases a claim: no other owner gets it before the lease ends; a late owner cannot record', async () => {
      const r = registryOf()
      const t = freshTenant()
      const id = await endpoint(r, t)
      await r.enqueueDeliveries(t, [delivery(t, id, 1, 'a')], null)
      const mine = <D extends { tenant: string }>(d: D[]) => d.filter((x) => x.tenant === t)
      const [held] = mine(
        await r.claimDueDeliveries({ now: 1_000, limit: 1000, leaseMs: 500, owner: 'p1' }),
      )
      expect(held).toBeDefined()
      expect(
        mine(await r.claimDueDeliveries({ now: 1_499, limit: 1000, leaseMs: 500, owner: 'p2' })),
      ).toEqual([])
      const taken = mine(
        await r.claimDueDeliveries({ now: 1_500, limit: 1000, leaseMs: 500, owner: 'p2' }),
      )
      expect(taken.map((d) => d.id)).toEqual([held!.id])
      expect(await r.completeDelivery(held!.id, 'p1', attempt('delivered', 1_600))).toBe(false)
      expect(await r.completeDelivery(held!.id, 'p2', attempt('delivered', 1_700))).toBe(true)
      const [done] = await r.listDeliveries(t, id, { limit: 1, beforeSeq: null, status: null })
      expect(done).toMatchObject({
        status: 'delivered',
        attempts: 1,
        deliveredAt: 1_700,
        lastStatus: 200,
      })
    })

    it('lists newest first with paging and a status filter, and redelivers', async () => {
      const r = registryOf()
      const t = freshTenant()
      const id = await endpoint(r, t)
      await r.enqueueDeliveries(
        t,
        [1, 2, 3].map((s) => delivery(t, id, s, `acct${s}`)),
        null,
      )
      const page = await r.listDeliveries(t, id, { limit: 2, beforeSeq: null, status: null })
      expect(page.map((d) => d.eventSeq)).toEqual([3, 2])
      const rest = await r.listDeliveries(t, id, { limit: 2, beforeSeq: 2, status: null })
      expect(rest.map((d) => d.eventSeq)).toEqual([1])
      const claimed = (
        await r.claimDueDeliveries({ now: 1_000, limit: 1000, leaseMs: 10, owner: 'p' })
      ).filter((d) => d.tenant === t)
      const one = claimed.find((d) => d.eventSeq === 1)!
      await r.completeDelivery(one.id, 'p', attempt('failed', 1_001))
      const failed = await r.listDeliveries(t, id, { limit: 10, beforeSeq: null, status: 'failed' })
      expect(failed.map((d) => d.id)).toEqual([one.id])
      expect(await r.redeliver(freshTenant(), id, one.id, 5_000)).toBeNull()
      const again = await r.redeliver(t, id, one.id, 5_000)
      expect(again).toMatchObject({ status: 'pending', nextAt: 5_000, attempts: 1 })
      const reclaimed = (
        await r.claimDueDeliveries({ now: 5_000, limit: 1000, leaseMs: 10, owner: 'q' })
      ).filter((d) => d.id === one.id)
      expect(reclaimed).toHaveLength(1)
    })

    it('prunes finished deliveries past the retention, never pending ones', async () => {
      const r = registryOf()
      const t = freshTenant()
      const id = await endpoint(r, t)
      await r.enqueueDeliveries(t, [delivery(t, id, 1, 'a'), delivery(t, id, 2, 'b')], null)
      const [first] = (
        await r.claimDueDeliveries({ now: 1_000, limit: 1000, leaseMs: 10, owner: 'p' })
      ).filter((d) => d.tenant === t && d.eventSeq === 1)
      await r.completeDelivery(first!.id, 'p', attempt('delivered', 1_001))
      // Other tests' finished deliveries (created at 900 too) may go as well: counted, not asserted.
      await r.pruneDeliveries(901, 1_000_000)
      const left = await r.listDeliveries(t, id, { limit: 10, beforeSeq: null, status: null })
      expect(left.map((d) => [d.eventSeq, d.status])).toEqual([[2, 'pending']])
    })

    it('deletes an endpoint with its deliveries', async () => {
      const r = registryOf()
      const t = freshTenant()
      const id = await endpoint(r, t)
      await r.enqueueDeliveries(t, [delivery(t, id, 1, 'a')], null)
      await r.deleteWebhook(t, id)
      await endpoint(r, t, id)
      expect(await r.listDeliveries(t, id, { limit: 10, beforeSeq: null, status: null })).toEqual(
        [],
      )
    })
  })
}

const memoryRegistry = memoryWebhookRegistry()
describeRegistry('memory', () => memoryRegistry)

const pglite = pgliteStore()
afterAll(() => pglite.close())
describeRegistry('pglite', () => pglite.webhooks)

describePostgres('webhook registry on PostgreSQL', (url) => {
  const schema = uniqueSchema('webhooks')
  const store = postgresStore({ connectionString: url, schema })
  dropSchemaAfterAll(url, schema)
  afterAll(() => store.close())
  describeRegistry('postgres', () => store.webhooks)

  it('hands each due delivery to one of many concurrent claims (SKIP LOCKED)', async () => {
    const r = store.webhooks
    const t = freshTenant()
    const id = await endpoint(r, t)
    await r.enqueueDeliveries(
      t,
      Array.from({ length: 40 }, (_, i) => delivery(t, id, i + 1, `acct${i}`)),
      null,
    )
    const claims = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        r.claimDueDeliveries({ now: 1_000, limit: 20, leaseMs: 60_000, owner: `p${i}` }),
      ),
    )
    const ids = claims
      .flat()
      .filter((d) => d.tenant === t)
      .map((d) => d.id)
    expect(new Set(ids).size).toBe(ids.length)
    expect(ids.length).toBe(40)
  })
})
