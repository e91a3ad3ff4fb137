import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startServer, type TestServer } from './test-support.js'

let t: TestServer

beforeAll(async () => {
  t = await startServer({ bodyLimit: 4_096 })
})
afterAll(async () => {
  await t.close()
})

type Json = Record<string, unknown> & { balance: { available: number; total: number } }

describe('REST routes', () => {
  it('grant, debit, adjust, balance', async () => {
    const g = await t.call<Json>('POST', '/v1/accounts/rest-1/grants', {
      body: {
        amount: 100,
        validityDays: 30,
        priority: 10,
        category: 'promotional',
        metadata: { a: 1 },
      },
    })
    expect(g.status).toBe(201)
    expect(g.headers['content-type']).toMatch(/^application\/json/)
    expect(g.body).toMatchObject({ account: 'rest-1', amount: 100, priority: 10, replayed: false })
    expect(g.body.balance.available).toBe(100)

    const d = await t.call<Json>('POST', '/v1/accounts/rest-1/debits', { body: { amount: 30 } })
    expect(d.status).toBe(200)
    expect(d.body.balance.available).toBe(70)

    const a = await t.call<Json>('POST', '/v1/accounts/rest-1/adjustments', {
      body: { delta: -5, reason: 'refund' },
    })
    expect(a.status).toBe(200)
    expect(a.body.balance.available).toBe(65)

    const b = await t.call<Json>('GET', '/v1/accounts/rest-1/balance')
    expect(b.status).toBe(200)
    expect(b.body).toMatchObject({ account: 'rest-1', total: 65, available: 65, held: 0 })
  })

  it('holds: reserve, commit, release, extend', async () => {
    await t.call('POST', '/v1/accounts/rest-2/grants', { body: { amount: 50 } })
    const h = await t.call<Json & { id: string; expiresAt: number }>(
      'POST',
      '/v1/accounts/rest-2/holds',
      { body: { amount: 20, ttlMs: 5_000 } },
    )
    expect(h.status).toBe(201)
    expect(h.body).toMatchObject({ account: 'rest-2', amount: 20, replayed: false })
    expect(h.body.balance.available).toBe(30)

    const e = await t.call<Json & { expiresAt: number }>('POST', `/v1/holds/${h.body.id}/extend`, {
      body: { ttlMs: 60_000 },
    })
    expect(e.status).toBe(200)
    expect(e.body.expiresAt).toBeGreaterThan(h.body.expiresAt)

    const c = await t.call<Json>('POST', `/v1/holds/${h.body.id}/commit`, { body: { actual: 12 } })
    expect(c.status).toBe(200)
    expect(c.body).toMatchObject({ charged: 12, freed: 8 })
    expect(c.body.balance.available).toBe(38)

    // A second hold, released without a body at all.
    const h2 = await t.call<{ id: string }>('POST', '/v1/accounts/rest-2/holds', {
      body: { amount: 5 },
    })
    const r = await t.call<Json>('POST', `/v1/holds/${h2.body.id}/release`)
    expect(r.status).toBe(200)
    expect(r.body).toMatchObject({ freed: 5 })

    const again = await t.call('POST', `/v1/holds/${h2.body.id}/commit`, { body: {} })
    expect(again.status).toBe(409)
    expect(again.body).toMatchObject({ code: 'hold_resolved' })

    const missing = await t.call('POST', '/v1/holds/hld_nope/commit', { body: {} })
    expect(missing.status).toBe(404)
    expect(missing.body).toMatchObject({ code: 'not_found' })
  })

  it('holds: increase grows a pending hold, all or nothing or partial, idempotent', async () => {
    await t.call('POST', '/v1/accounts/rest-grow/grants', { body: { amount: 50 } })
    const h = await t.call<{ id: string; expiresAt: number }>(
      'POST',
      '/v1/accounts/rest-grow/holds',
      { body: { amount: 10 } },
    )
    const url = `/v1/holds/${h.body.id}/increase`
    const headers = { 'idempotency-key': 'grow-1' }
    const grown = await t.call<Json>('POST', url, { body: { amount: 15 }, headers })
    expect(grown.status).toBe(200)
    expect(grown.body).toMatchObject({
      holdId: h.body.id,
      account: 'rest-grow',
      amount: 25,
      added: 15,
      expiresAt: h.body.expiresAt,
      replayed: false,
    })
    expect(grown.body.balance).toMatchObject({ total: 50, available: 25 })
    const replay = await t.call<Json>('POST', url, { body: { amount: 15 }, headers })
    expect(replay.headers['idempotent-replayed']).toBe('true')
    expect(replay.body).toMatchObject({ amount: 25, added: 15, replayed: true })
    const conflict = await t.call('POST', url, { body: { amount: 16 }, headers })
    expect(conflict.status).toBe(409)
    expect(conflict.body).toMatchObject({ code: 'idempotency_conflict' })

    const short = await t.call('POST', url, { body: { amount: 26 } })
    expect(short.status).toBe(402)
    expect(short.headers['content-type']).toMatch(/^application\/problem\+json/)
    expect(short.body).toMatchObject({ code: 'insufficient_credits', required: 26, available: 25 })
    const partial = await t.call<Json>('POST', url, { body: { amount: 26, partial: true } })
    expect(partial.status).toBe(200)
    expect(partial.body).toMatchObject({ amount: 50, added: 25 })

    for (const body of [{ amount: -1 }, { amount: 1.5 }, { amount: 1, partial: 'yes' }, {}]) {
      const bad = await t.call('POST', url, { body })
      expect(bad.status).toBe(400)
      expect(bad.body).toMatchObject({ code: 'invalid_input' })
    }

    const c = await t.call<Json>('POST', `/v1/holds/${h.body.id}/commit`, { body: {} })
    expect(c.body).toMatchObject({ charged: 50, freed: 0 })
    const after = await t.call('POST', url, { body: { amount: 1 } })
    expect(after.status).toBe(409)
    expect(after.body).toMatchObject({ code: 'hold_resolved' })
    const missing = await t.call('POST', '/v1/holds/hld_nope/increase', { body: { amount: 1 } })
    expect(missing.status).toBe(404)

    const ledger = await t.call<{ entries: { type: string; heldDelta: number }[] }>(
      'GET',
      '/v1/accounts/rest-grow/ledger',
    )
    expect(ledger.body.entries.map((e) => [e.type, e.heldDelta])).toEqual([
      ['commit', -50],
      ['hold', 25],
      ['hold', 15],
      ['hold', 10],
      ['grant', 0],
    ])
  })

  it('insufficient credits is 402 problem+json', async () => {
    const res = await t.call('POST', '/v1/accounts/rest-empty/holds', { body: { amount: 5 } })
    expect(res.status).toBe(402)
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
    expect(res.body).toMatchObject({
      code: 'insufficient_credits',
      account: 'rest-empty',
      required: 5,
      available: 0,
    })
  })

  it('ledger pages with types and cursor', async () => {
    const res = await t.call<{ entries: { type: string }[]; nextCursor: string | null }>(
      'GET',
      '/v1/accounts/rest-1/ledger?limit=1&types=grant,debit',
    )
    expect(res.status).toBe(200)
    expect(res.body.entries).toHaveLength(1)
    expect(res.body.entries[0]!.type).toBe('debit')
    const next = await t.call<{ entries: { type: string }[] }>(
      'GET',
      `/v1/accounts/rest-1/ledger?limit=5&types=grant,debit&cursor=${res.body.nextCursor}`,
    )
    expect(next.body.entries.map((e) => e.type)).toEqual(['grant'])
  })

  it('settings and cycles', async () => {
    const s = await t.call<Json>('PUT', '/v1/accounts/rest-3/settings', {
      body: { lowBalanceThreshold: 10 },
    })
    expect(s.status).toBe(200)
    expect(s.body).toMatchObject({ lowBalanceThreshold: 10, overdraftLimit: null })
    const start = await t.call<Json & { cycle: { active: boolean } }>(
      'PUT',
      '/v1/accounts/rest-3/cycle',
      { body: { amount: 25, every: 'month', rollover: { max: 5 } } },
    )
    expect(start.status).toBe(200)
    expect(start.body.cycle.active).toBe(true)
    expect(start.body.balance.available).toBe(25)
    const stop = await t.call<Json & { cycle: { active: boolean } }>(
      'DELETE',
      '/v1/accounts/rest-3/cycle',
    )
    expect(stop.status).toBe(200)
    expect(stop.body.cycle.active).toBe(false)
  })

  it('codes: create and redeem', async () => {
    const c = await t.call<{ codes: string[]; count: number }>('POST', '/v1/codes', {
      body: { credits: 40, count: 3, prefix: 'PROMO' },
    })
    expect(c.status).toBe(201)
    expect(c.body.codes).toHaveLength(3)
    const r = await t.call<Json & { creditsGranted: number }>(
      'POST',
      '/v1/accounts/rest-4/redemptions',
      { body: { code: c.body.codes[0] } },
    )
    expect(r.status).toBe(201)
    expect(r.body).toMatchObject({ creditsGranted: 40, newBalance: 40 })
    const twice = await t.call('POST', '/v1/accounts/rest-4/redemptions', {
      body: { code: c.body.codes[0] },
    })
    expect(twice.status).toBe(402)
    expect(twice.body).toMatchObject({ code: 'code_unavailable' })
  })

  it('account ids are URL-encoded text', async () => {
    const account = 'user@example.com/ü 1'
    const res = await t.call<Json>('POST', `/v1/accounts/${encodeURIComponent(account)}/grants`, {
      body: { amount: 3 },
    })
    expect(res.status).toBe(201)
    expect(res.body.account).toBe(account)
  })
})

