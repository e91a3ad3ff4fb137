/**
 * Faults stay where they start (DESIGN section 2), across processes: a Tollgate server process
 * on PostgreSQL, clients over its REST API, each request timed and its answer recorded.
 *
 * - An account row locked from another connection for 15 s: the operations on that account
 *   fail with 503 `store_unavailable` within their deadline, while other accounts and another
 *   tenant keep being served (p95 < 1 s); afterwards the ledger holds exactly the operations
 *   answered 200.
 * - The way to the database frozen for 10 s (a proxy that stops carrying anything): clients
 *   get 503 within their deadline, not after the freeze; afterwards the ledger holds exactly the
 *   operations answered 200, none of those answered 503.
 *
 * These run after the other cross-process files (test/vitest.config.ts): their latency figures
 * are about the server, not about a machine busy with other tests.
 */
import type { ChildProcess } from 'node:child_process'
import { createMeter, type Meter } from '@tollgate/core'
import { postgresStore } from '@tollgate/postgres'
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import {
  DebitClient,
  debitLoops,
  expectLedgerMatchesAnswers,
  freezableProxy,
  percentile,
  type Sample,
  summary,
} from './faults.js'
import {
  createTenantKey,
  databaseUrl,
  dropSchemas,
  gateOnDatabase,
  startServer,
  stop,
} from './processes.js'

gateOnDatabase('fault isolation across processes on PostgreSQL')

