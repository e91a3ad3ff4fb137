/**
 * Webhooks over real sockets: the routes (tenant scoping, the secret shown once, refused
 * targets), and deliveries from the outbox to a node:http receiver that verifies every message
 * with the `standardwebhooks` package, on the memory store, PGlite and PostgreSQL.
 */
import { memoryStore, type Store } from '@tollgate/core'
import type { WebhookRegistry } from '@tollgate/core/store'
import { afterEach, describe, expect, it } from 'vitest'
import type { WebhookOptions } from './options.js'
import {
  describeSqlStores,
  startReceiver,
  startServer,
  type TestServer,
  type WebhookReceiver,
} from './test-support.js'
import { generateWebhookSecret } from './webhook-send.js'
import { isPrivateAddress, resolveTarget, TargetRefusedError } from './webhook-targets.js'
import { nextAttemptAt } from './webhook-worker.js'

/** Short waits so that a test sees several retries; the receivers are on 127.0.0.1. */
const FAST: WebhookOptions = {
  allowPrivateTargets: true,
  retryScheduleMs: [100, 200, 400, 800, 1_000, 1_000, 1_000, 1_000, 1_000, 1_000],
  retryJitter: 0.1,
  pollIntervalMs: 50,
  timeoutMs: 2_000,
}

const open: { close(): Promise<void> }[] = []
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close()
}, 60_000)

async function serverWith(store?: Store, webhooks: WebhookOptions = FAST): Promise<TestServer> {
  const t = await startServer({ ...(store ? { store } : {}), webhooks })
  open.push(t)
  return t
}

async function receiver(): Promise<WebhookReceiver> {
  const r = await startReceiver()
  open.push(r)
  return r
}

/** Registers the receiver for `events` and hands it the secret. */
async function subscribe(t: TestServer, r: WebhookReceiver, events?: string[], key?: string) {
  const res = await t.call<{ id: string; secret: string }>('POST', '/v1/webhooks', {
    key,
    body: { url: r.url, ...(events ? { events } : {}) },
  })
  expect(res.status).toBe(201)
  r.secret = res.body.secret
  return res.body.id
}

/** Sets a low-balance threshold of 10, grants 100 and debits `amount`. */
async function lowCrossing(t: TestServer, account: string, amount = 95, key?: string) {
  expect(
    (
      await t.call('PUT', `/v1/accounts/${account}/settings`, {
        key,
        body: { lowBalanceThreshold: 10 },
      })
    ).status,
  ).toBe(200)
  expect(
    (await t.call('POST', `/v1/accounts/${account}/grants`, { key, body: { amount: 100 } })).status,
  ).toBe(201)
  expect(
    (await t.call('POST', `/v1/accounts/${account}/debits`, { key, body: { amount } })).status,
  ).toBe(200)
}