describe('Idempotency-Key', () => {
  it('replays the first answer with Idempotent-Replayed, and 409 on a different body', async () => {
    const headers = { 'idempotency-key': 'grant-once-1' }
    const first = await t.call<Json>('POST', '/v1/accounts/idem-1/grants', {
      body: { amount: 10 },
      headers,
    })
    expect(first.status).toBe(201)
    expect(first.headers['idempotent-replayed']).toBeUndefined()
    const second = await t.call<Json>('POST', '/v1/accounts/idem-1/grants', {
      body: { amount: 10 },
      headers,
    })
    expect(second.status).toBe(201)
    expect(second.headers['idempotent-replayed']).toBe('true')
    expect(second.body.id).toBe(first.body.id)
    expect(second.body.replayed).toBe(true)
    const balance = await t.call<Json>('GET', '/v1/accounts/idem-1/balance')
    expect(balance.body).toMatchObject({ total: 10 })

    const conflict = await t.call('POST', '/v1/accounts/idem-1/grants', {
      body: { amount: 11 },
      headers,
    })
    expect(conflict.status).toBe(409)
    expect(conflict.body).toMatchObject({ code: 'idempotency_conflict' })

    // The same key on another route is a different operation: a conflict too.
    const other = await t.call('POST', '/v1/accounts/idem-1/debits', {
      body: { amount: 1 },
      headers,
    })
    expect(other.status).toBe(409)
  })

  it('replays holds and commits; codes are shown only once', async () => {
    await t.call('POST', '/v1/accounts/idem-2/grants', { body: { amount: 10 } })
    const h1 = await t.call<{ id: string }>('POST', '/v1/accounts/idem-2/holds', {
      body: { amount: 4 },
      headers: { 'idempotency-key': 'hold-1' },
    })
    const h2 = await t.call<{ id: string }>('POST', '/v1/accounts/idem-2/holds', {
      body: { amount: 4 },
      headers: { 'idempotency-key': 'hold-1' },
    })
    expect(h2.headers['idempotent-replayed']).toBe('true')
    expect(h2.body.id).toBe(h1.body.id)
    const c1 = await t.call('POST', `/v1/holds/${h1.body.id}/commit`, {
      body: {},
      headers: { 'idempotency-key': 'commit-1' },
    })
    const c2 = await t.call('POST', `/v1/holds/${h1.body.id}/commit`, {
      body: {},
      headers: { 'idempotency-key': 'commit-1' },
    })
    expect(c1.status).toBe(200)
    expect(c2.status).toBe(200)
    expect(c2.headers['idempotent-replayed']).toBe('true')

    const codes1 = await t.call<{ codes: string[]; batchId: string }>('POST', '/v1/codes', {
      body: { credits: 1, count: 2 },
      headers: { 'idempotency-key': 'codes-1' },
    })
    const codes2 = await t.call<{ codes: string[]; batchId: string }>('POST', '/v1/codes', {
      body: { credits: 1, count: 2 },
      headers: { 'idempotency-key': 'codes-1' },
    })
    expect(codes1.body.codes).toHaveLength(2)
    expect(codes2.headers['idempotent-replayed']).toBe('true')
    expect(codes2.body.codes).toEqual([])
    expect(codes2.body.batchId).toBe(codes1.body.batchId)
  })

  it('refuses malformed and reserved keys, naming the header', async () => {
    const long = await t.call('POST', '/v1/accounts/idem-3/grants', {
      body: { amount: 1 },
      headers: { 'idempotency-key': 'x'.repeat(256) },
    })
    expect(long.status).toBe(400)
    expect(long.body).toMatchObject({ code: 'invalid_input', field: 'Idempotency-Key' })
    const reserved = await t.call('POST', '/v1/accounts/idem-3/grants', {
      body: { amount: 1 },
      headers: { 'idempotency-key': 'tg-retry:abc' },
    })
    expect(reserved.status).toBe(400)
    expect(reserved.body).toMatchObject({ field: 'Idempotency-Key' })
  })
})

