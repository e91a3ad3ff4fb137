/**
 * Many app processes, one Tollgate server: app processes meter the same accounts through
 * `httpStore()` at once, and the invariants of DESIGN section 1 hold across them, as they do
 * for processes sharing one database (postgres-processes.test.ts). The server runs in a process
 * of its own, on file-backed PGlite and on PostgreSQL. Workers (test/workers/*.mjs) are plain
 * Node scripts over the built packages: run `corepack pnpm build` first.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer as createTcpServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createMeter, httpStore, type Meter } from '@tollgate/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  contend as contendWith,
  countTypes,
  createTenantKey,
  databaseUrl,
  dropSchemas,
  expectManyAccountsSettle,
  expectReplays as expectReplaysIn,
  gateOnDatabase,
  kill,
  startServer,
  stop,
} from './processes.js'

gateOnDatabase('httpStore processes over a server on PostgreSQL')

/**
 * A TCP proxy to `target` that loses answers: each chunk coming back from the server is dropped
 * with probability `lossRate`, and both connections with it, so the client sees the connection
 * fail after the server did the work. Requests always arrive.
 */
async function lossyProxy(
  target: string,
  lossRate: number,
): Promise<{ url: string; dropped: () => number; close: () => Promise<void> }> {
  const { hostname, port } = new URL(target)
  let dropped = 0
  const sockets = new Set<Socket>()
  const proxy: Server = createTcpServer((client) => {
    const upstream = connect(Number(port), hostname)
    sockets.add(client).add(upstream)
    const end = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
    client.pipe(upstream)
    upstream.on('data', (chunk: Buffer) => {
      if (Math.random() < lossRate) {
        dropped++
        end()
      } else {
        client.write(chunk)
      }
    })
  })
  proxy.listen(0, '127.0.0.1')
  await new Promise((r) => proxy.once('listening', r))
  const address = proxy.address() as { port: number }
  return {
    url: `http://127.0.0.1:${address.port}`,
    dropped: () => dropped,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy()
        proxy.close(() => resolve())
      }),
  }
}

/** The replay check, and: transport keys dedupe retries but never reach the ledger. */
async function expectReplays(meter: Meter, account: string) {
  const out = await expectReplaysIn(meter, account)
  expect(out.entries.filter((e) => e.idempotencyKey !== undefined)).toEqual([])
  return out
}

const APPS = 4
const LOOPS = 32

/**
 * Registers the scenarios against a server process started with `serverArgs()` (called in
 * beforeAll, so a skipped block starts nothing).
 */
