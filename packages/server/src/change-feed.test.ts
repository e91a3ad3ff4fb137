import { createMeter, httpStore, type Store } from '@tollgate/core'
import type { AccountChange } from '@tollgate/core/store'
import { request } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { startServer, type TestServer } from './test-support.js'

/** A watch listener that collects changes and lets a test wait for the one it expects. */
function collector() {
  const changes: AccountChange[] = []
  const statuses: [boolean, string | undefined][] = []
  let wake: (() => void) | null = null
  const listener = {
    onChanges(batch: readonly AccountChange[]) {
      changes.push(...batch)
      wake?.()
    },
    onStatus(up: boolean, reason?: string) {
      statuses.push([up, reason])
      wake?.()
    },
  }
  /** Resolves once `done()` holds (checked on every event). */
  const until = (done: () => boolean) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (done()) {
          wake = null
          resolve()
        }
      }
      wake = check
      check()
    })
  return { changes, statuses, listener, until }
}

describe('GET /v1/store/changes and httpStore().watch()', () => {
  let t: TestServer
  const stores: Store[] = []
  const open = (key: string) => {
    const store = httpStore({ url: t.url, apiKey: key, retryBaseMs: 10 })
    stores.push(store)
    return store
  }
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()))
    await t?.close()
  })

  it("streams a tenant key its own tenant's changes, and an admin key every tenant's", async () => {
    t = await startServer()
    const a = (await t.createKey('ta')).key
    const b = (await t.createKey('tb')).key
    const seenA = collector()
    const seenAdmin = collector()
    await open(a).watch!(seenA.listener)
    await open(t.adminKey).watch!(seenAdmin.listener)
    expect(
      (await t.call('POST', '/v1/accounts/u1/grants', { key: b, body: { amount: 5 } })).status,
    ).toBe(201)
    expect(
      (await t.call('POST', '/v1/accounts/u2/grants', { key: a, body: { amount: 5 } })).status,
    ).toBe(201)
    await seenA.until(() => seenA.changes.length > 0)
    await seenAdmin.until(() => seenAdmin.changes.length >= 2)
    // Also told as 'default': what a meter on a tenant key calls its tenant.
    expect(seenA.changes.map((c) => [c.tenant, c.account])).toEqual([
      ['ta', 'u2'],
      ['default', 'u2'],
    ])
    expect(seenAdmin.changes.map((c) => [c.tenant, c.account])).toEqual([
      ['tb', 'u1'],
      ['ta', 'u2'],
    ])
  })

  it('lets a meter on httpStore serve a user who paid through REST on the next request', async () => {
    t = await startServer()
    const key = (await t.createKey('shop')).key
    const store = open(key)
    // The cache would trust its refusal for a minute: only the feed can drop it.
    const meter = createMeter({ store, cache: { ttlMs: 60_000 } })
    await expect(meter.reserve('u', 5)).rejects.toMatchObject({ code: 'insufficient_credits' })
    await expect(meter.reserve('u', 5)).rejects.toMatchObject({ code: 'insufficient_credits' })
    await t.call('POST', '/v1/accounts/u/grants', { key, body: { amount: 10 } })
    // The change reaches the meter's stream a moment later; the cached refusal stands until then
    // (for up to a minute without the feed). Bounded: 200 tries, 10 ms apart.
    let hold: Awaited<ReturnType<typeof meter.reserve>> | undefined
    for (let i = 0; i < 200 && hold === undefined; i++) {
      hold = await meter.reserve('u', 5).catch(async (err: { code?: string }) => {
        if (err.code !== 'insufficient_credits') throw err
        await new Promise((resolve) => setTimeout(resolve, 10))
        return undefined
      })
    }
    if (hold === undefined) throw new Error('the meter kept refusing: the change never reached it')
    expect(hold.amount).toBe(5)
    await hold.release()
    stores.splice(stores.indexOf(store), 1)
    await meter.close()
  })

  it('sends heartbeats on an idle stream and the events as text/event-stream', async () => {
    t = await startServer({ changeFeed: { heartbeatMs: 100 } })
    const res = await request(`${t.url}/v1/store/changes`, {
      headers: { authorization: `Bearer ${t.adminKey}` },
    })
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toMatch(/^text\/event-stream/)
    let text = ''
    for await (const chunk of res.body) {
      text += chunk.toString()
      if (text.includes('event: ready') && text.includes('\n:\n\n')) break
    }
    expect(text.startsWith('event: ready\ndata: {"tenant":null}\n\n')).toBe(true)
    res.body.destroy()
  })

  it('refuses a stream past maxSubscribers with 503, and needs a key', async () => {
    t = await startServer({ changeFeed: { maxSubscribers: 1 } })
    const first = collector()
    await open(t.adminKey).watch!(first.listener)
    const second = await t.call('GET', '/v1/store/changes')
    expect(second.status).toBe(503)
    expect(second.body).toMatchObject({ code: 'store_unavailable' })
    const anonymous = await t.call('GET', '/v1/store/changes', { key: null })
    expect(anonymous.status).toBe(401)
  })

  it('reports the loss when the server goes away, and a meter warns and keeps its TTL', async () => {
    t = await startServer()
    const store = open(t.adminKey)
    const seen = collector()
    await store.watch!(seen.listener)
    const warned = new Promise<Error>((resolve) => {
      const onWarning = (w: Error & { code?: string }) => {
        if (w.code !== 'TOLLGATE_CHANGE_FEED_DOWN') return
        process.off('warning', onWarning)
        resolve(w)
      }
      process.on('warning', onWarning)
    })
    const meter = createMeter({ store })
    await meter.grant('u', 1)
    await t.close()
    await seen.until(() => seen.statuses.length > 0)
    expect(seen.statuses[0]![0]).toBe(false)
    expect((await warned).message).toMatch(/change feed of the http store is down.*TTL \(1000 ms\)/)
    stores.splice(stores.indexOf(store), 1)
    await meter.close()
  })
})