describe('webhook routes', () => {
  it('creates an endpoint with a Standard Webhooks secret shown once; lists and reads never show it', async () => {
    const t = await serverWith()
    const created = await t.call<Record<string, unknown>>('POST', '/v1/webhooks', {
      body: { url: 'https://hooks.example.com/tollgate', events: ['low', 'depleted'] },
    })
    expect(created.status).toBe(201)
    const { id, secret } = created.body as { id: string; secret: string }
    expect(created.body).toMatchObject({
      url: 'https://hooks.example.com/tollgate',
      events: ['low', 'depleted'],
    })
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/)
    expect(Buffer.from(secret.slice(6), 'base64')).toHaveLength(24)
    const list = await t.call<{ webhooks: Record<string, unknown>[] }>('GET', '/v1/webhooks')
    expect(list.body.webhooks.map((w) => w.id)).toEqual([id])
    expect(list.text).not.toContain(secret)
    const one = await t.call('GET', `/v1/webhooks/${id}`)
    expect(one.status).toBe(200)
    expect(one.body).not.toHaveProperty('secret')
    const all = await t.call('POST', '/v1/webhooks', { body: { url: 'https://a.example.com/' } })
    expect(all.body).toMatchObject({ events: ['*'] })
  })

  it('keeps endpoints to their tenant', async () => {
    const t = await serverWith()
    const { key } = await t.createKey('acme')
    const { key: other } = await t.createKey('globex')
    const created = await t.call<{ id: string }>('POST', '/v1/webhooks', {
      key,
      body: { url: 'https://a.example.com/' },
    })
    const id = created.body.id
    expect((await t.call('GET', `/v1/webhooks/${id}`, { key: other })).status).toBe(404)
    expect((await t.call('DELETE', `/v1/webhooks/${id}`, { key: other })).status).toBe(404)
    expect(
      (await t.call<{ webhooks: unknown[] }>('GET', '/v1/webhooks', { key: other })).body.webhooks,
    ).toEqual([])
    expect((await t.call('GET', `/v1/webhooks/${id}/deliveries`, { key: other })).status).toBe(404)
    expect((await t.call('DELETE', `/v1/webhooks/${id}`, { key })).body).toEqual({
      id,
      deleted: true,
    })
    expect((await t.call('GET', `/v1/webhooks/${id}`, { key })).status).toBe(404)
  })

  it('refuses private, loopback and link-local targets, plain http and bad input by default (400 naming the field)', async () => {
    const t = await serverWith(undefined, {})
    for (const url of [
      'https://127.0.0.1/hook',
      'https://10.1.2.3/hook',
      'https://169.254.169.254/latest/meta-data',
      'https://[::1]/hook',
      'https://[::ffff:127.0.0.1]/hook',
      'https://[fd00::1]/hook',
      'https://localhost/hook',
      'https://api.localhost/hook',
      'http://hooks.example.com/hook',
      'ftp://hooks.example.com/hook',
      'https://user:pass@hooks.example.com/hook',
      'not a url',
    ]) {
      const res = await t.call('POST', '/v1/webhooks', { body: { url } })
      expect({ url, status: res.status, field: res.body.field }).toEqual({
        url,
        status: 400,
        field: 'url',
      })
    }
    const badType = await t.call('POST', '/v1/webhooks', {
      body: { url: 'https://hooks.example.com/', events: ['nope'] },
    })
    expect(badType.status).toBe(400)
    const extra = await t.call('POST', '/v1/webhooks', {
      body: { url: 'https://hooks.example.com/', secret: 'mine' },
    })
    expect(extra.status).toBe(400)
    expect((await t.call('GET', '/v1/webhooks/wh_unknown')).status).toBe(404)
    expect(
      (await t.call('POST', '/v1/webhooks/wh_unknown/deliveries/whd_unknown/retry')).status,
    ).toBe(404)
  })

  it('bounds the endpoints of a tenant', async () => {
    const t = await serverWith(undefined, { maxPerTenant: 2 })
    for (let i = 0; i < 2; i++) {
      const res = await t.call('POST', '/v1/webhooks', {
        body: { url: `https://h${i}.example.com/` },
      })
      expect(res.status).toBe(201)
    }
    const third = await t.call('POST', '/v1/webhooks', { body: { url: 'https://h3.example.com/' } })
    expect(third.status).toBe(400)
  })
})

describe('allowed targets', () => {
  it('classifies addresses', () => {
    for (const a of [
      '127.0.0.1',
      '10.0.0.1',
      '172.20.1.1',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '::1',
      '::',
      'fe80::1',
      'fc00::1',
      '::ffff:7f00:1',
      '::ffff:10.0.0.1',
    ]) {
      expect({ a, private: isPrivateAddress(a) }).toEqual({ a, private: true })
    }
    for (const a of [
      '93.184.216.34',
      '8.8.8.8',
      '2606:4700::1111',
      '172.32.0.1',
      '::ffff:5db8:d822',
    ]) {
      expect({ a, private: isPrivateAddress(a) }).toEqual({ a, private: false })
    }
  })

  it('checks the address a name resolves to at delivery time', async () => {
    const policy = { allowPrivateTargets: false, allowHttp: true }
    await expect(resolveTarget(new URL('http://localhost:1/'), policy)).rejects.toBeInstanceOf(
      TargetRefusedError,
    )
    await expect(
      resolveTarget(new URL('http://localhost:1/'), { ...policy, allowPrivateTargets: true }),
    ).resolves.toMatchObject({ address: expect.stringMatching(/^(127\.0\.0\.1|::1)$/) })
  })

  it('retries with backoff and jitter, then gives up', () => {
    const schedule = [1_000, 10_000]
    expect(nextAttemptAt(1, 0, schedule, 0.2, () => 0)).toBe(800)
    expect(nextAttemptAt(1, 0, schedule, 0.2, () => 1)).toBe(1_200)
    expect(nextAttemptAt(2, 0, schedule, 0.2, () => 0.5)).toBe(10_000)
    expect(nextAttemptAt(3, 0, schedule, 0.2)).toBeNull()
  })
})

