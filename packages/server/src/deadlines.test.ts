/**
 * Deadlines through the server: the request's `Tollgate-Deadline-Ms`, capped by the server's
 * `timeoutMs` and counted from arrival, reaches the store with every operation; a deadline
 * that passed is a 503 with `Retry-After` and nothing applied; a store refusal never shows the
 * database's words.
 */

import { memoryStore, type Store } from '@tollgate/core'
import type { ExecuteRequest } from '@tollgate/core/store'
import { pgliteStore } from '@tollgate/postgres'
import { afterEach, describe, expect, it } from 'vitest'
import { startServer, type TestServer } from './test-support.js'

const servers: TestServer[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()))
})

/** A memory store that records the timeoutMs of every operation it receives. */
function recordingStore(): { store: Store; seen: (number | undefined)[] } {
  const inner = memoryStore()
  const seen: (number | undefined)[] = []
  const store: Store = {
    kind: inner.kind,
    execute(req: ExecuteRequest) {
      seen.push(req.timeoutMs)
      return inner.execute(req)
    },
    ledger: (...args) => inner.ledger(...args),
    createCodes: (...args) => inner.createCodes(...args),
    dueAccounts: (...args) => inner.dueAccounts(...args),
    prune: (...args) => inner.prune(...args),
    close: () => inner.close(),
  }
  return { store, seen }
}

async function serve(options: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const t = await startServer(options)
  servers.push(t)
  return t
}

describe('request deadlines', () => {
  it('reach the store: the header capped by the server timeoutMs, less the time already spent', async () => {
    const { store, seen } = recordingStore()
    const t = await serve({ store, timeoutMs: 3_000 })
    const deadline = (ms: string) => ({ headers: { 'tollgate-deadline-ms': ms } })
    expect((await t.call('POST', '/v1/accounts/a/grants', { body: { amount: 5 } })).status).toBe(
      201,
    )
    await t.call('POST', '/v1/accounts/a/debits', { body: { amount: 1 }, ...deadline('2000') })
    await t.call('GET', '/v1/accounts/a/balance', deadline('999999'))
    await t.call('POST', '/v1/store/execute', {
      body: {
        account: 'a',
        op: { type: 'balance' },
        now: 0,
        config: {
          lowBalanceThreshold: null,
          overdraftLimit: null,
          overage: 'clamp',
          redeemMaxFailures: 10,
          redeemWindowMs: 3_600_000,
        },
      },
      ...deadline('1500'),
    })
    expect(seen).toHaveLength(4)
    for (const ms of seen) {
      expect(Number.isInteger(ms)).toBe(true)
      expect(ms).toBeGreaterThan(0)
    }
    const [noHeader, asked2000, asked999999, asked1500] = seen as number[]
    expect(noHeader).toBeLessThanOrEqual(3_000)
    expect(asked2000).toBeLessThanOrEqual(2_000)
    // More than the server allows is cut to its timeoutMs.
    expect(asked999999).toBeLessThanOrEqual(3_000)
    expect(asked1500).toBeLessThanOrEqual(1_500)
  })

  it.each(['0', 'soon', '-5', '1.5', '1e3', '9999999999'])(
    'a malformed Tollgate-Deadline-Ms (%s) is 400 naming the header',
    async (value) => {
      const t = await serve({})
      const res = await t.call('POST', '/v1/accounts/a/debits', {
        body: { amount: 1 },
        headers: { 'tollgate-deadline-ms': value },
      })
      expect(res.status).toBe(400)
      expect(res.headers['content-type']).toMatch(/application\/problem\+json/)
      expect(res.body).toMatchObject({ code: 'invalid_input', field: 'Tollgate-Deadline-Ms' })
    },
  )

  it('a deadline that passed before the operation ran is 503 with Retry-After, and nothing is applied', async () => {
    const { store, seen } = recordingStore()
    const t = await serve({ store })
    // 1 ms, counted from arrival: spent before the handler runs (authentication, parsing).
    const res = await t.call('POST', '/v1/accounts/a/grants', {
      body: { amount: 5 },
      headers: { 'tollgate-deadline-ms': '1' },
    })
    expect(res.status).toBe(503)
    expect(res.headers['retry-after']).toBe('1')
    expect(res.body).toMatchObject({ code: 'store_unavailable', status: 503 })
    // The store never saw it.
    expect(seen).toEqual([])
    const balance = await t.call<{ total: number }>('GET', '/v1/accounts/a/balance')
    expect(balance.body.total).toBe(0)
  })
})

describe('store refusals through the server', () => {
  it('a value the database refuses is a 400 naming the field, without the database words', async () => {
    const t = await serve({ store: pgliteStore() })
    const res = await t.call('POST', '/v1/accounts/a/adjustments', {
      body: { delta: 1, reason: 'x\u0000' },
    })
    expect(res.status).toBe(400)
    expect(res.body).toMatchObject({ code: 'invalid_input', field: 'reason' })
    expect(res.text).not.toMatch(/byte sequence|0x00|UTF8|encoding|SQLSTATE/i)
    // Other requests are untouched by it.
    const ok = await t.call('POST', '/v1/accounts/a/adjustments', { body: { delta: 1 } })
    expect(ok.status).toBe(200)
    // Starting PGlite takes seconds on a busy machine.
  }, 60_000)
})
