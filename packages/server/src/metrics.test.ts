/**
 * `GET /metrics` over real sockets: known traffic, then a scrape whose Prometheus text is parsed
 * and held to exact counts; who may scrape; one registry per server; and the group-commit
 * histogram against the SQL store's own figures, on PGlite and PostgreSQL.
 */
import type { PostgresStore } from '@tollgate/postgres'
import { describe, expect, it } from 'vitest'
import { createServer } from './server.js'
import {
  describeSqlStores,
  serversPerTest,
  startReceiver,
  type TestServer,
  wireConfig,
  wireGrant,
} from './test-support.js'

const { started, closeLater } = serversPerTest()

/** Samples of a Prometheus text exposition, by `name{label="value",…}` with labels sorted. */
type Samples = Map<string, number>

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

function parseMetrics(text: string): Samples {
  const samples: Samples = new Map()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = SAMPLE.exec(line)
    if (m === null) throw new Error(`not a sample line: ${line}`)
    const labels = [...(m[2] ?? '').matchAll(LABEL)].map(([, k, v]) => `${k}="${v}"`).sort()
    samples.set(labels.length === 0 ? m[1]! : `${m[1]}{${labels.join(',')}}`, Number(m[3]))
  }
  return samples
}

/** A sample's value; 0 when absent (a counter that never moved has no labelled series). */
function value(samples: Samples, name: string, labels: Record<string, string> = {}): number {
  const parts = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
  return samples.get(parts.length === 0 ? name : `${name}{${parts.join(',')}}`) ?? 0
}

/** The sum of every series of `name` whose labels include `labels`. */
function total(samples: Samples, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  let sum = 0
  for (const [key, v] of samples) {
    if (key !== name && !key.startsWith(`${name}{`)) continue
    if (wanted.every((w) => key.includes(w))) sum += v
  }
  return sum
}

async function scrape(t: TestServer, key: string | null = t.adminKey): Promise<Samples> {
  const res = await t.call('GET', '/metrics', { key })
  expect(res.status).toBe(200)
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/)
  return parseMetrics(res.text)
}

const item = (account: string | null, op: Record<string, unknown>) => ({
  tenant: null,
  account,
  op,
  now: Date.now(),
  config: wireConfig,
})

