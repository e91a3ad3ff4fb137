/**
 * `httpStore()` against small real HTTP servers (node:http on port 0; undici is not mocked): a
 * stand-in Tollgate server that runs the store protocol over a memory store, and servers that
 * drop connections, answer 5xx or 4xx, or never answer.
 */
import { once } from 'node:events'
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { Operation } from '../engine/state.js'
import {
  AuthError,
  HoldExpiredError,
  IdempotencyConflictError,
  InsufficientCreditsError,
  InvalidInputError,
  NotFoundError,
  StoreUnavailableError,
  type TollgateError,
} from '../errors.js'
import { createMeter, type Meter } from '../meter/meter.js'
import { newId } from '../store/ids.js'
import { memoryStore } from '../store/memory-store.js'
import type { Store } from '../store/store.js'
import { expectLedgerReplays, fullLedger } from '../test-support.js'
import { backoffMs, httpStore } from './http-store.js'
import { PROBLEM_CONTENT_TYPE, problemDetails } from './problem.js'
import { isTransportKey, markTransportKey } from './transport-key.js'
import {
  batchBodySchema,
  batchItemSchema,
  codeBatchBodySchema,
  dueBodySchema,
  executeBodySchema,
  ledgerBodySchema,
  outcomeToWire,
  pruneBodySchema,
} from './wire.js'

const API_KEY = 'tg_sk_test_0123456789abcdef'

/** A request as a test server saw it. */
interface Seen {
  path: string
  headers: IncomingHttpHeaders
  body: Record<string, unknown>
}

type Handler = (seen: Seen, res: ServerResponse, req: IncomingMessage) => unknown

const servers: Server[] = []
const stores: Store[] = []
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()))
  for (const s of servers.splice(0)) {
    s.closeAllConnections()
    s.close()
  }
})

