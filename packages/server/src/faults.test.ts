/**
 * Faults stay with the request that caused them: large bodies from tenant keys, a key registry
 * that cannot be read, floods of unknown keys, and very many tenants.
 */
import { connect } from 'node:net'
import { createMeter, memoryStore, type Store } from '@tollgate/core'
import { type ApiKeyRecord, type KeyRegistry, memoryKeyRegistry } from '@tollgate/core/store'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hashApiKey, KeyVerifier } from './api-keys.js'
import {
  call,
  describeSqlStores,
  fakeClock,
  rawRequest,
  startServer,
  type TestServer,
} from './test-support.js'

const MiB = 1024 * 1024

/**
 * Streams `total` bytes of a JSON-looking body in chunks (no Content-Length) and resolves with
 * the status the server answered with, stopping as soon as it answered.
 */
function streamBody(
  url: string,
  key: string,
  path: string,
  total: number,
): Promise<number | 'cut off'> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) })
    let answer = ''
    let sent = 0
    const chunk = Buffer.alloc(64 * 1024, 0x20) // spaces: valid JSON whitespace
    socket.on('data', (d: Buffer) => {
      answer += d.toString('latin1')
      const m = /^HTTP\/1\.1 (\d{3})/.exec(answer)
      if (m) {
        resolve(Number(m[1]))
        socket.destroy()
      }
    })
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (answer !== '') return
      // The server answered and closed while this side was still writing: its answer can be
      // lost to the reset (unread data makes the close a TCP RST). Cut off mid-body is what the
      // test checks for then; a reset after the whole body was sent is a failure.
      const reset = err.code === 'EPIPE' || err.code === 'ECONNRESET'
      if (reset && sent < total) resolve('cut off')
      else reject(err)
    })
    socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0)))
    socket.write(
      `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n` +
        'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n',
    )
    const pump = (): void => {
      while (sent < total && !socket.destroyed) {
        sent += chunk.length
        const ok = socket.write(`${chunk.length.toString(16)}\r\n${chunk.toString()}\r\n`)
        if (!ok) {
          socket.once('drain', pump)
          return
        }
      }
      if (!socket.destroyed) socket.write('0\r\n\r\n')
    }
    pump()
  })
}

/** A batch body of `n` code records (about 270 bytes each). */
function codeBatch(n: number, batchId: string): string {
  const codes = Array.from({ length: n }, (_, i) => ({
    hash: i.toString(16).padStart(64, '0'),
    batchId,
    credits: 1,
    validityDays: null,
    codeExpiresAt: null,
    maxRedemptions: 1,
    redemptions: 0,
    priority: 50,
    category: 'paid',
    createdAt: 0,
  }))
  return JSON.stringify({ batchId, codes, idempotency: null, now: 0 })
}

describe('large bodies', () => {
  let t: TestServer
  let tenant: string

  beforeAll(async () => {
    t = await startServer()
    tenant = (await t.createKey('bulk')).key
  })
  afterAll(() => t.close())

  it('96 declared 32 MiB code batches from a tenant key are 413 at once; /healthz answers', async () => {
    const head = (i: number) =>
      `POST /v1/store/codes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tenant}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${32 * MiB}\r\nConnection: close\r\n\r\n` +
      `{"batchId":"b${i}","codes":[`
    const big = Array.from({ length: 96 }, (_, i) => rawRequest(t.url, head(i)))
    const health = call(t.url, null, 'GET', '/healthz')
    const answers = await Promise.all(big)
    for (const a of answers) {
      expect(a.status).toBe(413)
      expect(a.headers['content-type']).toMatch(/^application\/problem\+json/)
      expect(JSON.parse(a.body)).toMatchObject({
        code: 'invalid_input',
        field: 'body',
        detail: `body: must be at most ${MiB} bytes`,
      })
    }
    expect((await health).status).toBe(200)
  })

  it('streamed (chunked) bodies past the limit are cut off with 413; /healthz answers', async () => {
    const streams = Array.from({ length: 8 }, () =>
      streamBody(t.url, tenant, '/v1/store/codes', 8 * MiB),
    )
    const health = call(t.url, null, 'GET', '/healthz')
    for (const answer of await Promise.all(streams)) expect([413, 'cut off']).toContain(answer)
    expect((await health).status).toBe(200)
    // The same stream within the limit is read and parsed (then refused by the schema).
    expect(await streamBody(t.url, tenant, '/v1/store/codes', 256 * 1024)).toBe(400)
  })

  it('a tenant batch within 1 MiB is stored; a larger one is only for admin keys', async () => {
    const small = await t.call('POST', '/v1/store/codes', {
      key: tenant,
      raw: codeBatch(1_000, 'small'),
    })
    expect(small.status).toBe(200)
    const large = codeBatch(10_000, 'large')
    expect(Buffer.byteLength(large)).toBeGreaterThan(2 * MiB)
    const refused = await t.call('POST', '/v1/store/codes', { key: tenant, raw: large })
    expect(refused.status).toBe(413)
    const admin = await t.call('POST', '/v1/store/codes', {
      raw: large,
      headers: { 'tollgate-tenant': 'bulk' },
    })
    expect(admin.status).toBe(200)
    expect(admin.body).toMatchObject({ status: 'created' })
  })
})

/** A registry that counts lookups: the real memory registry underneath. */
function countingRegistry(): KeyRegistry & { finds: () => number } {
  const inner = memoryKeyRegistry()
  let finds = 0
  return {
    ...inner,
    findKey: (id) => {
      finds++
      return inner.findKey(id)
    },
    finds: () => finds,
  }
}