describe('input errors', () => {
  const cases: [string, string, CallBody, string][] = [
    ['malformed JSON', '/v1/accounts/bad/grants', { raw: '{"amount": 1,' }, 'body'],
    ['a JSON array', '/v1/accounts/bad/grants', { raw: '[1]' }, 'body'],
    ['a wrong type', '/v1/accounts/bad/grants', { body: { amount: '5' } }, 'amount'],
    ['a fraction', '/v1/accounts/bad/debits', { body: { amount: 1.5 } }, 'amount'],
    ['a negative amount', '/v1/accounts/bad/holds', { body: { amount: -1 } }, 'amount'],
    ['a missing field', '/v1/accounts/bad/grants', { body: {} }, 'amount'],
    [
      'an unknown field',
      '/v1/accounts/bad/grants',
      { body: { amount: 1, colour: 'red' } },
      'colour',
    ],
    [
      'a nested unknown field',
      '/v1/accounts/bad/cycle',
      { body: { amount: 1, every: { days: 2, hours: 1 } } },
      'every',
    ],
    [
      'a bad enum',
      '/v1/accounts/bad/grants',
      { body: { amount: 1, category: 'free' } },
      'category',
    ],
    [
      'both expiries',
      '/v1/accounts/bad/grants',
      { body: { amount: 1, expiresAt: 4e12, validityDays: 2 } },
      'validityDays',
    ],
    [
      'the body in the field list',
      '/v1/accounts/bad/holds',
      { body: { amount: 1, ttlMs: 10 } },
      'ttlMs',
    ],
    ['__proto__', '/v1/accounts/bad/grants', { raw: '{"amount":1,"__proto__":{"x":1}}' }, 'body'],
  ]
  type CallBody = { body?: unknown; raw?: string }
  it.each(cases)('%s → 400 naming the field', async (_name, path, body, field) => {
    const method = path.endsWith('/cycle') ? 'PUT' : 'POST'
    const res = await t.call(method, path, body)
    expect(res.status).toBe(400)
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
    expect(res.body).toMatchObject({ code: 'invalid_input', status: 400 })
    expect(String((res.body as { field: string }).field)).toContain(field)
  })

  it('query and path errors name the parameter', async () => {
    const q = await t.call('GET', '/v1/accounts/bad/ledger?limit=0')
    expect(q.body).toMatchObject({ code: 'invalid_input', field: 'limit' })
    const types = await t.call('GET', '/v1/accounts/bad/ledger?types=grant,nope')
    expect(types.body).toMatchObject({ field: 'types' })
    const unknown = await t.call('GET', '/v1/accounts/bad/ledger?colour=red')
    expect(unknown.body).toMatchObject({ field: 'colour' })
    const account = await t.call('GET', `/v1/accounts/${'a'.repeat(201)}/balance`)
    expect(account.status).toBe(400)
    expect(account.body).toMatchObject({ field: 'account' })
  })

  it('a body over the limit is 413 problem+json', async () => {
    const res = await t.call('POST', '/v1/accounts/big/grants', {
      body: { amount: 1, metadata: { blob: 'x'.repeat(5_000) } },
    })
    expect(res.status).toBe(413)
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
    expect(res.body).toMatchObject({ status: 413, field: 'body' })
  })

  it('a body that is not JSON is 415', async () => {
    const res = await t.call('POST', '/v1/accounts/big/grants', {
      raw: 'amount=1',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    })
    expect(res.status).toBe(415)
    expect(res.body).toMatchObject({ code: 'invalid_input' })
  })

  it('unknown routes are 404 problem+json', async () => {
    const res = await t.call('GET', '/v1/nothing-here')
    expect(res.status).toBe(404)
    expect(res.body).toMatchObject({ code: 'not_found' })
  })
})

describe('health', () => {
  it('/healthz and /readyz answer without a key', async () => {
    const h = await t.call('GET', '/healthz', { key: null })
    expect(h.status).toBe(200)
    expect(h.body).toEqual({ status: 'ok' })
    const r = await t.call('GET', '/readyz', { key: null })
    expect(r.status).toBe(200)
  })
})
