import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createMeter, type LedgerEntry, memoryStore, type Store } from '@tollgate/core'
import { pgliteStore, postgresStore } from '@tollgate/postgres'
import { Client } from 'undici'
import { afterAll, describe, expect, it } from 'vitest'
import { createServer } from './server.js'
import { call, fakeClock, startServer } from './test-support.js'

/** Every entry of an account, oldest first. */
async function replay(store: Store, tenant: string, account: string) {
  const meter = createMeter({ store, tenant, cache: false })
  const entries: LedgerEntry[] = []
  let cursor: string | undefined
  do {
    const page = await meter.ledger(account, { limit: 1000, cursor })
    entries.push(...page.entries)
    cursor = page.nextCursor ?? undefined
  } while (cursor)
  entries.reverse()
  const net = entries.reduce((sum, e) => sum + e.delta, 0)
  const held = entries.reduce((sum, e) => sum + e.heldDelta, 0)
  const balance = await meter.balance(account, { fresh: true })
  return { entries, net, held, balance }
}

describe('graceful shutdown', () => {
  it('finishes every in-flight request, refuses new ones, closes the store once', async () => {
    const inner = memoryStore()
    let arrived = 0
    let open!: () => void
    const gate = new Promise<void>((resolve) => {
      open = resolve
    })
    let closes = 0
    // A store that holds operations until the gate opens, so they are surely in flight.
    const store: Store = {
      kind: 'gated',
      keys: inner.keys,
      async execute(request) {
        if (request.op.type === 'debit') {
          arrived++
          await gate
        }
        return inner.execute(request)
      },
      ledger: (...a) => inner.ledger(...a),
      createCodes: (...a) => inner.createCodes(...a),
      // Only /readyz asks (the sweeper is off): a readiness probe in flight during shutdown.
      async dueAccounts(...a) {
        arrived++
        await gate
        return inner.dueAccounts(...a)
      },
      prune: (...a) => inner.prune(...a),
      async close() {
        closes++
      },
    }
    const t = await startServer({ store })
    await t.call('POST', '/v1/accounts/busy/grants', { body: { amount: 1_000 } })

    const n = 40
    const inFlight = Array.from({ length: n }, (_, i) =>
      t.call('POST', '/v1/accounts/busy/debits', {
        body: { amount: 1 },
        headers: { 'idempotency-key': `shutdown-${i}` },
      }),
    )
    // One more pipelined on a kept-alive connection behind a debit.
    const client = new Client(t.url, { pipelining: 2 })
    const headers = { authorization: `Bearer ${t.adminKey}`, 'content-type': 'application/json' }
    const pipelinedDebit = client.request({
      method: 'POST',
      path: '/v1/accounts/busy/debits',
      headers,
      body: JSON.stringify({ amount: 1 }),
    })
    const probe = t.call('GET', '/readyz', { key: null })
    while (arrived < n + 2) await new Promise((r) => setTimeout(r, 5))

    const closing = t.server.close()
    await new Promise((r) => setTimeout(r, 50))
    // Nothing new gets in: the listening socket is closed.
    const fresh = new Client(t.url, { connectTimeout: 1_000 })
    const refused = await fresh.request({ method: 'GET', path: '/healthz' }).catch((e: Error) => e)
    open()
    // The probe that was in flight when the shutdown began reports not ready.
    expect((await probe).status).toBe(503)
    expect(refused).toBeInstanceOf(Error)
    await fresh.close()

    const answers = await Promise.all(inFlight)
    expect(answers.map((a) => a.status)).toEqual(Array(n).fill(200))
    expect((await pipelinedDebit).statusCode).toBe(200)
    await closing
    await client.close()
    expect(closes).toBe(1)
    await t.server.close() // idempotent
    expect(closes).toBe(1)

    // The ledger replays to the balance: every acknowledged debit is in it, once.
    const r = await replay(inner, 'default', 'busy')
    expect(r.entries.filter((e) => e.type === 'debit')).toHaveLength(n + 1)
    expect(r.net).toBe(r.balance.total - r.balance.debt)
    expect(r.balance.available).toBe(1_000 - n - 1)
  })
})

describe('sweeper', () => {
  it('periodically releases an expired hold', async () => {
    const clock = fakeClock()
    const t = await startServer({ clock: clock.now, sweepIntervalMs: 20 })
    try {
      const acme = await t.createKey('acme')
      await t.call('POST', '/v1/accounts/sleepy/grants', { key: acme.key, body: { amount: 10 } })
      const hold = await t.call<{ id: string }>('POST', '/v1/accounts/sleepy/holds', {
        key: acme.key,
        body: { amount: 4, ttlMs: 1_000 },
      })
      expect(hold.status).toBe(201)
      clock.advance(5_000)
      // Reading the ledger touches no account: only the sweeper can write the release.
      let entries: LedgerEntry[] = []
      for (let i = 0; i < 200; i++) {
        const res = await t.call<{ entries: LedgerEntry[] }>('GET', '/v1/accounts/sleepy/ledger', {
          key: acme.key,
        })
        entries = res.body.entries
        if (entries[0]?.type === 'release') break
        await new Promise((r) => setTimeout(r, 10))
      }
      expect(entries[0]).toMatchObject({
        type: 'release',
        reason: 'hold_ttl',
        holdId: hold.body.id,
      })
    } finally {
      await t.close()
    }
  })
})

