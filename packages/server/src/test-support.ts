/** Test helpers: a server on a free port and a small JSON client over real sockets (undici). */

import { randomBytes } from 'node:crypto'
import { createServer as createHttpServer } from 'node:http'
import { type AddressInfo, connect, type Socket } from 'node:net'
import { Writable } from 'node:stream'
import { PGlite } from '@electric-sql/pglite'
import { memoryStore, type Store } from '@tollgate/core'
import type { EngineConfig } from '@tollgate/core/engine'
import { pgliteStore, postgresStore } from '@tollgate/postgres'
import pg from 'pg'
import { Webhook } from 'standardwebhooks'
import { request } from 'undici'
import { afterAll, afterEach, describe, it } from 'vitest'
import type { CreateServerOptions } from './options.js'
import { createServer, type TollgateServer } from './server.js'

export interface Answer<T = Record<string, unknown>> {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: T
  text: string
}

export interface CallOptions {
  /** The API key; `null` sends no Authorization header. */
  key?: string | null
  body?: unknown
  /** A raw body sent as it is (with a JSON content type unless headers say otherwise). */
  raw?: string
  headers?: Record<string, string>
}

export interface TestServer {
  server: TollgateServer
  store: Store
  url: string
  adminKey: string
  call<T = Record<string, unknown>>(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    options?: CallOptions,
  ): Promise<Answer<T>>
  /** Creates a tenant key through the admin API. */
  createKey(tenant: string, role?: 'admin' | 'tenant'): Promise<{ id: string; key: string }>
  close(): Promise<void>
}

/** Sends one request and reads the whole answer. */
export async function call<T>(
  url: string,
  defaultKey: string | null,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  options: CallOptions = {},
): Promise<Answer<T>> {
  const key = options.key === undefined ? defaultKey : options.key
  const headers: Record<string, string> = {}
  if (key !== null) headers.authorization = `Bearer ${key}`
  let body: string | undefined
  if (options.raw !== undefined) body = options.raw
  else if (options.body !== undefined) body = JSON.stringify(options.body)
  if (body !== undefined) headers['content-type'] = 'application/json'
  Object.assign(headers, options.headers)
  const res = await request(url + path, { method, headers, body })
  const text = await res.body.text()
  let parsed: unknown = text
  try {
    parsed = JSON.parse(text)
  } catch {
    // not JSON: keep the text
  }
  return { status: res.statusCode, headers: res.headers, body: parsed as T, text }
}

/** A server on port 0 with a memory store (unless given), logging off (unless given). */
export async function startServer(options: Partial<CreateServerOptions> = {}): Promise<TestServer> {
  const store = options.store ?? memoryStore()
  const server = createServer({ logger: false, sweepIntervalMs: 0, ...options, store })
  const { url, adminKey } = await server.listen({ port: 0 })
  const admin = adminKey ?? options.adminKey
  if (!admin) throw new Error('no admin key: pass adminKey or start on an empty store')
  const t: TestServer = {
    server,
    store,
    url,
    adminKey: admin,
    call: (method, path, o) => call(url, admin, method, path, o),
    async createKey(tenant, role = 'tenant') {
      const res = await t.call<{ id: string; key: string }>('POST', '/v1/keys', {
        body: { tenant, role },
      })
      if (res.status !== 201) throw new Error(`key creation failed: ${res.text}`)
      return res.body
    },
    close: () => server.close(),
  }
  return t
}

/**
 * Servers (and anything else with `close()`) closed after each test of the file, last opened
 * first. Call once at the top of a test file.
 * @example const { started, closeLater } = serversPerTest()
 */
export function serversPerTest(): {
  started(options?: Partial<CreateServerOptions>): Promise<TestServer>
  closeLater(closable: { close(): Promise<void> }): void
} {
  const open: { close(): Promise<void> }[] = []
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close()
  })
  return {
    async started(options = {}) {
      const t = await startServer(options)
      open.push(t)
      return t
    },
    closeLater: (closable) => open.push(closable),
  }
}

/** A writable stream that keeps what the logger wrote, to scan it for secrets. */
export function logCapture(): { stream: Writable; text(): string } {
  const chunks: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString())
      done()
    },
  })
  return { stream, text: () => chunks.join('') }
}

