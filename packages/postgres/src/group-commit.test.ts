/**
 * Group commit on PGlite (in memory, one connection): concurrent operations share transactions,
 * and the outcome is the same as running them one at a time.
 */
import { PGlite } from '@electric-sql/pglite'
import { createMeter, type Meter } from '@tollgate/core'
import type { EngineConfig, Operation } from '@tollgate/core/engine'
import { type ExecuteRequest, newId } from '@tollgate/core/store'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { sizeRange } from './group-commit.js'
import { pgliteStore } from './pglite-store.js'
import type { PostgresStore } from './sql-store.js'
import { expectLedgerReplays, ledgerOldestFirst, normalizeIds, settle } from './test-support.js'

const NOW = Date.UTC(2030, 0, 1)
const clock = () => NOW
let tenantNo = 0

// One PGlite for the file: starting one takes a while. Stores over it use their own schemas.
let db: PGlite
beforeAll(async () => {
  db = await PGlite.create()
})
afterAll(() => db.close())

let schemaNo = 0
async function newStore(options: Parameters<typeof pgliteStore>[0] = {}): Promise<PostgresStore> {
  schemaNo += 1
  const store = pgliteStore({ client: db, schema: `gc_${schemaNo}`, ...options })
  await store.migrate()
  return store
}

function meterOf(store: PostgresStore): Meter {
  tenantNo += 1
  return createMeter({ store, clock, tenant: `t${tenantNo}`, cache: false, migrate: false })
}

/** The same calls, concurrently on one meter and one by one on another; returns both results. */
type Settled = Awaited<ReturnType<typeof settle>>

async function bothWays(
  calls: ((m: Meter) => Promise<unknown>)[],
): Promise<{ together: Settled[]; oneByOne: Settled[]; batched: PostgresStore }> {
  const batched = await newStore()
  const serial = await newStore({ groupCommit: false })
  const a = meterOf(batched)
  const b = meterOf(serial)
  batched.resetStats()
  const together = await Promise.all(calls.map((call) => settle(call(a))))
  const oneByOne: Settled[] = []
  for (const call of calls) oneByOne.push(await settle(call(b)))
  return { together, oneByOne, batched }
}