/** Starts a node:http server on port 0; every request is parsed and recorded in `seen`. */
async function serve(handler: Handler): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = []
  const server = createServer(async (req, res) => {
    let text = ''
    for await (const chunk of req) text += chunk
    const entry: Seen = {
      path: req.url ?? '',
      headers: req.headers,
      body: JSON.parse(text || '{}'),
    }
    seen.push(entry)
    try {
      await handler(entry, res, req)
    } catch (err) {
      send(res, 500, problemDetails(err), PROBLEM_CONTENT_TYPE)
    }
  })
  servers.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}`, seen }
}

function send(res: ServerResponse, status: number, body: unknown, type = 'application/json') {
  res.writeHead(status, { 'content-type': type })
  res.end(JSON.stringify(body))
}

function sendError(res: ServerResponse, error: TollgateError) {
  send(res, error.status, problemDetails(error), PROBLEM_CONTENT_TYPE)
}

/**
 * The store protocol of a Tollgate server over one memory store, validating every body with
 * the server's schemas (so these tests also prove what httpStore sends is accepted).
 */
function storeProtocol(store: Store): Handler {
  return async ({ path, headers, body }, res) => {
    const tenant = (headers['tollgate-tenant'] as string | undefined) ?? 'default'
    switch (path) {
      case '/v1/store/execute': {
        const b = executeBodySchema.parse(body)
        const out = await store.execute({
          tenant,
          account: b.account ?? undefined,
          op: markTransportKey(b.op as Operation),
          now: b.now,
          config: b.config,
          newId,
        })
        return send(res, 200, outcomeToWire(out))
      }
      case '/v1/store/batch': {
        const { items } = batchBodySchema.parse(body)
        const outcomes = await Promise.all(
          items.map(async (raw) => {
            const b = batchItemSchema.parse(raw)
            const out = await store.execute({
              tenant: b.tenant ?? tenant,
              account: b.account ?? undefined,
              op: markTransportKey(b.op as Operation),
              now: b.now,
              config: b.config,
              newId,
            })
            return { outcome: outcomeToWire(out) }
          }),
        )
        return send(res, 200, { outcomes })
      }
      case '/v1/store/ledger': {
        const { account, ...req } = ledgerBodySchema.parse(body)
        return send(res, 200, await store.ledger(tenant, account, req as never))
      }
      case '/v1/store/codes':
        return send(res, 200, await store.createCodes(tenant, codeBatchBodySchema.parse(body)))
      case '/v1/store/due': {
        const b = dueBodySchema.parse(body)
        return send(res, 200, { accounts: await store.dueAccounts(tenant, b.now, b.limit) })
      }
      case '/v1/store/prune': {
        const b = pruneBodySchema.parse(body)
        return send(res, 200, { pruned: await store.prune(tenant, b.before) })
      }
      default:
        return sendError(res, new NotFoundError('route', path))
    }
  }
}

/**
 * An httpStore on `url` with fast retries; closed after the test. One request per operation
 * (`/v1/store/execute`, the route every server speaks) unless `batch: true`: the batch route
 * has its own tests below.
 */
function client(url: string, options: Parameters<typeof httpStore>[0] = {}): Store {
  const store = httpStore({
    url,
    apiKey: API_KEY,
    retryBaseMs: 1,
    retryMaxMs: 5,
    batch: false,
    ...options,
  })
  stores.push(store)
  return store
}

function meterOn(store: Store, tenant?: string): Meter {
  return createMeter({ store, cache: false, ...(tenant ? { tenant } : {}) })
}

const executes = (seen: Seen[]) => seen.filter((s) => s.path === '/v1/store/execute')
const keyOf = (s: Seen) => (s.body.op as { idempotencyKey?: string }).idempotencyKey

describe('httpStore over a stand-in Tollgate server', () => {
  it.each([
    ['one request per operation', false],
    ['batched', true],
  ])('meters end to end (%s): grants, holds, ledger, sweep, codes', async (_, batch) => {
    const { url } = await serve(storeProtocol(memoryStore()))
    const meter = meterOn(client(url, { batch }))
    expect(meter.store.kind).toBe('http')
    await meter.grant('u ✓', 100)
    const hold = await meter.reserve('u ✓', 30)
    expect(hold.replayed).toBe(false)
    await expect(hold.commit(20)).resolves.toMatchObject({ charged: 20, replayed: false })
    await expect(meter.debit('u ✓', 500)).rejects.toBeInstanceOf(InsufficientCreditsError)
    const balance = await expectLedgerReplays(meter, 'u ✓')
    expect(balance).toMatchObject({ total: 80, held: 0, available: 80 })
    // Transport keys dedupe retries but never show in the ledger.
    expect((await fullLedger(meter, 'u ✓')).map((e) => e.idempotencyKey)).toEqual([
      undefined,
      undefined,
      undefined,
    ])
    await expect(meter.sweep()).resolves.toEqual({ accounts: 0, pruned: 0 })
    const { codes } = await meter.createCodes({ credits: 5, count: 3 })
    await expect(meter.redeem('v', codes[1]!)).resolves.toMatchObject({ creditsGranted: 5 })
  })

  it('sends the API key, and the tenant as Tollgate-Tenant unless it is "default"', async () => {
    const { url, seen } = await serve(storeProtocol(memoryStore()))
    const store = client(url)
    const acme = meterOn(store, 'acme')
    const plain = meterOn(store)
    await acme.grant('a', 5)
    await acme.ledger('a')
    await acme.createCodes({ credits: 1, count: 1 })
    await acme.sweep()
    await plain.grant('a', 7)
    expect(seen.map((s) => s.path)).toEqual([
      '/v1/store/execute',
      '/v1/store/ledger',
      '/v1/store/codes',
      '/v1/store/due',
      '/v1/store/prune',
      '/v1/store/execute',
    ])
    for (const s of seen) {
      expect(s.headers.authorization).toBe(`Bearer ${API_KEY}`)
      expect(s.headers['content-type']).toBe('application/json')
    }
    expect(seen.slice(0, 5).map((s) => s.headers['tollgate-tenant'])).toEqual(Array(5).fill('acme'))
    expect(seen[5]!.headers).not.toHaveProperty('tollgate-tenant')
    // Tenants stay apart on the server.
    expect((await plain.balance('a')).total).toBe(7)
    expect((await acme.balance('a')).total).toBe(5)
  })

  it('gives every mutation without a key a transport key, and reads none', async () => {
    const { url, seen } = await serve(storeProtocol(memoryStore()))
    const meter = meterOn(client(url))
    await meter.grant('a', 10)
    await meter.grant('a', 10, { idempotencyKey: 'mine' })
    await meter.balance('a')
    const keys = executes(seen).map(keyOf)
    expect(isTransportKey(keys[0]!)).toBe(true)
    expect(keys.slice(1)).toEqual(['mine', undefined])
    // A replay under the caller's own key is reported as one.
    await expect(meter.grant('a', 10, { idempotencyKey: 'mine' })).resolves.toMatchObject({
      replayed: true,
    })
  })

  it('sends no hideKey (a server chained through httpStore): the receiving server derives it', async () => {
    const upstream = memoryStore()
    const { url, seen } = await serve(storeProtocol(upstream))
    const chained = client(url)
    const grant = (key: string): Operation =>
      markTransportKey({
        type: 'grant',
        amount: 5,
        expiresAt: null,
        validityDays: null,
        priority: 50,
        category: 'paid',
        metadata: {},
        idempotencyKey: key,
      })
    const request = (op: Operation) => ({
      tenant: 'default',
      account: 'a',
      op,
      now: Date.now(),
      config: {
        lowBalanceThreshold: null,
        overdraftLimit: null,
        overage: 'clamp' as const,
        redeemMaxFailures: 10,
        redeemWindowMs: 3_600_000,
      },
      newId,
    })
    const transport = grant('tg-retry:chained-1')
    expect(transport.hideKey).toBe(true)
    const out = await chained.execute(request(transport))
    expect(out.error).toBeNull()
    expect(executes(seen)[0]!.body.op).not.toHaveProperty('hideKey')
    // Another, caller's key is not marked, and shows in the ledger.
    expect(grant('own-1').hideKey).toBeUndefined()
    await chained.execute(request(grant('own-1')))
    const page = await upstream.ledger('default', 'a', {
      limit: 10,
      before: null,
      types: null,
      from: null,
      to: null,
    })
    expect(page.entries.map((e) => e.idempotencyKey)).toEqual(['own-1', undefined])
  })

  it('keeps a path prefix of the URL', async () => {
    const protocol = storeProtocol(memoryStore())
    const { url, seen } = await serve((s, res, req) =>
      protocol({ ...s, path: s.path.replace(/^\/tollgate/, '') }, res, req),
    )
    await meterOn(client(`${url}/tollgate/`)).grant('a', 1)
    expect(seen[0]!.path).toBe('/tollgate/v1/store/execute')
  })
})

describe('httpStore batches', () => {
  const batches = (seen: Seen[]) => seen.filter((s) => s.path === '/v1/store/batch')
  type Item = { tenant: string | null; account: string | null; op: Operation; timeoutMs?: number }
  const itemsOf = (s: Seen) => s.body.items as Item[]

  it('sends operations issued together in one request, each with its outcome and its tenant', async () => {
    const { url, seen } = await serve(storeProtocol(memoryStore()))
    const store = client(url, { batch: true })
    const acme = meterOn(store, 'acme')
    const plain = meterOn(store)
    const [g1, g2, g3] = await Promise.all([
      acme.grant('a', 5),
      plain.grant('a', 7),
      plain.grant('b', 1),
    ])
    expect([g1.amount, g2.amount, g3.amount]).toEqual([5, 7, 1])
    expect(seen.map((s) => s.path)).toEqual(['/v1/store/batch'])
    const [batch] = batches(seen)
    expect(itemsOf(batch!).map((i) => [i.tenant, i.account])).toEqual([
      ['acme', 'a'],
      [null, 'a'],
      [null, 'b'],
    ])
    // Tenants travel in the items; the request itself names none.
    expect(batch!.headers).not.toHaveProperty('tollgate-tenant')
    expect(batch!.headers.authorization).toBe(`Bearer ${API_KEY}`)
    expect(itemsOf(batch!).every((i) => isTransportKey(i.op.idempotencyKey!))).toBe(true)
    expect((await acme.balance('a')).total).toBe(5)
    expect((await plain.balance('a')).total).toBe(7)
  })

  it('one operation refused (4xx) fails alone; one the server could not run (5xx) is retried alone under its key', async () => {
    const store = memoryStore()
    const protocol = storeProtocol(store)
    let unavailable = 0
    const { url, seen } = await serve(async (s, res, req) => {
      if (s.path !== '/v1/store/batch') return protocol(s, res, req)
      const items = itemsOf(s)
      const keep = items.filter(
        (i) =>
          !('amount' in i.op) || (i.op.amount !== 13 && (i.op.amount !== 7 || unavailable > 0)),
      )
      // Runs the rest through the real stand-in, then answers in the order of the request.
      const answered: unknown[] = []
      if (keep.length > 0) {
        const inner = await new Promise<{ outcomes: unknown[] }>((resolve) => {
          const fake = {
            writeHead: () => fake,
            end: (text: string) => resolve(JSON.parse(text)),
          } as unknown as ServerResponse
          void protocol({ ...s, body: { items: keep } }, fake, req)
        })
        answered.push(...inner.outcomes)
      }
      const outcomes = items.map((i) => {
        if ('amount' in i.op && i.op.amount === 13) {
          return { problem: problemDetails(new InvalidInputError('op.amount', 'is unlucky')) }
        }
        if ('amount' in i.op && i.op.amount === 7 && unavailable === 0) {
          unavailable++
          return { problem: problemDetails(new StoreUnavailableError('queue full')) }
        }
        return answered.shift()
      })
      return send(res, 200, { outcomes })
    })
    const meter = meterOn(client(url, { batch: true }))
    const [ok, bad, retried] = await Promise.allSettled([
      meter.grant('a', 5),
      meter.grant('a', 13),
      meter.grant('b', 7),
    ])
    expect(ok.status).toBe('fulfilled')
    expect(bad.status).toBe('rejected')
    expect((bad as PromiseRejectedResult).reason).toBeInstanceOf(InvalidInputError)
    expect(((bad as PromiseRejectedResult).reason as InvalidInputError).field).toBe('op.amount')
    expect(retried.status).toBe('fulfilled')
    const sent = batches(seen)
    expect(sent).toHaveLength(2)
    expect(itemsOf(sent[0]!)).toHaveLength(3)
    // Only the operation that met the 5xx went again, under the key of its first attempt.
    expect(itemsOf(sent[1]!).map((i) => i.account)).toEqual(['b'])
    expect(itemsOf(sent[1]!)[0]!.op.idempotencyKey).toBe(itemsOf(sent[0]!)[2]!.op.idempotencyKey)
    expect((await meter.balance('a')).total).toBe(5)
    expect((await meter.balance('b')).total).toBe(7)
  })

  it('a batch whose answer was lost is sent again with the same keys, and applies once', async () => {
    const protocol = storeProtocol(memoryStore())
    let dropped = false
    const { url, seen } = await serve(async (s, res, req) => {
      if (s.path === '/v1/store/batch' && !dropped) {
        dropped = true
        // The server runs the batch, then the connection dies before the answer.
        const fake = { writeHead: () => fake, end: () => req.socket.destroy() }
        return protocol(s, fake as unknown as ServerResponse, req)
      }
      return protocol(s, res, req)
    })
    const meter = meterOn(client(url, { batch: true }))
    const grants = await Promise.all([meter.grant('a', 10), meter.grant('b', 20)])
    // Replays under transport keys: for the caller, the first answer.
    expect(grants.map((g) => g.replayed)).toEqual([false, false])
    const sent = batches(seen)
    expect(sent).toHaveLength(2)
    expect(itemsOf(sent[1]!).map((i) => i.op.idempotencyKey)).toEqual(
      itemsOf(sent[0]!).map((i) => i.op.idempotencyKey),
    )
    expect((await expectLedgerReplays(meter, 'a')).total).toBe(10)
    expect((await expectLedgerReplays(meter, 'b')).total).toBe(20)
  })

  it('bounds a batch by maxBatch operations and maxBatchBytes', async () => {
    const { url, seen } = await serve(storeProtocol(memoryStore()))
    const meter = meterOn(client(url, { batch: true, maxBatch: 2 }))
    await Promise.all(['a', 'b', 'c', 'd', 'e'].map((a) => meter.grant(a, 1)))
    expect(batches(seen).map((s) => itemsOf(s).length)).toEqual([2, 2, 1])

    const small = meterOn(client(url, { batch: true, maxBatchBytes: 2_500 }))
    const metadata = { note: 'x'.repeat(700) }
    await Promise.all(['a', 'b', 'c'].map((a) => small.grant(a, 1, { metadata })))
    const sizes = batches(seen)
      .slice(3)
      .map((s) => itemsOf(s).length)
    expect(sizes).toEqual([2, 1])
  })

  it('speaks one request per operation to a server without the batch route (404)', async () => {
    const protocol = storeProtocol(memoryStore())
    const { url, seen } = await serve((s, res, req) =>
      s.path === '/v1/store/batch'
        ? sendError(res, new NotFoundError('route', `POST ${s.path}`))
        : protocol(s, res, req),
    )
    const meter = meterOn(client(url, { batch: true }))
    await Promise.all([meter.grant('a', 1), meter.grant('b', 2)])
    await meter.grant('a', 3)
    expect(seen.map((s) => s.path)).toEqual([
      '/v1/store/batch',
      '/v1/store/execute',
      '/v1/store/execute',
      '/v1/store/execute',
    ])
    expect((await meter.balance('a')).total).toBe(4)
  })

  it("sends an operation's own deadline in its item, and fails it at that deadline while its batch hangs", async () => {
    const { url, seen } = await serve(() => new Promise(() => {}))
    const meter = meterOn(client(url, { batch: true, timeoutMs: 1_500, retries: 0 }))
    const started = performance.now()
    const [short, long] = await Promise.allSettled([
      meter.grant('a', 1, { timeoutMs: 100 }),
      meter.grant('b', 1),
    ])
    expect(short.status).toBe('rejected')
    expect((short as PromiseRejectedResult).reason).toBeInstanceOf(StoreUnavailableError)
    expect(long.status).toBe('rejected')
    expect(seen).toHaveLength(1)
    const [item0, item1] = itemsOf(seen[0]!)
    expect(item0!.timeoutMs).toBeGreaterThanOrEqual(1)
    expect(item0!.timeoutMs).toBeLessThanOrEqual(100)
    expect(item1).not.toHaveProperty('timeoutMs')
    // The request says the longest wait of its items.
    expect(seen[0]!.headers['tollgate-deadline-ms']).toBe('1500')
    expect(performance.now() - started).toBeGreaterThanOrEqual(1_000)
  })

  it('a whole-batch 4xx (e.g. 401) fails every operation in it, without a retry', async () => {
    const { url, seen } = await serve((_s, res) => sendError(res, new AuthError('no')))
    const meter = meterOn(client(url, { batch: true }))
    const results = await Promise.allSettled([meter.grant('a', 1), meter.grant('b', 1)])
    for (const r of results) {
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(AuthError)
    }
    expect(seen).toHaveLength(1)
  })
})

describe('httpStore retries', () => {
  it('retries a dropped connection with the same generated key, and the operation applies once', async () => {
    const store = memoryStore()
    const protocol = storeProtocol(store)
    const dropped = new Set<string>()
    const { url, seen } = await serve(async (s, res, req) => {
      const key = s.path === '/v1/store/execute' ? keyOf(s) : undefined
      if (key !== undefined && !dropped.has(key)) {
        dropped.add(key)
        // The server applied it, then the answer was lost with the connection.
        await store.execute({
          tenant: 'default',
          account: s.body.account as string,
          op: s.body.op as Operation,
          now: s.body.now as number,
          config: executeBodySchema.parse(s.body).config,
          newId,
        })
        req.socket.destroy()
        return
      }
      return protocol(s, res, req)
    })
    const meter = meterOn(client(url))
    const grant = await meter.grant('a', 10)
    // The server replayed the second attempt; for the caller it is the first answer.
    expect(grant.replayed).toBe(false)
    const debit = await meter.debit('a', 3)
    expect(debit.replayed).toBe(false)
    const keys = executes(seen).map(keyOf)
    expect(keys).toHaveLength(4)
    expect(isTransportKey(keys[0]!)).toBe(true)
    expect(keys[1]).toBe(keys[0])
    expect(keys[3]).toBe(keys[2])
    expect(keys[2]).not.toBe(keys[0])
    const balance = await expectLedgerReplays(meter, 'a')
    expect(balance.total).toBe(7)
    expect((await fullLedger(meter, 'a')).map((e) => e.type)).toEqual(['grant', 'debit'])
  })

  it('retries a 503 with the same generated key', async () => {
    const protocol = storeProtocol(memoryStore())
    let failures = 0
    const { url, seen } = await serve((s, res, req) => {
      if (s.path === '/v1/store/execute' && failures < 2) {
        failures++
        return sendError(res, new StoreUnavailableError('database restarting'))
      }
      return protocol(s, res, req)
    })
    const meter = meterOn(client(url))
    const hold = await meter.grant('a', 10).then(() => meter.reserve('a', 4))
    expect(hold.amount).toBe(4)
    const keys = executes(seen).map(keyOf)
    // grant: 503, 503, 200; reserve: 200.
    expect(keys).toHaveLength(4)
    expect(new Set(keys.slice(0, 3)).size).toBe(1)
    expect(keys[3]).not.toBe(keys[0])
    expect((await meter.balance('a')).held).toBe(4)
  })

  it('retries reads (balance, ledger) and the other routes on 5xx too', async () => {
    const protocol = storeProtocol(memoryStore())
    const failed = new Set<string>()
    const { url, seen } = await serve((s, res, req) => {
      const id = `${s.path} ${JSON.stringify(s.body.op ?? null)}`
      if (!failed.has(id)) {
        failed.add(id)
        res.writeHead(502, { 'content-type': 'text/html' })
        return res.end('<html>Bad Gateway</html>')
      }
      return protocol(s, res, req)
    })
    const meter = meterOn(client(url))
    await meter.grant('a', 10)
    await meter.balance('a')
    await meter.ledger('a')
    await meter.sweep()
    await meter.createCodes({ credits: 1, count: 1 })
    expect(seen).toHaveLength(12)
  })

  it('gives up after `retries` and throws StoreUnavailableError with the last failure', async () => {
    const { url, seen } = await serve((_, res) =>
      sendError(res, new StoreUnavailableError('database is down')),
    )
    const meter = meterOn(client(url, { retries: 2 }))
    const err = await meter.grant('a', 1).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(StoreUnavailableError)
    expect((err as Error).message).toMatch(/after 3 attempts/)
    expect((err as Error).cause).toBeInstanceOf(StoreUnavailableError)
    expect(((err as Error).cause as Error).message).toBe('database is down')
    expect(seen).toHaveLength(3)
    // Still the same key on every attempt.
    expect(new Set(seen.map(keyOf)).size).toBe(1)
  })

  it('waits with exponential backoff between attempts', async () => {
    const times: number[] = []
    const { url } = await serve((_, res) => {
      times.push(performance.now())
      sendError(res, new StoreUnavailableError())
    })
    const meter = meterOn(client(url, { retries: 3, retryBaseMs: 40, retryMaxMs: 100 }))
    await expect(meter.grant('a', 1)).rejects.toBeInstanceOf(StoreUnavailableError)
    const gaps = times.slice(1).map((t, i) => t - times[i]!)
    // Waits of [20, 40], [40, 80], [50, 100] ms: half the capped exponential, plus jitter. A
    // timer never fires early, so the lower bounds hold on any machine; the upper bounds are
    // backoffMs's, checked without a clock below.
    expect(gaps).toHaveLength(3)
    expect(gaps[0]).toBeGreaterThanOrEqual(19)
    expect(gaps[1]).toBeGreaterThanOrEqual(39)
    expect(gaps[2]).toBeGreaterThanOrEqual(49)
  })

  it('backoff: exponential from the base, capped, jittered over its upper half', () => {
    const range = (attempt: number) => [
      backoffMs(attempt, 40, 100, 0),
      backoffMs(attempt, 40, 100, 0.999_999),
    ]
    expect(range(0)[0]).toBe(20)
    expect(range(0)[1]).toBeCloseTo(40, 3)
    expect(range(0)[1]).toBeLessThan(40)
    expect(range(1)[0]).toBe(40)
    expect(range(1)[1]).toBeLessThan(80)
    expect(range(2)[0]).toBe(50)
    expect(range(2)[1]).toBeLessThan(100)
    // Capped however many attempts.
    expect(backoffMs(30, 40, 100, 0.5)).toBe(75)
  })

  it.each([
    ['400', new InvalidInputError('op.amount', 'must be a non-negative safe integer')],
    ['402', new InsufficientCreditsError('a', 10, 3)],
    ['409', new IdempotencyConflictError('k-1')],
  ])('never retries a %s, and throws it as the typed error with its fields', async (_, error) => {
    const { url, seen } = await serve((_s, res) => sendError(res, error))
    const meter = meterOn(client(url))
    const err = await meter.debit('a', 1).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(error.constructor)
    expect((err as TollgateError).toJSON()).toEqual(error.toJSON())
    expect(seen).toHaveLength(1)
  })
})

describe('httpStore deadlines', () => {
  it("tells the server how long each attempt waits: the call's timeoutMs, else the request timeout", async () => {
    const { url, seen } = await serve(storeProtocol(memoryStore()))
    const meter = meterOn(client(url, { timeoutMs: 7_000 }))
    await meter.grant('a', 10)
    await meter.debit('a', 1, { timeoutMs: 2_000 })
    await meter.ledger('a')
    const sent = seen.map((s) => [s.path, s.headers['tollgate-deadline-ms']])
    expect(sent[0]).toEqual(['/v1/store/execute', '7000'])
    expect(sent[1]![0]).toBe('/v1/store/execute')
    const left = Number(sent[1]![1])
    expect(Number.isInteger(left)).toBe(true)
    expect(left).toBeGreaterThan(0)
    expect(left).toBeLessThanOrEqual(2_000)
    // Only operations carry a deadline.
    expect(sent[2]).toEqual(['/v1/store/ledger', undefined])
  })

  it("a call's timeoutMs bounds all its attempts: none starts after it, each says the time left", async () => {
    const { url, seen } = await serve((_s, res) =>
      sendError(res, new StoreUnavailableError('database down')),
    )
    const meter = meterOn(client(url, { retries: 100, retryBaseMs: 20, retryMaxMs: 20 }))
    const err = await meter.grant('a', 1, { timeoutMs: 300 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(StoreUnavailableError)
    const attempts = seen.length
    expect(attempts).toBeGreaterThan(1)
    expect(attempts).toBeLessThan(100)
    const left = seen.map((s) => Number(s.headers['tollgate-deadline-ms']))
    for (let i = 1; i < left.length; i++) expect(left[i]).toBeLessThanOrEqual(left[i - 1]!)
    expect(left.at(-1)).toBeGreaterThanOrEqual(1)
    // Nothing more is sent once the call has failed.
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(seen).toHaveLength(attempts)
  })

  it("a server that does not answer within a call's timeoutMs fails the call, however long the request timeout", async () => {
    const { url, seen } = await serve(() => new Promise(() => {}))
    const meter = meterOn(client(url, { timeoutMs: 60_000, retries: 5 }))
    const err = await meter.grant('a', 1, { timeoutMs: 100 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(StoreUnavailableError)
    // The one attempt waited for the deadline (and a grace for the server's own answer), then
    // no retry could start.
    expect(seen).toHaveLength(1)
  })
})

describe('httpStore errors', () => {
  it('problem+json answers become typed errors with their fields', async () => {
    const errors: TollgateError[] = [
      new AuthError('invalid or missing API key'),
      new NotFoundError('hold', 'hld_nope'),
      new HoldExpiredError('hld_old', 1_800_000_000_000),
    ]
    let i = 0
    const { url } = await serve((_s, res) => sendError(res, errors[i++]!))
    const meter = meterOn(client(url))
    for (const expected of errors) {
      const err = await meter.commit('hld_x').catch((e: unknown) => e)
      expect(err).toBeInstanceOf(expected.constructor)
      expect((err as TollgateError).toJSON()).toEqual(expected.toJSON())
    }
  })

  it('a 4xx without problem details is an InvalidInputError naming the status', async () => {
    const { url } = await serve((_s, res) => {
      res.writeHead(404, { 'content-type': 'text/plain' })
      res.end('no such route')
    })
    const err = await meterOn(client(url))
      .grant('a', 1)
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(InvalidInputError)
    expect((err as Error).message).toContain('404')
  })

  it('an unreachable server is StoreUnavailableError, after the retries', async () => {
    // A port that was just free: nothing listens on it.
    const { url } = await serve(() => {})
    const server = servers.pop()!
    server.close()
    await once(server, 'close')
    const err = await meterOn(client(url, { retries: 2 }))
      .grant('a', 1)
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(StoreUnavailableError)
    expect((err as Error).message).toMatch(/unavailable after 3 attempts: ECONNREFUSED/)
    expect((err as { cause?: { code?: string } }).cause?.code).toBe('ECONNREFUSED')
  })

  it('a server that does not answer in time is StoreUnavailableError (timeouts retry)', async () => {
    const { url, seen } = await serve(() => new Promise(() => {}))
    const started = performance.now()
    const err = await meterOn(client(url, { timeoutMs: 150, retries: 1 }))
      .grant('a', 1)
      .catch((e: unknown) => e)
    const elapsed = performance.now() - started
    expect(err).toBeInstanceOf(StoreUnavailableError)
    expect((err as { cause?: { code?: string } }).cause?.code).toBe('UND_ERR_HEADERS_TIMEOUT')
    expect(seen).toHaveLength(2)
    // Both attempts waited out their timeout (150 ms each) before failing.
    expect(elapsed).toBeGreaterThanOrEqual(290)
  })

  it('a 2xx that is not JSON is StoreUnavailableError, not retried', async () => {
    const { url, seen } = await serve((_s, res) => {
      res.writeHead(200, { 'content-type': 'text/html' })
      res.end('<html>captive portal</html>')
    })
    await expect(meterOn(client(url)).grant('a', 1)).rejects.toBeInstanceOf(StoreUnavailableError)
    expect(seen).toHaveLength(1)
  })

  it('after close(), operations are StoreUnavailableError', async () => {
    const { url } = await serve(storeProtocol(memoryStore()))
    const store = client(url)
    await meterOn(store).grant('a', 1)
    await store.close()
    await store.close()
    await expect(store.prune('default', 0)).rejects.toBeInstanceOf(StoreUnavailableError)
  })
})

describe('httpStore codes', () => {
  it('stores a large batch in several requests, each retried safely, the caller’s key last', async () => {
    const store = memoryStore()
    const protocol = storeProtocol(store)
    let drops = 0
    const { url, seen } = await serve(async (s, res, req) => {
      // The second request is stored, then its answer is lost.
      if (s.path === '/v1/store/codes' && seen.length === 2 && drops === 0) {
        drops++
        await store.createCodes('default', codeBatchBodySchema.parse(s.body))
        req.socket.destroy()
        return
      }
      return protocol(s, res, req)
    })
    const meter = meterOn(client(url))
    const made = await meter.createCodes({ credits: 2, count: 2_450, idempotencyKey: 'batch-1' })
    expect(made).toMatchObject({ count: 2_450, replayed: false })
    expect(made.codes).toHaveLength(2_450)
    const codes = seen.filter((s) => s.path === '/v1/store/codes')
    // 1,000 + 1,000 (sent twice) + 450.
    expect(codes.map((s) => (s.body.codes as unknown[]).length)).toEqual([1_000, 1_000, 1_000, 450])
    const keys = codes.map((s) => (s.body.idempotency as { key: string }).key)
    expect(isTransportKey(keys[0]!) && isTransportKey(keys[1]!)).toBe(true)
    expect(keys[2]).toBe(keys[1])
    expect(keys[3]).toBe('batch-1')
    // Every code works, and once.
    for (const code of [made.codes[0]!, made.codes[1_500]!, made.codes[2_449]!]) {
      await expect(meter.redeem('a', code)).resolves.toMatchObject({ creditsGranted: 2 })
    }
    // The same key again replays the summary (the codes were shown once).
    await expect(
      meter.createCodes({ credits: 2, count: 2_450, idempotencyKey: 'batch-1' }),
    ).resolves.toMatchObject({ batchId: made.batchId, replayed: true, codes: [] })
    await expect(
      meter.createCodes({ credits: 3, count: 1, idempotencyKey: 'batch-1' }),
    ).rejects.toBeInstanceOf(IdempotencyConflictError)
  })

  it('a retried batch that carries the caller’s key is the first answer, with its codes', async () => {
    const store = memoryStore()
    const protocol = storeProtocol(store)
    let dropped = false
    const { url } = await serve(async (s, res, req) => {
      if (s.path === '/v1/store/codes' && !dropped) {
        dropped = true
        await store.createCodes('default', codeBatchBodySchema.parse(s.body))
        req.socket.destroy()
        return
      }
      return protocol(s, res, req)
    })
    const meter = meterOn(client(url))
    const made = await meter.createCodes({ credits: 4, count: 2, idempotencyKey: 'k' })
    expect(made).toMatchObject({ replayed: false })
    expect(made.codes).toHaveLength(2)
    await expect(meter.redeem('a', made.codes[0]!)).resolves.toMatchObject({ creditsGranted: 4 })
  })
})

describe('httpStore options', () => {
  const env = { url: process.env.TOLLGATE_URL, key: process.env.TOLLGATE_API_KEY }
  beforeEach(() => {
    delete process.env.TOLLGATE_URL
    delete process.env.TOLLGATE_API_KEY
  })
  afterEach(() => {
    if (env.url !== undefined) process.env.TOLLGATE_URL = env.url
    if (env.key !== undefined) process.env.TOLLGATE_API_KEY = env.key
  })

  it('a missing API key or URL is InvalidInputError at creation', () => {
    expect(() => httpStore({ url: 'http://127.0.0.1:7070' })).toThrow(InvalidInputError)
    expect(() => httpStore({ url: 'http://127.0.0.1:7070' })).toThrow(/apiKey: is required/)
    expect(() => httpStore({ url: 'http://127.0.0.1:7070', apiKey: '' })).toThrow(InvalidInputError)
    expect(() => httpStore({ apiKey: API_KEY })).toThrow(/url: is required/)
    expect(() => httpStore()).toThrow(InvalidInputError)
  })

  it('rejects malformed options', () => {
    const base = { url: 'http://127.0.0.1:7070', apiKey: API_KEY }
    for (const bad of [
      { url: 'not a url' },
      { url: 'ftp://host' },
      { url: 'http://user:pw@host' },
      { apiKey: 'with space' },
      { apiKey: 'line\nbreak' },
      { connections: 0 },
      { timeoutMs: -1 },
      { retries: 1.5 },
    ]) {
      expect(() => httpStore({ ...base, ...bad }), JSON.stringify(bad)).toThrow(InvalidInputError)
    }
  })

  it('takes the URL and key from TOLLGATE_URL and TOLLGATE_API_KEY', async () => {
    const { url, seen } = await serve(storeProtocol(memoryStore()))
    process.env.TOLLGATE_URL = url
    process.env.TOLLGATE_API_KEY = 'tg_sk_env_key'
    const store = httpStore()
    stores.push(store)
    await meterOn(store).grant('a', 1)
    expect(seen[0]!.headers.authorization).toBe('Bearer tg_sk_env_key')
  })

  it('refuses a tenant that cannot travel in a header', async () => {
    const { url, seen } = await serve(storeProtocol(memoryStore()))
    const meter = meterOn(client(url), 'テナント')
    await expect(meter.grant('a', 1)).rejects.toMatchObject({
      code: 'invalid_input',
      field: 'tenant',
    })
    expect(seen).toHaveLength(0)
    await meterOn(client(url), 'café').grant('a', 1)
    expect(seen[0]!.headers['tollgate-tenant']).toBe('café')
  })
})