describe('/metrics', () => {
  it('counts known traffic exactly: requests by route, operations by outcome, refusals', async () => {
    const t = await started()
    for (let i = 0; i < 3; i++) {
      const res = await t.call('POST', '/v1/accounts/alice/grants', { body: { amount: 10 } })
      expect(res.status).toBe(201)
    }
    for (let i = 0; i < 5; i++) {
      const hold = await t.call<{ id: string }>('POST', '/v1/accounts/alice/holds', {
        body: { amount: 2 },
      })
      expect(hold.status).toBe(201)
      const commit = await t.call('POST', `/v1/holds/${hold.body.id}/commit`, { body: {} })
      expect(commit.status).toBe(200)
    }
    for (let i = 0; i < 2; i++) {
      const res = await t.call('POST', '/v1/accounts/alice/debits', { body: { amount: 1_000 } })
      expect(res.status).toBe(402)
    }
    const bad = await t.call('POST', '/v1/accounts/alice/grants', { body: { amount: -1 } })
    expect(bad.status).toBe(400)
    const missing = await t.call('GET', '/no/such/route/42')
    expect(missing.status).toBe(404)
    // The store protocol: a batch of two good items and a malformed one.
    const batch = await t.call<{ outcomes: unknown[] }>('POST', '/v1/store/batch', {
      body: {
        items: [
          item('bob', wireGrant(4)),
          item('bob', { type: 'debit', amount: 9, metadata: {} }),
          'not an item',
        ],
      },
    })
    expect(batch.status).toBe(200)

    const m = await scrape(t)
    const grants = { method: 'POST', route: '/v1/accounts/:account/grants' }
    expect(value(m, 'tollgate_http_requests_total', { ...grants, status: '201' })).toBe(3)
    expect(value(m, 'tollgate_http_requests_total', { ...grants, status: '400' })).toBe(1)
    const commits = { method: 'POST', route: '/v1/holds/:id/commit', status: '200' }
    expect(value(m, 'tollgate_http_requests_total', commits)).toBe(5)
    expect(value(m, 'tollgate_http_request_duration_seconds_count', commits)).toBe(5)
    const debits = { method: 'POST', route: '/v1/accounts/:account/debits', status: '402' }
    expect(value(m, 'tollgate_http_requests_total', debits)).toBe(2)
    // An unknown URL is one series, not one per URL.
    expect(
      value(m, 'tollgate_http_requests_total', {
        method: 'GET',
        route: 'unmatched',
        status: '404',
      }),
    ).toBe(1)
    expect([...m.keys()].some((k) => k.includes('/no/such'))).toBe(false)

    const ops = 'tollgate_ledger_operations_total'
    expect(value(m, ops, { type: 'grant', outcome: 'ok' })).toBe(4)
    expect(value(m, ops, { type: 'reserve', outcome: 'ok' })).toBe(5)
    expect(value(m, ops, { type: 'commit', outcome: 'ok' })).toBe(5)
    expect(value(m, ops, { type: 'debit', outcome: 'insufficient_credits' })).toBe(3)
    // Nothing else ran: the 400 and the malformed item never reached the store.
    expect(total(m, ops)).toBe(17)
    expect(value(m, 'tollgate_refusals_total')).toBe(3)
    expect(total(m, 'tollgate_store_errors_total')).toBe(0)
    // Process metrics are there, namespaced.
    expect(m.has('tollgate_process_cpu_user_seconds_total')).toBe(true)
    // No tenant or account ever becomes a label.
    expect([...m.keys()].some((k) => k.includes('alice') || k.includes('tenant='))).toBe(false)
  })

  it('wants an admin key unless auth is none', async () => {
    const t = await started()
    const { key: tenantKey } = await t.createKey('acme')
    for (const key of [null, 'tg_sk_nope_nope', tenantKey]) {
      const res = await t.call('GET', '/metrics', { key })
      expect(res.status).toBe(401)
      expect(res.headers['content-type']).toMatch(/problem\+json/)
    }
    await scrape(t)

    const open = await started({ metrics: { auth: 'none' } })
    await scrape(open, null)

    const off = await started({ metrics: { enabled: false } })
    expect((await off.call('GET', '/metrics')).status).toBe(404)
  })

  it('reads TOLLGATE_METRICS_AUTH when auth is not given, and refuses a bad value', async () => {
    const before = process.env.TOLLGATE_METRICS_AUTH
    try {
      process.env.TOLLGATE_METRICS_AUTH = 'none'
      const t = await started()
      await scrape(t, null)
      process.env.TOLLGATE_METRICS_AUTH = 'open'
      expect(() => createServer({ store: t.store })).toThrow(/TOLLGATE_METRICS_AUTH/)
      expect(() => createServer({ store: t.store, metrics: { auth: 'x' as 'none' } })).toThrow(
        /metrics\.auth/,
      )
    } finally {
      if (before === undefined) delete process.env.TOLLGATE_METRICS_AUTH
      else process.env.TOLLGATE_METRICS_AUTH = before
    }
  })

  it('keeps two servers in one process apart', async () => {
    const a = await started()
    const b = await started()
    await a.call('POST', '/v1/accounts/x/grants', { body: { amount: 1 } })
    const ops = { type: 'grant', outcome: 'ok' }
    expect(value(await scrape(a), 'tollgate_ledger_operations_total', ops)).toBe(1)
    expect(value(await scrape(b), 'tollgate_ledger_operations_total', ops)).toBe(0)
  })

  it('reports the change feed: up once a stream opened it, changes received', async () => {
    const t = await started()
    expect(value(await scrape(t), 'tollgate_change_feed_up')).toBe(0)
    const controller = new AbortController()
    const res = await fetch(`${t.url}/v1/store/changes`, {
      headers: { authorization: `Bearer ${t.adminKey}` },
      signal: controller.signal,
    })
    try {
      expect(res.status).toBe(200)
      const reader = res.body!.getReader()
      await reader.read() // `ready`
      await t.call('POST', '/v1/accounts/x/grants', { body: { amount: 1 } })
      const m = await scrape(t)
      expect(value(m, 'tollgate_change_feed_up')).toBe(1)
      expect(value(m, 'tollgate_change_feed_streams')).toBe(1)
      expect(value(m, 'tollgate_change_feed_changes_total')).toBeGreaterThanOrEqual(1)
    } finally {
      controller.abort()
    }
  })
})