/** A fake clock the test moves by hand. */
export function fakeClock(start = Date.UTC(2030, 0, 1)): {
  now(): number
  advance(ms: number): void
} {
  let t = start
  return {
    now: () => t,
    advance(ms) {
      t += ms
    },
  }
}

/** What {@link rawRequest} read back. */
export interface RawAnswer {
  status: number
  headers: Record<string, string>
  body: string
}

/**
 * Sends `request` byte for byte on a fresh socket (for what an HTTP client would refuse to send:
 * malformed request lines, bad percent-encoding, huge headers) and reads the answer until the
 * server closes the connection (send `Connection: close`). Status 0 when nothing came back.
 */
export function rawRequest(url: string, request: string | Buffer): Promise<RawAnswer> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) })
    const chunks: Buffer[] = []
    socket.setTimeout(20_000, () => socket.destroy(new Error('raw request timed out')))
    socket.on('data', (c: Buffer) => chunks.push(c))
    // A server that answers before reading everything may reset the socket: keep what came.
    socket.on('error', (err) => (chunks.length > 0 ? finish() : reject(err)))
    socket.on('close', () => finish())
    let done = false
    function finish(): void {
      if (done) return
      done = true
      resolve(parseRaw(Buffer.concat(chunks)))
    }
    socket.write(request)
  })
}

/** Parses the first HTTP response in `data` (Content-Length or chunked or until close). */
function parseRaw(data: Buffer): RawAnswer {
  const end = data.indexOf('\r\n\r\n')
  if (end < 0) return { status: 0, headers: {}, body: data.toString() }
  const [statusLine, ...lines] = data.subarray(0, end).toString('latin1').split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const i = line.indexOf(':')
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim()
  }
  let rest = data.subarray(end + 4)
  if (headers['transfer-encoding'] === 'chunked') {
    const parts: Buffer[] = []
    for (;;) {
      const eol = rest.indexOf('\r\n')
      const size = Number.parseInt(rest.subarray(0, eol).toString(), 16)
      if (!(size > 0)) break
      parts.push(rest.subarray(eol + 2, eol + 2 + size))
      rest = rest.subarray(eol + 4 + size)
    }
    rest = Buffer.concat(parts)
  } else if (headers['content-length'] !== undefined) {
    rest = rest.subarray(0, Number(headers['content-length']))
  }
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0)
  return { status, headers, body: rest.toString() }
}

// Set by the global setup (scripts/test-database.mjs) when the default local server answers.
const DATABASE_URL = process.env.TOLLGATE_TEST_DATABASE_URL

/** A fresh SQL store of one kind, with a side door to its database for injecting faults. */
export interface SqlTestStore {
  store: Store
  /** The store's schema (quoted), for statements run through `sql`. */
  schema: string
  /** Runs SQL on the store's database outside the store (another connection on PostgreSQL). */
  sql(text: string): Promise<void>
}

/** How a server test gets SQL stores of one kind. */
export interface SqlStoreKind {
  name: 'pglite' | 'postgres'
  make(): SqlTestStore
}

function schemaName(): string {
  return `tg_srv_${process.pid}_${randomBytes(4).toString('hex')}`
}

/**
 * Runs `body` once on PGlite and once on PostgreSQL (TOLLGATE_TEST_DATABASE_URL; each store gets
 * a schema of its own, dropped afterwards). Without the URL, the PostgreSQL half fails on CI (a
 * silently skipped database suite would pass CI) and is skipped, with a line saying so,
 * elsewhere.
 */
export function describeSqlStores(name: string, body: (kind: SqlStoreKind) => void): void {
  describe(`${name} (pglite)`, () => {
    // One PGlite for the block, a schema per store, as on PostgreSQL: starting PGlite (WASM,
    // initdb) costs seconds, and the store never closes a client it was given. Every statement
    // is schema-qualified and settings are SET LOCAL, so the stores do not see each other.
    let client: PGlite | null = null
    afterAll(async () => {
      await client?.close()
    })
    body({
      name: 'pglite',
      make: () => {
        client ??= new PGlite()
        const shared = client
        const schema = schemaName()
        return {
          store: pgliteStore({ client: shared, schema }),
          schema: `"${schema}"`,
          sql: async (text) => {
            await shared.exec(text)
          },
        }
      },
    })
  })
  const url = DATABASE_URL
  if (!url) {
    if (process.env.CI) {
      describe(`${name} (postgres)`, () => {
        it('needs TOLLGATE_TEST_DATABASE_URL', () => {
          throw new Error('TOLLGATE_TEST_DATABASE_URL is not set: on CI the PostgreSQL half runs')
        })
      })
    } else {
      console.warn(
        `SKIPPED: "${name}" on PostgreSQL (no PostgreSQL answered at the default address and TOLLGATE_TEST_DATABASE_URL is unset)`,
      )
    }
    return
  }
  describe(`${name} (postgres)`, () => {
    const schemas: string[] = []
    const sql = async (text: string) => {
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      try {
        await client.query(text)
      } finally {
        await client.end()
      }
    }
    afterAll(async () => {
      for (const schema of schemas) await sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    })
    body({
      name: 'postgres',
      make: () => {
        const schema = schemaName()
        schemas.push(schema)
        return {
          store: postgresStore({ connectionString: url, schema }),
          schema: `"${schema}"`,
          sql,
        }
      },
    })
  })
}

