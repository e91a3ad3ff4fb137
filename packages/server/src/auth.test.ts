import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { logCapture, startServer, type TestServer } from './test-support.js'

let t: TestServer
let acme: { id: string; key: string }
let globex: { id: string; key: string }
const logs = logCapture()

beforeAll(async () => {
  t = await startServer({
    logger: { level: 'trace', stream: logs.stream },
    redeemLimit: { accountFailuresPerMinute: 4, failingAccountsPerMinute: 2 },
    meter: { redeemAttempts: { max: 2 } },
  })
  acme = await t.createKey('acme')
  globex = await t.createKey('globex')
  await t.call('POST', '/v1/accounts/alice/grants', { key: acme.key, body: { amount: 100 } })
})
afterAll(() => t.close())

describe('authentication', () => {
  it('missing, malformed, unknown, wrong-secret, revoked and wrong-tenant keys get one 401', async () => {
    const revoked = await t.createKey('acme')
    const revoke = await t.call('DELETE', `/v1/keys/${revoked.id}`)
    expect(revoke.status).toBe(200)
    const wrongSecret = `tg_sk_${acme.id}_${'A'.repeat(43)}`
    const unknown = `tg_sk_${'q'.repeat(16)}_${'B'.repeat(43)}`
    const attempts: { key: string | null; headers?: Record<string, string> }[] = [
      { key: null },
      { key: 'not-a-key' },
      { key: `${acme.key}x!` },
      { key: unknown },
      { key: wrongSecret },
      { key: revoked.key },
      { key: acme.key, headers: { 'tollgate-tenant': 'globex' } },
      { key: null, headers: { authorization: acme.key } }, // no Bearer scheme
      { key: null, headers: { authorization: `Basic ${acme.key}` } },
    ]
    // One request id for all: it is the only part of an answer the request chooses.
    const sameId = { 'x-request-id': 'auth-probe' }
    const answers = await Promise.all(
      attempts.map((a) =>
        t.call('GET', '/v1/accounts/alice/balance', {
          key: a.key,
          headers: { ...a.headers, ...sameId },
        }),
      ),
    )
    for (const res of answers) {
      expect(res.status).toBe(401)
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
      expect(res.text).toBe(answers[0]!.text)
    }
    expect(answers[0]!.body).toEqual({
      type: 'https://tollgate.dev/problems/auth',
      title: 'Authentication failed',
      status: 401,
      detail: 'invalid or missing API key',
      code: 'auth',
      requestId: 'auth-probe',
    })
    // 401 comes before the body is even read: no validation hints either.
    const bad = await t.call('POST', '/v1/accounts/alice/grants', {
      key: unknown,
      body: { x: 1 },
      headers: sameId,
    })
    expect(bad.text).toBe(answers[0]!.text)
    // The store protocol is guarded the same way.
    const store = await t.call('POST', '/v1/store/due', {
      key: wrongSecret,
      body: { now: 0, limit: 1 },
      headers: sameId,
    })
    expect(store.text).toBe(answers[0]!.text)
  })

  it('revocation through this server takes effect at once, despite the key cache', async () => {
    const k = await t.createKey('acme')
    expect((await t.call('GET', '/v1/accounts/alice/balance', { key: k.key })).status).toBe(200)
    expect((await t.call('DELETE', `/v1/keys/${k.id}`)).status).toBe(200)
    expect((await t.call('GET', '/v1/accounts/alice/balance', { key: k.key })).status).toBe(401)
    const twice = await t.call('DELETE', `/v1/keys/${k.id}`)
    expect(twice.status).toBe(404)
    expect(twice.body).toMatchObject({ code: 'not_found' })
  })

  it('tenant keys cannot use the admin API and learn nothing from it', async () => {
    const sameId = { 'x-request-id': 'admin-probe' }
    const unauth = await t.call('GET', '/v1/accounts/alice/balance', { key: null, headers: sameId })
    for (const [method, path, body] of [
      ['GET', '/v1/keys', undefined],
      ['POST', '/v1/keys', { tenant: 'acme', role: 'admin' }],
      ['DELETE', `/v1/keys/${globex.id}`, undefined],
    ] as const) {
      const res = await t.call(method, path, { key: acme.key, body, headers: sameId })
      expect(res.status).toBe(401)
      expect(res.text).toBe(unauth.text)
    }
    // globex's key still works: the DELETE above did nothing.
    expect((await t.call('GET', '/v1/accounts/x/balance', { key: globex.key })).status).toBe(200)
  })
})

