/**
 * `POST /v1/store/batch` over real sockets: operations that waited together in one client run
 * together on the server's store, each answered on its own. One bad operation fails alone, an
 * operation past its own deadline fails alone, a retried batch replays under its transport keys,
 * and tenants and accounts mix in one request.
 */
import { randomBytes } from 'node:crypto'
import { createMeter, httpStore, memoryStore, type Store } from '@tollgate/core'
import {
  MAX_BATCH_OPERATIONS,
  PROBLEM_CONTENT_TYPE,
  type ProblemDetails,
  type WireOutcome,
} from '@tollgate/core/protocol'
import { postgresStore } from '@tollgate/postgres'
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { createServer, type TollgateServer } from './server.js'
import { serversPerTest, type TestServer, wireConfig, wireGrant } from './test-support.js'

const config = wireConfig
const grant = wireGrant
const item = (account: string | null, op: Record<string, unknown>, extra = {}) => ({
  tenant: null,
  account,
  op,
  now: Date.now(),
  config,
  ...extra,
})

type Answer = { outcome?: WireOutcome; problem?: ProblemDetails }

const { started } = serversPerTest()

const batch = (t: TestServer, items: unknown[], key?: string) =>
  t.call<{ outcomes: Answer[] }>('POST', '/v1/store/batch', {
    body: { items },
    ...(key === undefined ? {} : { key }),
  })

describe('store batch route', () => {
  it('one bad operation fails alone: the others of its batch run', async () => {
    const t = await started()
    const res = await batch(t, [
      item('a', grant(10)),
      item('a', { ...grant(10), amount: -1 }),
      item(null, { type: 'commit', holdId: 'hld_missing', metadata: {} }),
      item('a', { type: 'release', holdId: 'hld_x', metadata: {} }),
      item('b', grant(5)),
      'not an object',
    ])
    expect(res.status).toBe(200)
    const [ok, malformed, unknownHold, misaddressed, other, junk] = res.body.outcomes
    expect(ok!.outcome!.error).toBeNull()
    expect(malformed!.problem).toMatchObject({
      status: 400,
      code: 'invalid_input',
      field: 'op.amount',
    })
    // A domain error is the operation's outcome, as on /v1/store/execute.
    expect(unknownHold!.outcome!.error).toMatchObject({ code: 'not_found' })
    expect(misaddressed!.problem).toMatchObject({ status: 400, field: 'account' })
    expect(other!.outcome!.error).toBeNull()
    expect(junk!.problem).toMatchObject({ status: 400, field: 'item' })
    const balance = await t.call<{ total: number }>('GET', '/v1/accounts/a/balance')
    expect(balance.body.total).toBe(10)
  })

  it('a retried batch replays under its transport keys: nothing applies twice', async () => {
    const t = await started()
    const key = `tg-retry:${randomBytes(8).toString('hex')}`
    const items = [item('r', grant(7, key)), item('s', grant(1))]
    const first = await batch(t, items)
    // The second item has no key: sent again, it is a new grant (httpStore always keys them).
    const second = await batch(t, items)
    expect(first.body.outcomes[0]!.outcome!.replayed).toBe(false)
    expect(second.body.outcomes[0]!.outcome!.replayed).toBe(true)
    const grantId = (a: Answer) => (a.outcome!.result as { id?: string } | null)?.id
    expect(grantId(first.body.outcomes[0]!)).toMatch(/./)
    expect(grantId(second.body.outcomes[0]!)).toBe(grantId(first.body.outcomes[0]!))
    const balance = await t.call<{ total: number }>('GET', '/v1/accounts/r/balance')
    expect(balance.body.total).toBe(7)
    // A transport key dedupes but never shows in the ledger.
    const ledger = await t.call<{ entries: { idempotencyKey?: string }[] }>(
      'GET',
      '/v1/accounts/r/ledger',
    )
    expect(ledger.body.entries.map((e) => e.idempotencyKey)).toEqual([undefined])
  })

  it('a body over the limit is 413 problem+json; too many items or none is 400', async () => {
    const t = await started({ bodyLimit: 4_096 })
    const big = await batch(
      t,
      Array.from({ length: 20 }, (_, i) => item(`a${i}`, grant(1))),
    )
    expect(big.status).toBe(413)
    expect(big.headers['content-type']).toContain(PROBLEM_CONTENT_TYPE)
    expect(big.body).toMatchObject({ code: 'invalid_input', field: 'body' })
    const many = await batch(
      t,
      Array.from({ length: MAX_BATCH_OPERATIONS + 1 }, () => 0),
    )
    expect(many.status).toBe(400)
    expect(many.body).toMatchObject({ code: 'invalid_input', field: 'items' })
    const none = await batch(t, [])
    expect(none.status).toBe(400)
    expect(none.body).toMatchObject({ field: 'items' })
  })

  it('a tenant key acts on its own tenant only, item by item', async () => {
    const t = await started()
    const { key } = await t.createKey('acme')
    const res = await batch(
      t,
      [
        item('a', grant(3)),
        item('a', grant(4), { tenant: 'acme' }),
        item('a', grant(5), { tenant: 'globex' }),
      ],
      key,
    )
    expect(res.status).toBe(200)
    const [own, named, other] = res.body.outcomes
    expect(own!.outcome!.error).toBeNull()
    expect(named!.outcome!.error).toBeNull()
    expect(other!.problem).toMatchObject({ status: 401, code: 'auth' })
    const acme = await t.call<{ total: number }>('GET', '/v1/accounts/a/balance', {
      headers: { 'tollgate-tenant': 'acme' },
    })
    expect(acme.body.total).toBe(7)
    const globex = await t.call<{ total: number }>('GET', '/v1/accounts/a/balance', {
      headers: { 'tollgate-tenant': 'globex' },
    })
    expect(globex.body.total).toBe(0)
  })
})