/** One message a {@link WebhookReceiver} accepted, its signature verified. */
export interface ReceivedWebhook {
  id: string
  type: string
  account: string
  data: Record<string, unknown>
}

/**
 * A webhook receiver over a real socket: verifies every message with the `standardwebhooks`
 * package and records it. `down()` closes its port (connections refused) and `up()` opens the
 * same port again; `answer` picks the status of the next answers.
 */
export interface WebhookReceiver {
  url: string
  received: ReceivedWebhook[]
  /** Messages whose signature did not verify (should stay 0). */
  rejected: number
  /** Requests that reached the receiver, verified or not, answered or not. */
  requests: number
  /** Set before the messages arrive: the endpoint's `whsec_…` secret. */
  secret: string
  answer: number
  /** When set, requests wait for it before they are answered. */
  hold: Promise<void> | null
  down(): Promise<void>
  up(): Promise<void>
  close(): Promise<void>
  /** Resolves once `predicate` holds for `received` (polled; gives up after `timeoutMs`). */
  until(predicate: (received: ReceivedWebhook[]) => boolean, timeoutMs?: number): Promise<void>
}

export async function startReceiver(): Promise<WebhookReceiver> {
  let port = 0
  const sockets = new Set<Socket>()
  const r: WebhookReceiver = {
    url: '',
    received: [],
    rejected: 0,
    requests: 0,
    secret: '',
    answer: 204,
    hold: null,
    async down() {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
    async up() {
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
    },
    async close() {
      if (server.listening) await r.down()
    },
    async until(predicate, timeoutMs = 30_000) {
      const end = Date.now() + timeoutMs
      while (!predicate(r.received)) {
        if (Date.now() > end) {
          throw new Error(
            `receiver: condition not met after ${timeoutMs} ms (${r.received.length} received)`,
          )
        }
        await new Promise((resolve) => setTimeout(resolve, 25))
      }
    },
  }
  const server = createHttpServer((request, response) => {
    r.requests++
    const chunks: Buffer[] = []
    request.on('data', (c: Buffer) => chunks.push(c))
    request.on('end', () => {
      void (async () => {
        if (r.hold) await r.hold
        const body = Buffer.concat(chunks).toString()
        try {
          const payload = new Webhook(r.secret).verify(
            body,
            request.headers as Record<string, string>,
          ) as {
            type: string
            data: Record<string, unknown> & { account: string }
          }
          if (r.answer < 300) {
            r.received.push({
              id: String(request.headers['webhook-id']),
              type: payload.type,
              account: payload.data.account,
              data: payload.data,
            })
          }
          response.statusCode = r.answer
        } catch {
          r.rejected++
          response.statusCode = 400
        }
        response.end()
      })()
    })
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as AddressInfo).port
  r.url = `http://127.0.0.1:${port}/hook`
  return r
}
/** Engine settings for store-protocol bodies in tests: clamp, no thresholds, loose throttling. */
export const wireConfig: EngineConfig = {
  lowBalanceThreshold: null,
  overdraftLimit: null,
  overage: 'clamp',
  redeemMaxFailures: 1_000,
  redeemWindowMs: 1_000,
}

/** A store-protocol grant operation of `amount`, with an idempotency key when given. */
export const wireGrant = (amount: number, idempotencyKey?: string) => ({
  type: 'grant',
  amount,
  expiresAt: null,
  validityDays: null,
  priority: 50,
  category: 'paid',
  metadata: {},
  ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
})