describe('group commit', () => {
  it('puts concurrent operations on one account into fewer transactions, with the same results', async () => {
    const calls: ((m: Meter) => Promise<unknown>)[] = [
      (m) => m.grant('a', 50),
      ...Array.from({ length: 30 }, () => (m: Meter) => m.debit('a', 1)),
      (m) => m.reserve('a', 5).then((h) => h.toJSON()),
      (m) => m.debit('a', 100), // insufficient: refused, the batch goes on
      (m) => m.configure('a', { lowBalanceThreshold: 10 }),
      (m) => m.debit('a', 1),
      (m) => m.balance('a', { fresh: true }),
    ]
    const { together, oneByOne, batched } = await bothWays(calls)
    expect(normalizeIds(together)).toEqual(normalizeIds(oneByOne))
    expect(together.filter((r) => 'error' in r)).toEqual([{ error: 'insufficient_credits' }])
    const stats = batched.stats()
    expect(stats.operations).toBe(calls.length)
    expect(stats.batches).toBeLessThan(calls.length)
    expect(stats.batches).toBe(1)
    expect(stats.batchSizes).toEqual({ [sizeRange(calls.length)]: 1 })
  })

  it('runs operations on many accounts in one batch, each as if alone', async () => {
    const accounts = ['x', 'y', 'Ünïcødé ☃', "z'; DROP TABLE accounts;--"]
    const calls: ((m: Meter) => Promise<unknown>)[] = []
    for (let i = 0; i < 5; i++) {
      for (const [n, acct] of accounts.entries()) {
        calls.push((m) => m.grant(acct, 10 + n, { priority: i }))
        calls.push((m) => m.debit(acct, 3 + i))
      }
    }
    for (const acct of accounts) calls.push((m) => m.balance(acct, { fresh: true }))
    const { together, oneByOne, batched } = await bothWays(calls)
    expect(normalizeIds(together)).toEqual(normalizeIds(oneByOne))
    expect(batched.stats()).toMatchObject({ batches: 1, operations: calls.length })
    const meter = meterOf(batched)
    await Promise.all(accounts.map((a) => meter.grant(a, 1)))
    for (const a of accounts) await expectLedgerReplays(meter, a)
  })

  it('keeps tenants apart inside one batch', async () => {
    const store = await newStore()
    const a = meterOf(store)
    const b = meterOf(store)
    await Promise.all([
      a.grant('same', 10, { idempotencyKey: 'k' }),
      b.grant('same', 3, { idempotencyKey: 'k' }),
      a.debit('same', 1),
      b.debit('same', 1),
    ])
    expect(store.stats().batches).toBe(1)
    expect((await expectLedgerReplays(a, 'same')).total).toBe(9)
    expect((await expectLedgerReplays(b, 'same')).total).toBe(2)
  })

  it('keeps the batch order per account: a write then a read in one batch', async () => {
    const store = await newStore()
    const meter = meterOf(store)
    const [grant, balance] = await Promise.all([
      meter.grant('a', 7),
      meter.balance('a', { fresh: true }),
    ])
    expect(grant.balance.total).toBe(7)
    expect(balance.total).toBe(7)
  })

  for (const holdCacheSize of [10_000, 0]) {
    const how = holdCacheSize === 0 ? 'looked up by id' : 'known from the cache'
    it(`settles holds named by id in the batch of their account (${how})`, async () => {
      const store = await newStore({ holdCacheSize })
      const meter = meterOf(store)
      await meter.grant('a', 100)
      const [h1, h2, h3, h4] = await Promise.all([1, 2, 3, 4].map(() => meter.reserve('a', 10)))
      store.resetStats()
      const results = await Promise.all([
        settle(h1!.commit(4)),
        settle(h2!.release()),
        settle(h3!.extend(120_000)),
        settle(meter.debit('a', 1)),
        settle(meter.commit(h1!.id)), // the same hold again, later in the batch
        settle(meter.release('hld_NOSUCHHOLD0000000000000')),
        settle(h4!.commit(10, { idempotencyKey: 'c4' })),
        settle(h4!.commit(10, { idempotencyKey: 'c4' })), // replayed from earlier in the batch
      ])
      expect(results[0]).toMatchObject({ ok: { charged: 4, shortfall: 0 } })
      expect(results[1]).toMatchObject({ ok: { freed: 10 } })
      expect(results[2]).toMatchObject({ ok: { expiresAt: NOW + 120_000 } })
      expect(results[3]).toMatchObject({ ok: { amount: 1 } })
      expect(results[4]).toEqual({ error: 'hold_resolved' })
      expect(results[5]).toEqual({ error: 'not_found' })
      expect(results[6]).toMatchObject({ ok: { charged: 10, replayed: false } })
      expect(results[7]).toMatchObject({ ok: { charged: 10, replayed: true } })
      expect(store.stats()).toMatchObject({ batches: 1, operations: 8 })
      const b = await expectLedgerReplays(meter, 'a')
      expect(b).toMatchObject({ total: 85, held: 10 })
    })
  }

  it('makes a hold created earlier in the batch visible to a later operation', async () => {
    const store = await newStore()
    const tenant = 'direct'
    const config: EngineConfig = {
      lowBalanceThreshold: null,
      overdraftLimit: null,
      overage: 'clamp',
      redeemMaxFailures: 10,
      redeemWindowMs: 3_600_000,
    }
    const holdId = newId('hld', NOW)
    const req = (account: string | undefined, op: Operation): ExecuteRequest => ({
      tenant,
      account,
      op,
      now: NOW,
      config,
      newId: (prefix, at) => (prefix === 'hld' ? holdId : newId(prefix, at)),
    })
    const none = {}
    const outcomes = await Promise.all([
      store.execute(
        req('a', {
          type: 'grant',
          amount: 50,
          expiresAt: null,
          validityDays: null,
          priority: 50,
          category: 'paid',
          metadata: none,
        }),
      ),
      store.execute(req('a', { type: 'reserve', amount: 20, ttlMs: 60_000, metadata: none })),
      store.execute(
        req(undefined, {
          type: 'commit',
          holdId,
          actual: 15,
          overage: undefined,
          metadata: none,
        }),
      ),
    ])
    expect(outcomes.map((o) => o.error)).toEqual([null, null, null])
    expect(outcomes[2]!.result).toMatchObject({ holdId, charged: 15, freed: 5 })
    expect(outcomes[2]!.balance).toMatchObject({ total: 35, held: 0 })
    expect(store.stats().batches).toBe(1)
    const meter = createMeter({ store, clock, tenant, migrate: false })
    expect((await ledgerOldestFirst(meter, 'a')).map((e) => e.type)).toEqual([
      'grant',
      'hold',
      'commit',
    ])
  })

  it('sees an idempotency key saved earlier in the same batch', async () => {
    const store = await newStore()
    const meter = meterOf(store)
    const results = await Promise.all([
      settle(meter.grant('a', 100, { idempotencyKey: 'k' })),
      settle(meter.grant('a', 100, { idempotencyKey: 'k' })),
      settle(meter.grant('a', 999, { idempotencyKey: 'k' })),
      settle(meter.grant('b', 100, { idempotencyKey: 'k' })),
    ])
    expect(results[0]).toMatchObject({ ok: { replayed: false } })
    expect(results[1]).toEqual({ ok: { ...(results[0] as { ok: object }).ok, replayed: true } })
    expect(results[2]).toEqual({ error: 'idempotency_conflict' })
    expect(results[3]).toEqual({ error: 'idempotency_conflict' })
    expect(store.stats().batches).toBe(1)
    expect((await meter.balance('a', { fresh: true })).total).toBe(100)
    expect((await meter.balance('b', { fresh: true })).total).toBe(0)
  })

  it('respects maxBatch', async () => {
    const store = await newStore({ maxBatch: 3 })
    const meter = meterOf(store)
    await Promise.all(Array.from({ length: 10 }, () => meter.grant('a', 1)))
    expect(store.stats()).toMatchObject({ batches: 4, operations: 10, largestBatch: 3 })
    expect((await meter.balance('a', { fresh: true })).total).toBe(10)
  })

  it('reports each committed batch to its observers, until they stop', async () => {
    const store = await newStore({ maxBatch: 3 })
    const meter = meterOf(store)
    const sizes: number[] = []
    const stop = store.observe({
      batchCommitted: (size, seconds) => {
        expect(seconds).toBeGreaterThanOrEqual(0)
        sizes.push(size)
      },
    })
    await Promise.all(Array.from({ length: 10 }, () => meter.grant('a', 1)))
    expect(sizes.sort()).toEqual([1, 3, 3, 3])
    stop()
    await meter.grant('a', 1)
    expect(sizes).toHaveLength(4)
    expect(store.stats().batches).toBe(5)
  })

  it('runs one transaction per operation with groupCommit: false', async () => {
    const store = await newStore({ groupCommit: false })
    const meter = meterOf(store)
    await Promise.all(Array.from({ length: 10 }, () => meter.grant('a', 1)))
    expect(store.stats()).toMatchObject({ batches: 10, operations: 10, largestBatch: 1 })
  })

  it('waits up to maxWaitMs for a batch to fill', async () => {
    const store = await newStore({ maxWaitMs: 30 })
    const meter = meterOf(store)
    const first = meter.grant('a', 1)
    await new Promise((resolve) => setTimeout(resolve, 5))
    await Promise.all([first, meter.grant('a', 1), meter.grant('b', 1)])
    expect(store.stats()).toMatchObject({ batches: 1, operations: 3 })
  })

  it('writes nothing for a read of an unknown account', async () => {
    const store = await newStore()
    const meter = meterOf(store)
    expect(await meter.balance('ghost', { fresh: true })).toMatchObject({ total: 0 })
    const { rows } = await db.query<{ n: number }>(
      `SELECT count(*)::int4 AS n FROM gc_${schemaNo}.accounts WHERE tenant = $1`,
      [meter.tenant],
    )
    expect(rows[0]!.n).toBe(0)
  })

  describe('a database error', () => {
    let store: PostgresStore
    let meter: Meter
    beforeEach(async () => {
      store = await newStore()
      meter = meterOf(store)
      // A real error raised by the database in the middle of the batch's write.
      await db.exec(`
CREATE FUNCTION gc_${schemaNo}.fail() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'injected failure'; END $$;
CREATE TRIGGER fail BEFORE INSERT ON gc_${schemaNo}.ledger FOR EACH ROW
WHEN (NEW.metadata::text LIKE '%"fail":true%') EXECUTE FUNCTION gc_${schemaNo}.fail();`)
    })

    it('fails the whole batch with StoreUnavailableError and writes nothing', async () => {
      await meter.grant('b', 100)
      const before = await ledgerOldestFirst(meter, 'b')
      store.resetStats()
      const results = await Promise.allSettled([
        meter.grant('a', 10),
        meter.debit('b', 5, { metadata: { fail: true } }),
        meter.grant('c', 7, { idempotencyKey: 'k' }),
      ])
      for (const r of results) {
        expect(r.status).toBe('rejected')
        const err = (r as PromiseRejectedResult).reason as { code: string; cause?: unknown }
        expect(err.code).toBe('store_unavailable')
        expect(String((err.cause as Error).message)).toContain('injected failure')
      }
      expect(store.stats()).toMatchObject({
        batches: 0,
        failedBatches: 1,
        failedOperations: 3,
        retries: 0,
      })
      expect((await meter.balance('a', { fresh: true })).total).toBe(0)
      expect((await meter.balance('b', { fresh: true })).total).toBe(100)
      expect(await ledgerOldestFirst(meter, 'b')).toEqual(before)
      // The key was not consumed: the next call runs.
      expect(await meter.grant('c', 7, { idempotencyKey: 'k' })).toMatchObject({ replayed: false })
      // The store works on.
      expect((await meter.debit('b', 5)).balance.total).toBe(95)
    })
  })

  it('refuses metadata over 4 KiB through the meter (InvalidInputError)', async () => {
    const store = await newStore()
    const meter = meterOf(store)
    const big = { note: 'x'.repeat(4_100) }
    await expect(meter.grant('a', 1, { metadata: big })).rejects.toMatchObject({
      code: 'invalid_input',
    })
    expect(store.stats().operations).toBe(0)
  })

  it('stores metadata as given: unicode, escapes and key order', async () => {
    const store = await newStore()
    const meter = meterOf(store)
    const metadata = { z: 1, a: 'tab\there "q" \\u0000', '☃': { nested: [1, 'two 😀', null] } }
    await meter.grant('a', 1, { metadata })
    const [entry] = await ledgerOldestFirst(meter, 'a')
    expect(entry!.metadata).toEqual(metadata)
    expect(Object.keys(entry!.metadata)).toEqual(['z', 'a', '☃'])
    // NUL itself is refused at the edge (a jsonb cast or `->>` of it fails in PostgreSQL).
    await expect(meter.grant('a', 1, { metadata: { a: 'nul\u0000here' } })).rejects.toMatchObject({
      code: 'invalid_input',
      field: 'metadata.a',
    })
  })

  it('answers hold ids and idempotency keys PostgreSQL cannot store without a round trip', async () => {
    const store = await newStore()
    const meter = meterOf(store)
    // The meter refuses them before the store; the store answers them alone too (no batch).
    await expect(meter.commit('hld_\u0000')).rejects.toMatchObject({
      code: 'invalid_input',
      field: 'holdId',
    })
    await expect(meter.grant('a', 1, { idempotencyKey: 'k\u0000' })).rejects.toMatchObject({
      code: 'invalid_input',
    })
    const config = {
      lowBalanceThreshold: null,
      overdraftLimit: null,
      overage: 'clamp' as const,
      redeemMaxFailures: 10,
      redeemWindowMs: 60_000,
    }
    const direct = await store.execute({
      tenant: 'default',
      account: undefined,
      op: { type: 'release', holdId: 'hld_\u0000', metadata: {}, idempotencyKey: undefined },
      now: Date.now(),
      config,
      newId: () => 'x',
    })
    expect(direct.error).toMatchObject({ code: 'not_found' })
    expect(store.stats().operations).toBe(0)
  })
})