describe('httpStore batches against the server', () => {
  let server: TollgateServer | undefined
  const stores: Store[] = []
  afterAll(async () => {
    for (const s of stores) await s.close()
    await server?.close()
  })

  it('mixed tenants and accounts issued together travel in one request, each on its own ledger', async () => {
    const paths: string[] = []
    server = createServer({ store: memoryStore(), logger: false, sweepIntervalMs: 0 })
    server.fastify.addHook('onRequest', async (request) => {
      paths.push(request.url)
    })
    const { url, adminKey } = await server.listen({ port: 0, host: '127.0.0.1' })
    const store = httpStore({ url, apiKey: adminKey! })
    stores.push(store)
    const meters = ['default', 'acme', 'globex'].map((tenant) =>
      createMeter({ store, tenant, cache: false }),
    )
    await Promise.all(
      meters.flatMap((m, i) => ['x', 'y'].map((account, j) => m.grant(account, 10 * (i + 1) + j))),
    )
    expect(paths).toEqual(['/v1/store/batch'])
    for (const [i, m] of meters.entries()) {
      expect((await m.balance('x')).total).toBe(10 * (i + 1))
      expect((await m.balance('y')).total).toBe(10 * (i + 1) + 1)
    }
    // Holds and their settlement, all at once across tenants.
    const holds = await Promise.all(meters.map((m) => m.reserve('x', 4)))
    await Promise.all(holds.map((h) => h.commit(3)))
    for (const [i, m] of meters.entries()) {
      expect((await m.balance('x')).available).toBe(10 * (i + 1) - 3)
    }
  })
})

const DATABASE_URL = process.env.TOLLGATE_TEST_DATABASE_URL
if (!DATABASE_URL) {
  console.warn('SKIPPED: batch deadlines on PostgreSQL (no PostgreSQL answered)')
}

describe.skipIf(!DATABASE_URL)('store batch route on PostgreSQL: deadlines', () => {
  const schema = `tg_batch_${process.pid}_${randomBytes(4).toString('hex')}`
  const sql = new pg.Client({ connectionString: DATABASE_URL })
  afterAll(async () => {
    await sql.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {})
    await sql.end()
  })

  it('an operation whose deadline passes (its row locked elsewhere) fails alone with 503; the rest of its batch runs', async () => {
    await sql.connect()
    const t = await started({
      store: postgresStore({ connectionString: DATABASE_URL!, schema }),
    })
    const seed = await batch(t, [item('locked', grant(100)), item('free', grant(100))])
    expect(seed.body.outcomes.every((o) => o.outcome?.error === null)).toBe(true)
    await sql.query('BEGIN')
    await sql.query(
      `SELECT 1 FROM "${schema}".accounts WHERE tenant = 'default' AND account = 'locked' FOR UPDATE`,
    )
    let res: Awaited<ReturnType<typeof batch>>
    try {
      res = await batch(t, [
        item('locked', { type: 'debit', amount: 1, metadata: {} }, { timeoutMs: 300 }),
        item('free', { type: 'debit', amount: 1, metadata: {} }),
      ])
    } finally {
      await sql.query('ROLLBACK')
    }
    expect(res.status).toBe(200)
    const [late, onTime] = res.body.outcomes
    expect(late!.problem).toMatchObject({ status: 503, code: 'store_unavailable' })
    expect(onTime!.outcome!.error).toBeNull()
    // Nothing was applied after the operation's deadline.
    const locked = await t.call<{ total: number }>('GET', '/v1/accounts/locked/balance')
    expect(locked.body.total).toBe(100)
    const free = await t.call<{ total: number }>('GET', '/v1/accounts/free/balance')
    expect(free.body.total).toBe(99)
  })
})