describe('/metrics webhooks', () => {
  it('counts delivery attempts, failures and lag, and the outbox depth', async () => {
    const r = await startReceiver()
    closeLater(r)
    const t = await started({
      webhooks: {
        allowPrivateTargets: true,
        retryScheduleMs: [50, 50, 50],
        retryJitter: 0,
        pollIntervalMs: 20,
        timeoutMs: 2_000,
      },
    })
    const hook = await t.call<{ secret: string }>('POST', '/v1/webhooks', {
      body: { url: r.url, events: ['granted'] },
    })
    expect(hook.status).toBe(201)
    r.secret = hook.body.secret
    // The receiver refuses the first attempts, then takes them.
    r.answer = 500
    await t.call('POST', '/v1/accounts/w/grants', { body: { amount: 1 } })
    await t.call('POST', '/v1/accounts/w/grants', { body: { amount: 2 } })
    await until(() => r.requests >= 2)
    r.answer = 200
    await r.until((received) => received.length === 2)
    // The worker records each attempt after its answer: wait for the last one to be counted.
    let m = await scrape(t)
    await until(async () => {
      m = await scrape(t)
      return value(m, 'tollgate_webhook_attempts_total', { result: 'delivered' }) === 2
    })
    const refused = r.requests - r.received.length
    expect(refused).toBeGreaterThanOrEqual(2)
    // Each refused attempt is a retry, or (past the last retry) a failure for good.
    const retried = value(m, 'tollgate_webhook_attempts_total', { result: 'retry' })
    const failed = value(m, 'tollgate_webhook_attempts_total', { result: 'failed' })
    expect(retried + failed).toBe(refused)
    expect(value(m, 'tollgate_webhook_failures_total')).toBe(refused)
    expect(value(m, 'tollgate_webhook_delivery_lag_seconds_count')).toBe(2)
    // Everything was fanned out: nothing waits in the outbox.
    expect(m.get('tollgate_webhook_outbox_depth')).toBe(0)
  }, 30_000)
})

/** Polls `check` until it holds (every 20 ms, at most 10 s). */
async function until(check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error('condition not met within 10 s')
}

describeSqlStores('/metrics group commit', (kind) => {
  it('counts every operation in the batch-size histogram, as the store does', async () => {
    const { store } = kind.make()
    const t = await started({ store })
    // One store-protocol batch of 20 operations, then a few alone.
    const items = Array.from({ length: 20 }, (_, i) => item(`acct-${i % 4}`, wireGrant(5)))
    const res = await t.call('POST', '/v1/store/batch', { body: { items } })
    expect(res.status).toBe(200)
    for (let i = 0; i < 3; i++) {
      await t.call('POST', '/v1/accounts/solo/debits', { body: { amount: 1 } })
    }
    const m = await scrape(t)
    const stats = (store as PostgresStore).stats()
    expect(value(m, 'tollgate_group_commit_batch_size_sum')).toBe(stats.operations)
    expect(value(m, 'tollgate_group_commit_batch_size_count')).toBe(stats.batches)
    expect(value(m, 'tollgate_group_commit_batch_duration_seconds_count')).toBe(stats.batches)
    // Every operation the server ran went through a committed batch.
    expect(stats.operations).toBe(23)
    expect(total(m, 'tollgate_ledger_operations_total')).toBe(23)
    expect(value(m, 'tollgate_ledger_operations_total', { type: 'grant', outcome: 'ok' })).toBe(20)
    expect(value(m, 'tollgate_refusals_total')).toBe(3)
    // The 20 went in fewer transactions than operations.
    expect(stats.batches).toBeLessThan(23)
    // PGlite's start (a WebAssembly PostgreSQL) takes seconds on a busy machine.
  }, 60_000)
})