/** The restart, readiness and route smoke, on any persistent store. */
async function persistence(makeStore: () => Store) {
  const first = createServer({ store: makeStore(), logger: false, sweepIntervalMs: 0 })
  const started = await first.listen({ port: 0 })
  expect(started.adminKey).toMatch(/^tg_sk_/)
  const admin = started.adminKey!
  const created = await call<{ id: string; key: string }>(started.url, admin, 'POST', '/v1/keys', {
    body: { tenant: 'acme', name: 'app' },
  })
  const doomed = await call<{ id: string; key: string }>(started.url, admin, 'POST', '/v1/keys', {
    body: { tenant: 'acme' },
  })
  await call(started.url, admin, 'DELETE', `/v1/keys/${doomed.body.id}`)
  const key = created.body.key
  const grant = await call(started.url, key, 'POST', '/v1/accounts/kept/grants', {
    body: { amount: 30 },
  })
  expect(grant.status).toBe(201)
  const hold = await call<{ id: string }>(started.url, key, 'POST', '/v1/accounts/kept/holds', {
    body: { amount: 5 },
  })
  expect(hold.status).toBe(201)
  await first.close()

  const store = makeStore()
  const second = createServer({ store, logger: false, sweepIntervalMs: 0 })
  try {
    const again = await second.listen({ port: 0 })
    // Shown once: the admin key from the first start is stored and still works.
    expect(again.adminKey).toBeNull()
    const list = await call<{ keys: { id: string; revokedAt: number | null }[] }>(
      again.url,
      admin,
      'GET',
      '/v1/keys?tenant=acme',
    )
    expect(list.status).toBe(200)
    expect(list.body.keys.find((k) => k.id === doomed.body.id)?.revokedAt).toEqual(
      expect.any(Number),
    )
    const commit = await call(again.url, key, 'POST', `/v1/holds/${hold.body.id}/commit`, {
      body: { actual: 2 },
    })
    expect(commit.status).toBe(200)
    const balance = await call(again.url, key, 'GET', '/v1/accounts/kept/balance')
    expect(balance.body).toMatchObject({ total: 28, available: 28 })
    expect(
      (await call(again.url, doomed.body.key, 'GET', '/v1/accounts/kept/balance')).status,
    ).toBe(401)
    expect((await call(again.url, null, 'GET', '/readyz')).status).toBe(200)
    // The store going away makes the server unready (and operations 503), not dead.
    await store.close()
    const ready = await call(again.url, null, 'GET', '/readyz')
    expect(ready.status).toBe(503)
    expect((await call(again.url, null, 'GET', '/healthz')).status).toBe(200)
    const down = await call(again.url, key, 'GET', '/v1/accounts/kept/balance')
    expect(down.status).toBe(503)
    expect(down.body).toMatchObject({ code: 'store_unavailable' })
  } finally {
    await second.close()
  }
}

describe('persistence across restarts', () => {
  const dirs: string[] = []
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  })

  it('keys, revocations and credits survive a restart on file-backed PGlite', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-server-'))
    dirs.push(dir)
    await persistence(() => pgliteStore({ dataDir: dir }))
  }, 30_000)

  it('a configured admin key is registered once and never returned', async () => {
    const adminKey = `tg_sk_configured01_${randomBytes(24).toString('base64url')}`
    const t = await startServer({ adminKey })
    try {
      const list = await t.call<{ keys: { id: string; role: string }[] }>('GET', '/v1/keys')
      expect(list.body.keys).toEqual([
        expect.objectContaining({ id: 'configured01', role: 'admin' }),
      ])
    } finally {
      await t.close()
    }
    expect(() => createServer({ store: memoryStore(), adminKey: 'secret', logger: false })).toThrow(
      /adminKey/,
    )
  })
})

// Set by the global setup (scripts/test-database.mjs) when the default local server answers.
const url = process.env.TOLLGATE_TEST_DATABASE_URL
if (!url && process.env.CI) {
  describe('PostgreSQL', () => {
    it('needs TOLLGATE_TEST_DATABASE_URL in CI', () => {
      expect.fail('TOLLGATE_TEST_DATABASE_URL is not set; .ci/run sets it to the local server')
    })
  })
} else if (!url) {
  console.warn(
    'SKIPPED: server PostgreSQL tests (no PostgreSQL answered at the default address and TOLLGATE_TEST_DATABASE_URL is unset)',
  )
}

describe.runIf(url)('PostgreSQL', () => {
  const schema = `tg_server_${process.pid}_${randomBytes(3).toString('hex')}`
  afterAll(async () => {
    const pg = await import('pg')
    const client = new pg.default.Client({ connectionString: url })
    await client.connect()
    try {
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    } finally {
      await client.end()
    }
  })

  it('keys persist and routes work on postgresStore', async () => {
    await persistence(() => postgresStore({ connectionString: url!, schema }))
  }, 30_000)
})