/** The server's default deadline (createServer timeoutMs, postgresStore timeoutMs). */
const DEADLINE_MS = 5_000
/** How much later than its deadline a 503 may arrive: the watchdog's grace, and scheduling. */
const ANSWER_SLACK_MS = 1_500

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe.skipIf(!databaseUrl)('faults through a server on PostgreSQL', () => {
  const run = `${process.pid}_${Date.now().toString(36)}`
  // A schema per test: each starts its server on an empty store (and gets its admin key).
  const schemas: string[] = []
  const meters: Meter[] = []
  const servers: ChildProcess[] = []
  const meterOf = (schema: string, tenant: string) => {
    const store = postgresStore({ connectionString: databaseUrl!, schema, poolSize: 4 })
    const meter = createMeter({ store, tenant, cache: false })
    meters.push(meter)
    return meter
  }
  afterAll(async () => {
    await Promise.all(meters.map((m) => m.close()))
    for (const child of servers) await stop(child)
    await dropSchemas(...schemas)
  }, 60_000)

  async function serve(url: string, label: string) {
    const schema = `tg_test_${label}_${run}`
    schemas.push(schema)
    const server = await startServer({ url, schema })
    servers.push(server.child)
    return { ...server, schema }
  }

  it('an account row locked elsewhere for 15 s fails only its own operations, within the deadline; other accounts and tenants keep p95 < 1 s', async () => {
    const server = await serve(databaseUrl!, 'lock')
    const { schema } = server
    const keyA = await createTenantKey(server.url, server.adminKey, 'lock_a')
    const keyB = await createTenantKey(server.url, server.adminKey, 'lock_b')
    const meterA = meterOf(schema, 'lock_a')
    const meterB = meterOf(schema, 'lock_b')
    const aAccounts = ['a0', 'a1', 'a2', 'a3']
    const bAccounts = ['b0', 'b1', 'b2', 'b3']
    await meterA.grant('locked', 1_000)
    for (const a of aAccounts) await meterA.grant(a, 1_000_000)
    for (const b of bAccounts) await meterB.grant(b, 1_000_000)

    const LOCK_MS = 15_000
    const locker = new pg.Client({ connectionString: databaseUrl })
    await locker.connect()
    await locker.query('BEGIN')
    await locker.query(
      `SELECT 1 FROM "${schema}".accounts WHERE tenant = 'lock_a' AND account = 'locked' FOR UPDATE`,
    )
    const origin = performance.now()
    const elapsed = () => performance.now() - origin
    const onLocked = new DebitClient(server.url, keyA, 'lock_a', origin)
    const tenantA = new DebitClient(server.url, keyA, 'lock_a', origin)
    const tenantB = new DebitClient(server.url, keyB, 'lock_b', origin)
    try {
      const loads = Promise.all([
        // Only requests whose whole deadline falls inside the lock: each must fail.
        debitLoops(
          onLocked,
          ['locked'],
          4,
          'locked',
          () => elapsed() >= LOCK_MS - DEADLINE_MS - 1_000,
        ),
        debitLoops(tenantA, aAccounts, 4, 'a', () => elapsed() >= LOCK_MS),
        debitLoops(tenantB, bAccounts, 4, 'b', () => elapsed() >= LOCK_MS),
      ])
      await sleep(LOCK_MS - elapsed())
      await locker.query('ROLLBACK')
      await loads
    } finally {
      await locker.end()
      await Promise.all([onLocked.close(), tenantA.close(), tenantB.close()])
    }

    const locked = onLocked.samples
    const freeA = tenantA.samples
    const freeB = tenantB.samples
    console.log(
      `[row lock 15 s] locked account: ${JSON.stringify(summary(locked.map((s) => s.ms)))} ms, ` +
        `statuses ${JSON.stringify(countBy(locked, (s) => String(s.status)))}; ` +
        `same tenant, other accounts: ${JSON.stringify(summary(freeA.map((s) => s.ms)))} ms; ` +
        `other tenant: ${JSON.stringify(summary(freeB.map((s) => s.ms)))} ms`,
    )
    // The locked account: every operation failed as 503, within its deadline.
    expect(locked.length).toBeGreaterThan(0)
    for (const s of locked) {
      expect(s).toMatchObject({ status: 503, code: 'store_unavailable' })
      expect(s.retryAfter).toMatch(/^[1-9][0-9]*$/)
      expect(s.ms).toBeLessThan(DEADLINE_MS + ANSWER_SLACK_MS)
    }
    // Everything else was served, and fast.
    expect(freeA.filter((s) => s.status !== 200)).toEqual([])
    expect(freeB.filter((s) => s.status !== 200)).toEqual([])
    expect(freeA.length).toBeGreaterThan(100)
    expect(freeB.length).toBeGreaterThan(100)
    expect(
      percentile(
        freeA.map((s) => s.ms),
        95,
      ),
    ).toBeLessThan(1_000)
    expect(
      percentile(
        freeB.map((s) => s.ms),
        95,
      ),
    ).toBeLessThan(1_000)

    // The lock is gone. Give a late commit every chance to show up, then compare.
    await sleep(1_000)
    expect(await expectLedgerMatchesAnswers(meterA, locked)).toBe(0)
    await expectLedgerMatchesAnswers(meterA, freeA)
    await expectLedgerMatchesAnswers(meterB, freeB)
    // The account works again.
    expect((await meterA.debit('locked', 1)).balance.total).toBe(999)
  }, 120_000)

  it('the way to the database frozen for 10 s: clients get 503 within their deadline, and the ledger holds exactly what was answered 200', async () => {
    const target = new URL(databaseUrl!)
    const proxy = await freezableProxy(Number(target.port || 5432))
    const viaProxy = new URL(databaseUrl!)
    viaProxy.port = String(proxy.port)
    const server = await serve(viaProxy.toString(), 'freeze')
    const keyC = await createTenantKey(server.url, server.adminKey, 'freeze_c')
    const keyD = await createTenantKey(server.url, server.adminKey, 'freeze_d')
    const meterC = meterOf(server.schema, 'freeze_c')
    const meterD = meterOf(server.schema, 'freeze_d')
    const cAccounts = ['c0', 'c1', 'c2', 'c3']
    const dAccounts = ['d0', 'd1', 'd2', 'd3']
    for (const c of cAccounts) await meterC.grant(c, 1_000_000)
    for (const d of dAccounts) await meterD.grant(d, 1_000_000)

    // The clients wait 2 s per request and say so.
    const REQUEST_DEADLINE_MS = 2_000
    const headers = { 'tollgate-deadline-ms': String(REQUEST_DEADLINE_MS) }
    const FREEZE_AT = 2_000
    const FREEZE_MS = 10_000
    const END = FREEZE_AT + FREEZE_MS + 4_000
    const origin = performance.now()
    const elapsed = () => performance.now() - origin
    const clientC = new DebitClient(server.url, keyC, 'freeze_c', origin, headers)
    const clientD = new DebitClient(server.url, keyD, 'freeze_d', origin, headers)
    try {
      const loads = Promise.all([
        debitLoops(clientC, cAccounts, 4, 'c', () => elapsed() >= END),
        debitLoops(clientD, dAccounts, 4, 'd', () => elapsed() >= END),
      ])
      await sleep(FREEZE_AT)
      proxy.pause()
      await sleep(FREEZE_MS)
      proxy.resume()
      await loads
    } finally {
      proxy.resume()
      await Promise.all([clientC.close(), clientD.close()])
    }
    const samples = [...clientC.samples, ...clientD.samples]
    const errors = samples.filter((s) => s.status !== 200)
    const inFreeze = (s: Sample) => s.at >= FREEZE_AT && s.at < FREEZE_AT + FREEZE_MS
    console.log(
      `[frozen 10 s] ${samples.length} requests: ${JSON.stringify(countBy(samples, (s) => `${s.status}${s.code ? ` ${s.code}` : ''}`))}; ` +
        `errors ${JSON.stringify(summary(errors.map((s) => s.ms)))} ms; ` +
        `answered 200 after waiting out the freeze: ${samples.filter((s) => s.status === 200 && s.ms > FREEZE_MS / 2).length}`,
    )
    // The freeze was felt, and the service was there before and after it.
    expect(errors.length).toBeGreaterThan(0)
    expect(samples.filter((s) => s.status === 200 && s.at < FREEZE_AT).length).toBeGreaterThan(0)
    expect(
      samples.filter((s) => s.status === 200 && s.at > FREEZE_AT + FREEZE_MS).length,
    ).toBeGreaterThan(0)
    // Every error is a 503 that says when to come back, answered long before the freeze ended:
    // within the store's timeout (a key lookup) or the request's deadline, plus the slack.
    for (const s of errors) {
      expect(s).toMatchObject({ status: 503, code: 'store_unavailable' })
      expect(s.retryAfter).toMatch(/^[1-9][0-9]*$/)
      expect(s.ms).toBeLessThan(DEADLINE_MS + ANSWER_SLACK_MS)
    }
    expect(errors.filter(inFreeze).length).toBeGreaterThan(0)

    // Give anything late every chance to commit, then compare with the answers.
    await sleep(1_000)
    await expectLedgerMatchesAnswers(meterC, clientC.samples)
    await expectLedgerMatchesAnswers(meterD, clientD.samples)
    await proxy.close()
  }, 120_000)
})

function countBy<T>(items: T[], key: (item: T) => string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const item of items) out[key(item)] = (out[key(item)] ?? 0) + 1
  return out
}