/** Delivery behaviour, run on every store kind. */
function describeDeliveries(kind: string, storeOf: () => Store | undefined): void {
  // PGlite takes seconds to start on a busy machine; the waits inside are bounded on their own.
  describe(`webhook deliveries (${kind})`, { timeout: 90_000 }, () => {
    it('delivers a low-balance crossing, signed per Standard Webhooks', async () => {
      const t = await serverWith(storeOf())
      const r = await receiver()
      const id = await subscribe(t, r, ['low'])
      await lowCrossing(t, 'alice')
      await r.until((got) => got.length >= 1)
      expect(r.rejected).toBe(0)
      expect(r.received).toHaveLength(1)
      expect(r.received[0]).toMatchObject({ type: 'low', account: 'alice' })
      const deliveries = await t.call<{ deliveries: Record<string, unknown>[] }>(
        'GET',
        `/v1/webhooks/${id}/deliveries`,
      )
      expect(deliveries.body.deliveries).toMatchObject([
        { type: 'low', account: 'alice', status: 'delivered', attempts: 1, lastStatus: 204 },
      ])
      expect(deliveries.body.deliveries[0]!.eventId).toBe(r.received[0]!.id)
    })

    it('gets every event after the receiver was down, in order per account, none lost', async () => {
      const t = await serverWith(storeOf())
      const r = await receiver()
      await subscribe(t, r, ['granted', 'debited'])
      await r.down()
      const accounts = ['a1', 'a2', 'a3']
      for (let i = 1; i <= 5; i++) {
        for (const a of accounts) {
          const res = await t.call('POST', `/v1/accounts/${a}/grants`, { body: { amount: i } })
          expect(res.status).toBe(201)
        }
      }
      // Down for a few retry rounds of the short schedule (attempts are refused meanwhile).
      await new Promise((resolve) => setTimeout(resolve, 2_000))
      expect(r.received).toEqual([])
      await r.up()
      await r.until((got) => got.length >= 15, 30_000)
      expect(r.rejected).toBe(0)
      for (const a of accounts) {
        const amounts = r.received.filter((m) => m.account === a).map((m) => m.data.amount)
        expect({ a, amounts }).toEqual({ a, amounts: [1, 2, 3, 4, 5] })
      }
      expect(new Set(r.received.map((m) => m.id)).size).toBe(15)
    })

    it('marks a delivery failed after the last retry, and delivers it again on request', async () => {
      const t = await serverWith(storeOf(), { ...FAST, retryScheduleMs: [50, 50] })
      const r = await receiver()
      r.answer = 500
      const id = await subscribe(t, r, ['granted'])
      await t.call('POST', '/v1/accounts/bob/grants', { body: { amount: 5 } })
      type Page = {
        deliveries: { id: string; status: string; attempts: number; lastError: string }[]
      }
      let page: Page = { deliveries: [] }
      const end = Date.now() + 20_000
      while (page.deliveries[0]?.status !== 'failed' && Date.now() < end) {
        await new Promise((resolve) => setTimeout(resolve, 50))
        page = (await t.call<Page>('GET', `/v1/webhooks/${id}/deliveries?status=failed`)).body
      }
      expect(page.deliveries).toMatchObject([{ status: 'failed', attempts: 3 }])
      expect(page.deliveries[0]!.lastError).toContain('HTTP 500')
      expect(r.received).toEqual([])
      r.answer = 200
      const retried = await t.call(
        'POST',
        `/v1/webhooks/${id}/deliveries/${page.deliveries[0]!.id}/retry`,
      )
      expect(retried.status).toBe(200)
      expect(retried.body).toMatchObject({ status: 'pending' })
      await r.until((got) => got.length === 1)
      expect(r.received[0]).toMatchObject({ type: 'granted', account: 'bob' })
    })

    it('never holds up the ledger while a receiver hangs; each attempt has a deadline', async () => {
      const t = await serverWith(storeOf(), { ...FAST, timeoutMs: 300, concurrency: 2 })
      const r = await receiver()
      let release = () => {}
      r.hold = new Promise<void>((resolve) => {
        release = resolve
      })
      await subscribe(t, r, ['granted'])
      for (let i = 0; i < 10; i++) {
        const res = await t.call('POST', `/v1/accounts/h${i}/grants`, { body: { amount: 1 } })
        expect(res.status).toBe(201)
      }
      // The receiver has answered nothing yet, and the ledger served every request.
      expect(r.received).toEqual([])
      expect((await t.call('GET', '/v1/accounts/h0/balance')).status).toBe(200)
      release()
      r.hold = null
      await r.until((got) => new Set(got.map((m) => m.account)).size === 10, 30_000)
    })
  })
}