describe('tenants', () => {
  it('a tenant sees only its own accounts and ledgers', async () => {
    const mine = await t.call('GET', '/v1/accounts/alice/balance', { key: acme.key })
    expect(mine.body).toMatchObject({ available: 100 })
    const theirs = await t.call('GET', '/v1/accounts/alice/balance', { key: globex.key })
    expect(theirs.status).toBe(200)
    expect(theirs.body).toMatchObject({ total: 0, available: 0, buckets: [] })
    const ledger = await t.call('GET', '/v1/accounts/alice/ledger', { key: globex.key })
    expect(ledger.body).toEqual({ entries: [], nextCursor: null })
  })

  it("another tenant's hold does not exist: read, commit, release, extend and increase are 404", async () => {
    const hold = await t.call<{ id: string }>('POST', '/v1/accounts/alice/holds', {
      key: acme.key,
      body: { amount: 10 },
    })
    expect(hold.status).toBe(201)
    const id = hold.body.id
    const nonexistent = await t.call('POST', '/v1/holds/hld_doesnotexist/commit', {
      key: globex.key,
      body: {},
    })
    for (const [action, body] of [
      ['commit', {}],
      ['release', {}],
      ['extend', { ttlMs: 60_000 }],
      ['increase', { amount: 1 }],
      ['commit', { actual: 1 }],
    ] as const) {
      const res = await t.call('POST', `/v1/holds/${id}/${action}`, { key: globex.key, body })
      expect(res.status).toBe(404)
      // Alike but for the hold id and the request's own id.
      expect({ ...(res.body as object), id: 'x', requestId: 'x' }).toEqual({
        ...(nonexistent.body as object),
        id: 'x',
        requestId: 'x',
      })
      expect(res.text).not.toContain('alice')
    }
    // Untouched for its owner.
    const mine = await t.call('POST', `/v1/holds/${id}/commit`, {
      key: acme.key,
      body: { actual: 3 },
    })
    expect(mine.status).toBe(200)
    expect(mine.body).toMatchObject({ charged: 3 })
  })

  it('Tollgate-Tenant: admin keys act for any tenant; tenant keys only for their own', async () => {
    const asAcme = await t.call('GET', '/v1/accounts/alice/balance', {
      headers: { 'tollgate-tenant': 'acme' },
    })
    expect(asAcme.status).toBe(200)
    expect(asAcme.body).toMatchObject({ total: 97 })
    // Without the header an admin key acts on `default`.
    const asDefault = await t.call('GET', '/v1/accounts/alice/balance')
    expect(asDefault.body).toMatchObject({ total: 0 })
    const own = await t.call('GET', '/v1/accounts/alice/balance', {
      key: acme.key,
      headers: { 'tollgate-tenant': 'acme' },
    })
    expect(own.status).toBe(200)
    const other = await t.call('GET', '/v1/accounts/alice/balance', {
      key: acme.key,
      headers: { 'tollgate-tenant': 'globex' },
    })
    expect(other.status).toBe(401)
    const malformed = await t.call('GET', '/v1/accounts/alice/balance', {
      headers: { 'tollgate-tenant': 'x'.repeat(300) },
    })
    expect(malformed.status).toBe(400)
    expect(malformed.body).toMatchObject({ field: 'Tollgate-Tenant' })
  })

  it('admin keys created for a tenant can be listed by tenant; lists never show keys', async () => {
    const admin2 = await t.createKey('ops', 'admin')
    const asAdmin2 = await t.call('GET', '/v1/keys?tenant=acme', { key: admin2.key })
    expect(asAdmin2.status).toBe(200)
    const list = asAdmin2.body as { keys: Record<string, unknown>[] }
    expect(list.keys.length).toBeGreaterThanOrEqual(3)
    for (const k of list.keys) {
      expect(k.tenant).toBe('acme')
      expect(Object.keys(k).sort()).toEqual(
        ['createdAt', 'id', 'name', 'revokedAt', 'role', 'tenant'].sort(),
      )
    }
    const all = await t.call('GET', '/v1/keys')
    for (const secret of [acme.key, globex.key, admin2.key, t.adminKey]) {
      expect(all.text).not.toContain(secret)
      expect(all.text).not.toContain(secret.slice(-20))
    }
  })
})