describe('tenant settings over REST and the store protocol', () => {
  let t: TestServer
  afterEach(() => t.close())

  it('stores tenant defaults that every path applies, under per-account settings', async () => {
    t = await startServer({ meter: { lowBalanceThreshold: 5 } })
    const key = (await t.createKey('acme')).key
    expect((await t.call('GET', '/v1/settings', { key })).body).toEqual({
      lowBalanceThreshold: null,
      overdraftLimit: null,
    })
    const put = await t.call('PUT', '/v1/settings', { key, body: { lowBalanceThreshold: 20 } })
    expect(put.status).toBe(200)
    expect(put.body).toEqual({ lowBalanceThreshold: 20, overdraftLimit: null })
    await t.call('POST', '/v1/accounts/a/grants', { key, body: { amount: 10 } })
    expect((await t.call('GET', '/v1/accounts/a/balance', { key })).body).toMatchObject({
      low: true,
    })
    const store = httpStore({ url: t.url, apiKey: key })
    expect(await store.tenantSettings!('default')).toEqual({
      lowBalanceThreshold: 20,
      overdraftLimit: null,
    })
    expect(await store.putTenantSettings!('default', { overdraftLimit: 3 })).toEqual({
      lowBalanceThreshold: 20,
      overdraftLimit: 3,
    })
    await store.close()
    await t.call('PUT', '/v1/accounts/a/settings', { key, body: { lowBalanceThreshold: 2 } })
    expect((await t.call('GET', '/v1/accounts/a/settings', { key })).body).toEqual({
      account: 'a',
      lowBalanceThreshold: 2,
      overdraftLimit: null,
      effective: { lowBalanceThreshold: 2, overdraftLimit: 3 },
    })
    // Tenants apart: another tenant has none stored, so the server's option applies.
    const other = (await t.createKey('other')).key
    expect((await t.call('GET', '/v1/accounts/a/settings', { key: other })).body).toMatchObject({
      effective: { lowBalanceThreshold: 5, overdraftLimit: null },
    })
  })

  it('refuses settings that are not whole non-negative numbers, naming the field', async () => {
    t = await startServer()
    for (const body of [{ lowBalanceThreshold: -1 }, { overdraftLimit: 1.5 }, { nope: 1 }]) {
      const res = await t.call('PUT', '/v1/settings', { body })
      expect(res.status).toBe(400)
      expect(res.body).toMatchObject({ code: 'invalid_input' })
    }
  })
})