describe('key lookups', () => {
  it('an unknown id costs one registry query per interval, however many requests carry it', async () => {
    let now = Date.UTC(2030, 0, 1)
    const keys = countingRegistry()
    const verifier = new KeyVerifier(keys, () => now)
    const bogus = `tg_sk_${'z'.repeat(16)}_${'C'.repeat(43)}`
    // Concurrent and sequential lookups of the same unknown id.
    await Promise.all(Array.from({ length: 50 }, () => verifier.verify(bogus)))
    for (let i = 0; i < 50; i++) expect(await verifier.verify(bogus)).toBeNull()
    expect(keys.finds()).toBe(1)
    now += 2_001
    expect(await verifier.verify(bogus)).toBeNull()
    expect(keys.finds()).toBe(2)
    // A key created meanwhile under a remembered id is found once the entry is forgotten.
    const record: ApiKeyRecord = {
      id: 'z'.repeat(16),
      tenant: 't',
      role: 'tenant',
      name: '',
      hash: hashApiKey(bogus),
      createdAt: 0,
      revokedAt: null,
    }
    await keys.createKey(record)
    expect(await verifier.verify(bogus)).toBeNull()
    verifier.forget(record.id)
    expect(await verifier.verify(bogus)).toMatchObject({ id: record.id, tenant: 't' })
  })

  it('the caches stay bounded under a flood of distinct ids', async () => {
    const keys = countingRegistry()
    const verifier = new KeyVerifier(keys)
    for (let i = 0; i < 30_000; i++) {
      await verifier.verify(`tg_sk_${i.toString(36).padStart(16, 'x')}_${'D'.repeat(43)}`)
    }
    expect(verifier.size).toBeLessThanOrEqual(20_000)
  })
})

describeSqlStores('a key registry that cannot be read', (kind) => {
  it('answers 503 store_unavailable without the database message, then recovers', async () => {
    const db = kind.make()
    const t = await startServer({ store: db.store })
    try {
      const a = await t.createKey('acme')
      const b = await t.createKey('acme')
      expect((await t.call('GET', '/v1/accounts/x/balance', { key: a.key })).status).toBe(200)
      // The table goes away under the running server (as in a failed restore or a revoked
      // grant): every lookup the cache cannot answer fails in the database.
      await db.sql(`ALTER TABLE ${db.schema}.api_keys RENAME TO api_keys_gone`)
      const res = await t.call('GET', '/v1/accounts/x/balance', { key: b.key })
      expect(res.status).toBe(503)
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
      expect(res.body).toMatchObject({ code: 'store_unavailable', status: 503 })
      expect(res.text).not.toMatch(/api_keys|relation|does not exist/)
      const list = await t.call('GET', '/v1/keys')
      expect(list.status).toBe(503)
      expect(list.text).not.toMatch(/api_keys|relation|does not exist/)
      await db.sql(`ALTER TABLE ${db.schema}.api_keys_gone RENAME TO api_keys`)
      expect((await t.call('GET', '/v1/accounts/x/balance', { key: b.key })).status).toBe(200)
    } finally {
      await t.close()
    }
  }, 60_000)

  it('the sweeper finds tenants from the store, including ones this server never saw', async () => {
    const db = kind.make()
    const clock = fakeClock()
    const t = await startServer({ store: db.store, clock: clock.now })
    try {
      // Another process (a meter straight on the store) leaves a hold to expire in a tenant this
      // server has no key for and never served.
      const other = createMeter({
        store: db.store,
        tenant: 'elsewhere',
        cache: false,
        clock: clock.now,
      })
      await other.grant('u', 10)
      const hold = await other.reserve('u', 4, { ttlMs: 1_000 })
      expect((await other.balance('u', { fresh: true })).held).toBe(4)
      clock.advance(2_000)
      await t.server.sweep()
      const ledger = await other.ledger('u')
      expect(ledger.entries.map((e) => e.type)).toContain('release')
      expect(ledger.entries.find((e) => e.type === 'release')).toMatchObject({ holdId: hold.id })
    } finally {
      await t.close()
    }
  }, 60_000)
})

describe('many tenants', () => {
  it('Store.tenants pages through every tenant of the memory store in order', async () => {
    const store: Store = memoryStore()
    for (let i = 0; i < 250; i++) {
      await createMeter({ store, tenant: `t${String(i).padStart(3, '0')}` }).grant('a', 1)
    }
    const seen: string[] = []
    let after: string | null = null
    for (;;) {
      const page: string[] = await store.tenants!(after, 100)
      seen.push(...page)
      if (page.length < 100) break
      after = page[page.length - 1]!
    }
    expect(seen).toHaveLength(250)
    expect(seen).toEqual([...seen].sort())
    expect(new Set(seen).size).toBe(250)
  })

  it('an admin naming 3,000 tenants leaves bounded state, and each is still served', async () => {
    const t = await startServer()
    try {
      for (let i = 0; i < 3_000; i++) {
        const res = await t.call('POST', '/v1/accounts/a/grants', {
          body: { amount: 1 },
          headers: { 'tollgate-tenant': `tenant-${i}` },
        })
        expect(res.status).toBe(201)
      }
      expect(t.server.stats().meters).toBeLessThanOrEqual(1_000)
      // The first tenant's meter was evicted long ago; it is made again, with its credits.
      const again = await t.call('GET', '/v1/accounts/a/balance', {
        headers: { 'tollgate-tenant': 'tenant-0' },
      })
      expect(again.body).toMatchObject({ total: 1 })
      await t.server.sweep()
    } finally {
      await t.close()
    }
  }, 120_000)
})