describe('redeem brute force', () => {
  it('the engine limits failures per account: 429 with Retry-After', async () => {
    const guess = (account: string) =>
      t.call('POST', `/v1/accounts/${account}/redemptions`, {
        key: globex.key,
        body: { code: 'TG-0000-0000-0000-0' },
      })
    const first = await guess('mallory')
    expect(first.status).toBe(400)
    await guess('mallory')
    const limited = await guess('mallory')
    expect(limited.status).toBe(429)
    expect(limited.body).toMatchObject({ code: 'rate_limited' })
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0)
  })

  it('many failing accounts are stopped at their first failure; correct codes still pass', async () => {
    // globex has one failing account (mallory, above); the tenant allows 2 per minute.
    const guess = (account: string, i: number) =>
      t.call('POST', `/v1/accounts/${account}/redemptions`, {
        key: globex.key,
        body: { code: `TG-${String(i).padStart(4, '0')}-0000-0000-0` },
      })
    expect((await guess('sybil-0', 0)).status).toBe(400)
    // Over the tenant's limit now: a new failing account gets one failure, then 429.
    expect((await guess('sybil-1', 1)).status).toBe(400)
    const limited = await guess('sybil-1', 2)
    expect(limited.status).toBe(429)
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0)
    expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60)
    // An account that failed before the tenant went over keeps its own allowance.
    expect((await guess('sybil-0', 3)).status).toBe(400)
    // A user with a good code is never refused, in this tenant or another.
    for (const [key, account] of [
      [globex.key, 'carol'],
      [acme.key, 'bob'],
    ] as const) {
      const codes = await t.call<{ codes: string[] }>('POST', '/v1/codes', {
        key,
        body: { credits: 5, count: 1 },
      })
      const ok = await t.call('POST', `/v1/accounts/${account}/redemptions`, {
        key,
        body: { code: codes.body.codes[0] },
      })
      expect(ok.status).toBe(201)
    }
  })
})

describe('logs', () => {
  it('never contain keys or codes', async () => {
    const codes = await t.call<{ codes: string[] }>('POST', '/v1/codes', {
      key: acme.key,
      body: { credits: 5, count: 3 },
    })
    await t.call('POST', '/v1/accounts/carol/redemptions', {
      key: acme.key,
      body: { code: codes.body.codes[0] },
    })
    // A code with a typo and one sent to a wrong route, both logged as errors, if at all.
    await t.call('POST', '/v1/accounts/carol/redemptions', {
      key: acme.key,
      body: { code: `${codes.body.codes[1]!.slice(0, -1)}Z` },
    })
    await t.call('POST', '/v1/accounts/carol/grants', {
      key: acme.key,
      body: { code: codes.body.codes[2] },
    })
    await t.call('GET', '/v1/accounts/carol/balance', { key: `${acme.key}-wrong` })
    const text = logs.text()
    expect(text).toContain('incoming request')
    const secrets = [t.adminKey, acme.key, globex.key, ...codes.body.codes]
    for (const secret of secrets) {
      expect(text).not.toContain(secret)
      expect(text).not.toContain(secret.slice(-16))
    }
    expect(text).not.toMatch(/tg_sk_[0-9a-z]+_[A-Za-z0-9_-]{16}/)
  })
})
