/**
 * Webhooks across processes, over real sockets: server processes (test/workers/tollgate-server.mjs)
 * deliver to a node:http receiver that verifies every message with `standardwebhooks`.
 * - two server processes on one PostgreSQL never attempt one delivery at once, and after the
 *   receiver was down for a dozen retry rounds (10 s of a sub-second schedule) it gets every
 *   event, in order per account, none lost;
 * - a server killed with SIGKILL in the middle of an attempt delivers after its restart (once the
 *   dead process's lease has run out), on PostgreSQL and on PGlite.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  createTenantKey,
  databaseUrl,
  dropSchemas,
  gateOnDatabase,
  kill,
  startServer,
  stop,
} from './processes.js'
import { type Receiver, startReceiver } from './webhook-receiver.js'

const url = databaseUrl
gateOnDatabase('cross-process webhook tests')

/** Receivers on 127.0.0.1, quick polling; an attempt's deadline of 1 s makes the lease 7 s. */
const WEBHOOKS = {
  allowPrivateTargets: true,
  pollIntervalMs: 50,
  timeoutMs: 1_000,
  concurrency: 4,
  // Retries within 0.25–1 s: an outage of a few seconds already spans many retry rounds, and a
  // receiver back up is found within a second. 33 retries: about 33 s before a delivery fails,
  // well past the outage.
  retryScheduleMs: [250, 500, ...Array.from({ length: 31 }, () => 1_000)],
}
/**
 * How long the receiver stays down: about a dozen attempts of every delivery fail meanwhile
 * (0.25 + 0.5 + 1 + 1 + … s), as many as a 30 s outage under a 1–4 s schedule.
 */
const OUTAGE_MS = 10_000

const children: ChildProcess[] = []
const receivers: Receiver[] = []
afterAll(async () => {
  for (const c of children) await stop(c)
  for (const r of receivers) await r.close()
})

async function server(args: Record<string, unknown>) {
  const s = await startServer({ ...args, webhooks: WEBHOOKS })
  children.push(s.child)
  return s
}

async function receiver(): Promise<Receiver> {
  const r = await startReceiver()
  receivers.push(r)
  return r
}

async function post(base: string, key: string, path: string, body: unknown): Promise<Response> {
  return fetch(`${base}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
}

/** Registers the receiver for `events`, hands it the secret and returns the endpoint's id. */
async function subscribe(base: string, key: string, r: Receiver, events: string[]) {
  const res = await post(base, key, '/v1/webhooks', { url: r.url, events })
  expect(res.status).toBe(201)
  const created = (await res.json()) as { id: string; secret: string }
  r.secret = created.secret
  return created.id
}

describe.skipIf(!url)('webhooks: two server processes on one PostgreSQL', () => {
  const schema = `tg_wh_${process.pid}_${Date.now().toString(36)}`
  afterAll(() => dropSchemas(schema))

  it('after the receiver was down for a dozen retry rounds: every event, in order per account, none attempted twice at once', async () => {
    const a = await server({ url, schema })
    const b = await server({ url, schema })
    const key = await createTenantKey(a.url, a.adminKey, 'hooks')
    const r = await receiver()
    // Each answer takes a moment, so that attempts of the two processes overlap in time.
    r.handle = async (_m, response) => {
      await new Promise((resolve) => setTimeout(resolve, 20))
      response.statusCode = 204
      response.end()
    }
    const webhookId = await subscribe(a.url, key, r, ['granted'])
    await r.down()
    const accounts = Array.from({ length: 8 }, (_, i) => `acct${i}`)
    const started = Date.now()
    for (let n = 1; n <= 10; n++) {
      await Promise.all(
        accounts.map(async (account, i) => {
          // Alternate the servers: both write events, both fan out and deliver.
          const base = (n + i) % 2 === 0 ? a.url : b.url
          const res = await post(base, key, `/v1/accounts/${account}/grants`, { amount: n })
          expect(res.status).toBe(201)
        }),
      )
    }
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, OUTAGE_MS - (Date.now() - started))),
    )
    expect(r.received).toEqual([])
    await r.up()
    await r.until((got) => new Set(got.map((m) => m.id)).size >= 80, 60_000)
    expect(r.rejected).toBe(0)
    expect(r.concurrent).toEqual([])
    // At least once, and here exactly once: no lease ran out, so nothing was sent again.
    expect(r.received).toHaveLength(80)
    for (const account of accounts) {
      const amounts = r.received.filter((m) => m.account === account).map((m) => m.data.amount)
      expect({ account, amounts }).toEqual({ account, amounts: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] })
    }
    // The outage spanned many retry rounds: the first events' deliveries failed about a dozen
    // times before they went through (later ones fewer: on a busy machine the last grants may
    // land just before the receiver is back).
    const page = await fetch(`${a.url}/v1/webhooks/${webhookId}/deliveries?limit=100`, {
      headers: { authorization: `Bearer ${key}` },
    })
    const { deliveries } = (await page.json()) as {
      deliveries: { status: string; attempts: number }[]
    }
    expect(deliveries).toHaveLength(80)
    for (const d of deliveries) expect(d).toMatchObject({ status: 'delivered' })
    expect(Math.max(...deliveries.map((d) => d.attempts))).toBeGreaterThanOrEqual(8)
  }, 120_000)
})

/** The SIGKILL test on one store kind: `args` say where the server keeps its data. */
function killedMidDelivery(args: () => Record<string, unknown>) {
  return async () => {
    const first = await server(args())
    const key = await createTenantKey(first.url, first.adminKey, 'hooks')
    const r = await receiver()
    let reached: () => void = () => {}
    const attempted = new Promise<void>((resolve) => {
      reached = resolve
    })
    // The first attempt is never answered: the server dies with it open.
    r.handle = () => reached()
    await subscribe(first.url, key, r, ['low'])
    const account = 'crash'
    const settings = await fetch(`${first.url}/v1/accounts/${account}/settings`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ lowBalanceThreshold: 10 }),
    })
    expect(settings.status).toBe(200)
    expect(
      (await post(first.url, key, `/v1/accounts/${account}/grants`, { amount: 100 })).status,
    ).toBe(201)
    expect(
      (await post(first.url, key, `/v1/accounts/${account}/debits`, { amount: 95 })).status,
    ).toBe(200)
    await attempted
    await kill(first.child)
    r.handle = (_m, response) => {
      response.statusCode = 204
      response.end()
    }
    const restarted = await server({ ...args(), port: 0 })
    expect(restarted.url).toBeTruthy()
    // The dead process's lease (7 s) runs out, then the restarted process delivers.
    await r.until((got) => got.length >= 1, 45_000)
    expect(r.received[0]).toMatchObject({ type: 'low', account })
    expect(r.rejected).toBe(0)
  }
}

describe.skipIf(!url)('webhooks: a server killed mid-delivery (PostgreSQL)', () => {
  const schema = `tg_whk_${process.pid}_${Date.now().toString(36)}`
  afterAll(() => dropSchemas(schema))
  it(
    'delivers after a restart',
    killedMidDelivery(() => ({ url, schema })),
    90_000,
  )
})

describe('webhooks: a server killed mid-delivery (PGlite)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tg-wh-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  // A PGlite server takes a while to start, and to recover after the kill, on a busy machine.
  it(
    'delivers after a restart',
    killedMidDelivery(() => ({ dataDir: join(dir, 'data') })),
    180_000,
  )
})