function describeServerProcesses(
  name: string,
  serverArgs: () => Record<string, unknown>,
  cleanup: () => Promise<void>,
  skip = false,
) {
  describe.skipIf(skip)(name, () => {
    let server: { child: ChildProcess; url: string; adminKey: string } | undefined
    let apiKey = ''
    let meter: Meter
    beforeAll(async () => {
      server = await startServer(serverArgs())
      // The apps hold a tenant key: no Tollgate-Tenant header, the key decides the tenant.
      apiKey = await createTenantKey(server.url, server.adminKey, `procs_${process.pid}`)
      meter = createMeter({ store: httpStore({ url: server.url, apiKey }), cache: false })
    }, 60_000)
    afterAll(async () => {
      await meter?.close()
      if (server) expect(await stop(server.child)).toBe(0)
      await cleanup()
    }, 30_000)

    const contend = (
      accounts: string[],
      attempts: number,
      transport: Record<string, number> = {},
      url = server!.url,
    ) =>
      contendWith({ url, apiKey, transport }, accounts, attempts, { processes: APPS, loops: LOOPS })

    it(`${APPS} app processes × ${LOOPS} loops, one account with 1,000 credits, 3,000 attempts`, async () => {
      await meter.grant('hot', 1_000)
      const r = await contend(['hot'], 3_000)
      expect(r.errors).toEqual([])
      expect(r.ok).toBe(1_000)
      expect(r.insufficient).toBe(2_000)
      const { balance, entries } = await expectReplays(meter, 'hot')
      expect(balance).toMatchObject({ total: 0, held: 0, available: 0, debt: 0 })
      // Every hold resolved, each by exactly one commit; no operation applied twice.
      expect(countTypes(entries)).toEqual({ grant: 1, hold: 1_000, commit: 1_000 })
      expect(-entries.filter((e) => e.type === 'commit').reduce((s, e) => s + e.delta, 0)).toBe(
        1_000,
      )
      expect(new Set(entries.filter((e) => e.type === 'hold').map((e) => e.holdId)).size).toBe(
        1_000,
      )
    }, 120_000)

    it(`${APPS} app processes × ${LOOPS} loops over 1,000 accounts with 2 credits each, 3 attempts each`, async () => {
      await expectManyAccountsSettle(meter, contend)
    }, 120_000)

    it('answers lost on the way back (a lossy proxy): every operation still applies exactly once', async () => {
      await meter.grant('lossy', 1_000)
      // httpStore batches what its loops send together: a few hundred requests of up to 32
      // operations each. At a 20 % loss, dozens of answers are lost, each a whole batch retried
      // under its transport keys (an operation failing all 11 attempts: 0.2^11, about 2e-8).
      const proxy = await lossyProxy(server!.url, 0.2)
      try {
        const r = await contend(['lossy'], 3_000, { retries: 10, retryBaseMs: 1 }, proxy.url)
        expect(proxy.dropped()).toBeGreaterThan(20)
        expect(r.errors).toEqual([])
        expect(r.ok).toBe(1_000)
        expect(r.insufficient).toBe(2_000)
      } finally {
        await proxy.close()
      }
      const { balance, entries } = await expectReplays(meter, 'lossy')
      // A retry that applied again would leave a second hold (credits held), or settle a hold
      // twice (hold_resolved among the errors).
      expect(balance).toMatchObject({ total: 0, held: 0, available: 0, debt: 0 })
      expect(countTypes(entries)).toEqual({ grant: 1, hold: 1_000, commit: 1_000 })
    }, 120_000)

    it('the server killed mid-load and restarted on its store: no operation lost or applied twice', async () => {
      await meter.grant('crash', 1_000)
      // Retries enough to ride out the restart (~10 s): each request waits for the server.
      const load = contend(['crash'], 3_000, { retries: 40, retryBaseMs: 20, retryMaxMs: 250 })
      let before = 0
      // Killed in the middle of the load: requests are in flight at this moment.
      while (before < 200) {
        await new Promise((r) => setTimeout(r, 50))
        before = (await meter.ledger('crash', { limit: 1000, types: ['commit'] })).entries.length
      }
      await kill(server!.child)
      const port = Number(new URL(server!.url).port)
      server = await startServer({ ...serverArgs(), port })
      // Not the first start: the store kept the admin key, and the apps' tenant key.
      expect(server.adminKey).toBeNull()
      const r = await load
      expect(r.errors).toEqual([])
      expect(r.ok).toBe(1_000)
      expect(r.insufficient).toBe(2_000)
      const { balance, entries } = await expectReplays(meter, 'crash')
      expect(balance).toMatchObject({ total: 0, held: 0, available: 0, debt: 0 })
      expect(countTypes(entries)).toEqual({ grant: 1, hold: 1_000, commit: 1_000 })
    }, 120_000)
  })
}

const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-http-procs-'))
describeServerProcesses(
  'httpStore: app processes share a server on PGlite (file)',
  () => ({ dataDir }),
  async () => rmSync(dataDir, { recursive: true, force: true }),
)

const schema = `tg_test_http_procs_${process.pid}_${Date.now().toString(36)}`
describeServerProcesses(
  'httpStore: app processes share a server on PostgreSQL',
  () => ({ url: databaseUrl, schema }),
  async () => {
    await dropSchemas(schema)
  },
  !databaseUrl,
)