describeDeliveries('memory', () => undefined)
describeSqlStores('webhook deliveries', (kind) => {
  describeDeliveries(kind.name, () => kind.make().store)
})

/** A memory store whose webhook registry counts how often the endpoints are listed. */
function countingStore(): { store: Store; registry: WebhookRegistry; lists: () => number } {
  const store = memoryStore()
  const registry = store.webhooks!
  let lists = 0
  const counted = new Proxy(registry, {
    get(target, name) {
      const value = Reflect.get(target, name, target) as unknown
      if (typeof value !== 'function') return value
      if (name === 'listWebhooks') {
        return (...args: Parameters<WebhookRegistry['listWebhooks']>) => {
          lists++
          return target.listWebhooks(...args)
        }
      }
      return value.bind(target)
    },
  })
  const wrapped = new Proxy(store, {
    get(target, name) {
      if (name === 'webhooks') return counted
      const value = Reflect.get(target, name, target) as unknown
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  return { store: wrapped, registry, lists: () => lists }
}

describe('webhook worker and the change feed', () => {
  it('does not look for work on every committed change while no endpoint exists', async () => {
    const { store, lists } = countingStore()
    // Polls far apart: what happens here comes from the change feed.
    const t = await serverWith(store, { ...FAST, pollIntervalMs: 600_000 })
    const before = lists()
    for (let i = 0; i < 10; i++) {
      const res = await t.call('POST', `/v1/accounts/c${i}/grants`, { body: { amount: 1 } })
      expect(res.status).toBe(201)
    }
    // The start's look may still be running when the first change comes (one more look).
    expect(lists() - before).toBeLessThanOrEqual(1)
  })

  it('wakes on every change again once an endpoint is registered through the server', async () => {
    const { store } = countingStore()
    const t = await serverWith(store, { ...FAST, pollIntervalMs: 600_000 })
    const r = await receiver()
    await subscribe(t, r, ['granted'])
    for (let i = 0; i < 3; i++) {
      const res = await t.call('POST', `/v1/accounts/w${i}/grants`, { body: { amount: i + 1 } })
      expect(res.status).toBe(201)
    }
    await r.until((got) => got.length >= 3)
    expect(r.received.map((m) => m.account)).toEqual(['w0', 'w1', 'w2'])
  })

  it('delivers the events of an endpoint another process registered, from the next poll', async () => {
    const { store, registry } = countingStore()
    const t = await serverWith(store)
    // A first change while no endpoint exists: the worker does not look again for it.
    expect(
      (await t.call('POST', '/v1/accounts/early/grants', { body: { amount: 1 } })).status,
    ).toBe(201)
    const r = await receiver()
    const secret = generateWebhookSecret()
    r.secret = secret
    // Straight into the shared registry, as another server process would: nobody wakes us.
    await registry.createWebhook({
      id: 'wh_elsewhere',
      tenant: 'default',
      url: r.url,
      events: ['granted'],
      secret,
      createdAt: Date.now(),
    })
    expect((await t.call('POST', '/v1/accounts/late/grants', { body: { amount: 2 } })).status).toBe(
      201,
    )
    await r.until((got) => got.length >= 1)
    expect(r.received).toHaveLength(1)
    expect(r.received[0]).toMatchObject({ type: 'granted', account: 'late' })
    expect(r.rejected).toBe(0)
  })
})
