/**
 * `X-Request-Id` over real sockets: a sane id the client sends is adopted, anything else is
 * replaced by a generated one; either way it comes back on every answer (successes, refusals,
 * 404s, framework errors, the change feed's stream), in problem bodies as `requestId`, and on
 * the request's JSON log lines.
 */
import { Client } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { logCapture, rawRequest, startServer, type TestServer } from './test-support.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

let t: TestServer
const log = logCapture()

beforeAll(async () => {
  t = await startServer({ logger: { level: 'info', stream: log.stream } })
})
afterAll(async () => {
  await t.close()
})

/** The JSON log lines written so far. */
function logLines(): Record<string, unknown>[] {
  return log
    .text()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

describe('X-Request-Id', () => {
  it('echoes a sane id on successes, refusals, 404s and validation problems', async () => {
    const cases = [
      { path: '/healthz', key: null, status: 200 },
      { path: '/v1/accounts/alice/balance', key: undefined, status: 200 },
      { path: '/v1/accounts/alice/balance', key: null, status: 401 },
      { path: '/no/such/route', key: null, status: 404 },
      { path: '/v1/accounts/alice/ledger?limit=0', key: undefined, status: 400 },
      { path: '/docs', key: null, status: 200 },
    ] as const
    for (const [i, c] of cases.entries()) {
      const id = `client-req:${i}/abc_DEF.~`
      const res = await t.call('GET', c.path, { key: c.key, headers: { 'x-request-id': id } })
      expect(res.status, c.path).toBe(c.status)
      expect(res.headers['x-request-id'], c.path).toBe(id)
      if (c.status >= 400) {
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
        expect(res.body.requestId, c.path).toBe(id)
      }
    }
  })

  it('a mutation refused by the ledger carries the id in its problem body too', async () => {
    const res = await t.call('POST', '/v1/accounts/nobody/debits', {
      body: { amount: 5 },
      headers: { 'x-request-id': 'debit-1' },
    })
    expect(res.status).toBe(402)
    expect(res.body).toMatchObject({ code: 'insufficient_credits', requestId: 'debit-1' })
    expect(res.headers['x-request-id']).toBe('debit-1')
  })

  it('generates one when none is sent, and a fresh one per request', async () => {
    const a = await t.call('GET', '/no/such/route', { key: null })
    const b = await t.call('GET', '/no/such/route', { key: null })
    expect(a.headers['x-request-id']).toMatch(UUID)
    expect(b.headers['x-request-id']).toMatch(UUID)
    expect(a.headers['x-request-id']).not.toBe(b.headers['x-request-id'])
    expect(a.body.requestId).toBe(a.headers['x-request-id'])
  })

  it('replaces an id that is too long, has spaces or non-ASCII bytes, or is empty', async () => {
    for (const sent of ['x'.repeat(129), 'has space', 'café', '']) {
      const res = await t.call('GET', '/no/such/route', {
        key: null,
        headers: { 'x-request-id': sent },
      })
      expect(res.status).toBe(404)
      expect(res.headers['x-request-id'], JSON.stringify(sent)).toMatch(UUID)
      expect(res.body.requestId).toBe(res.headers['x-request-id'])
    }
    // The longest id kept: 128 visible characters.
    const longest = 'y'.repeat(128)
    const kept = await t.call('GET', '/healthz', {
      key: null,
      headers: { 'x-request-id': longest },
    })
    expect(kept.headers['x-request-id']).toBe(longest)
  })

  it('answers a request refused before routing (bad percent-encoding) with the id', async () => {
    const res = await rawRequest(
      t.url,
      'GET /v1/accounts/%zz/balance HTTP/1.1\r\nHost: x\r\nX-Request-Id: raw-1\r\nConnection: close\r\n\r\n',
    )
    expect(res.status).toBe(400)
    expect(res.headers['x-request-id']).toBe('raw-1')
    expect(JSON.parse(res.body)).toMatchObject({ code: 'invalid_input', requestId: 'raw-1' })
  })

  it("sends it on the change feed's stream, whose head the route writes itself", async () => {
    // A client of its own, destroyed after: the stream never ends by itself.
    const client = new Client(t.url)
    try {
      const res = await client.request({
        method: 'GET',
        path: '/v1/store/changes',
        headers: { authorization: `Bearer ${t.adminKey}`, 'x-request-id': 'feed-1' },
      })
      expect(res.statusCode).toBe(200)
      expect(res.headers['content-type']).toMatch(/^text\/event-stream/)
      expect(res.headers['x-request-id']).toBe('feed-1')
    } finally {
      await client.destroy()
    }
  })

  it('is the `requestId` of every log line of the request', async () => {
    await t.call('GET', '/v1/accounts/carol/balance', { headers: { 'x-request-id': 'log-me-1' } })
    const lines = logLines().filter((l) => l.requestId === 'log-me-1')
    // Fastify's "incoming request" and "request completed" lines, both with the id.
    expect(lines.map((l) => l.msg)).toEqual(['incoming request', 'request completed'])
    // No line carries the id under Fastify's default label instead.
    expect(logLines().filter((l) => 'reqId' in l)).toEqual([])
  })
})
