/**
 * Faults stay where they start (DESIGN section 2), at the store: an operation the database
 * refuses fails alone while the rest of its batch commits; an operation past its deadline is
 * not run; a full queue refuses at once; a row locked elsewhere fails only its own account's
 * operations. On PGlite and PostgreSQL.
 *
 * The refused operations are injected under the meter, into the store, so that no edge
 * validation can catch them first: the store must stand on its own.
 */
import { PGlite } from '@electric-sql/pglite'
import { createMeter, isTollgateError, type Meter, type Store } from '@tollgate/core'
import type { Operation } from '@tollgate/core/engine'
import type { ExecuteRequest, Outcome } from '@tollgate/core/store'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { SqlStoreOptions } from './options.js'
import { pgliteStore } from './pglite-store.js'
import { postgresStore } from './postgres-store.js'
import type { PostgresStore } from './sql-store.js'
import {
  describePostgres,
  dropSchemaAfterAll,
  expectLedgerReplays,
  ledgerOldestFirst,
  uniqueSchema,
  withClient,
} from './test-support.js'

const NUL = '\u0000'
/** What PostgreSQL says about a NUL byte; none of it may reach an error's text. */
const DATABASE_WORDS = /byte sequence|0x00|UTF8|encoding|SQLSTATE 22/i

/**
 * The store under a meter, with a hook that rewrites operations on their way in, after the
 * meter validated them, as a buggy or hostile layer under the edge could.
 */
function tampered(store: Store, rewrite: (req: ExecuteRequest) => ExecuteRequest): Store {
  return {
    kind: store.kind,
    execute: (req) => store.execute(rewrite(req)),
    ledger: (...args) => store.ledger(...args),
    createCodes: (...args) => store.createCodes(...args),
    dueAccounts: (...args) => store.dueAccounts(...args),
    prune: (...args) => store.prune(...args),
    close: () => store.close(),
  }
}

/** Puts a NUL byte into the text fields of operations on accounts named `poison…`. */
function poisonAccounts(req: ExecuteRequest): ExecuteRequest {
  if (!req.account?.startsWith('poison')) return req
  const op = req.op as Operation & { reason?: string }
  if (op.type === 'adjust') return { ...req, op: { ...op, reason: `bad${NUL}reason` } }
  // No text field of its own: the account id itself carries the NUL.
  return { ...req, account: `${req.account}${NUL}` }
}

type Settled = { ok: true; value: unknown } | { ok: false; error: unknown }
function settle(p: Promise<unknown>): Promise<Settled> {
  return p.then(
    (value) => ({ ok: true, value }),
    (error: unknown) => ({ ok: false, error }),
  )
}

function faultSuite(makeStore: (options?: SqlStoreOptions) => PostgresStore) {
  let tenantNo = 0
  const meterOn = (store: Store): Meter => {
    tenantNo += 1
    return createMeter({ store, tenant: `t${tenantNo}`, cache: false, migrate: false })
  }

  it('an operation the database refuses fails alone; the rest of its batch commits', async () => {
    const store = makeStore()
    await store.migrate()
    const victims = meterOn(store)
    const attacker = meterOn(tampered(store, poisonAccounts))
    const accounts = Array.from({ length: 12 }, (_, i) => `acct-${i}`)
    await Promise.all(accounts.map((a) => victims.grant(a, 100)))
    store.resetStats()
    // One tick: every call below reaches the store before the batch leaves.
    const calls = [
      ...accounts.map((a) => settle(victims.debit(a, 7))),
      settle(attacker.adjust('poison-reason', 5, { reason: 'fine' })),
      ...accounts.map((a) => settle(victims.grant(a, 3))),
      settle(attacker.grant('fine', 10)),
    ]
    const results = await Promise.all(calls)
    const refused = results[accounts.length]!
    expect(refused.ok).toBe(false)
    const error = (refused as { error: unknown }).error
    expect(isTollgateError(error, 'invalid_input')).toBe(true)
    expect(error).toMatchObject({ status: 400, field: 'reason' })
    expect((error as Error).message).not.toMatch(DATABASE_WORDS)
    // Everything else committed, in the same batch or the halves it was split into.
    const others = results.filter((r) => r !== refused)
    expect(others.filter((r) => !r.ok)).toEqual([])
    const stats = store.stats()
    expect(stats).toMatchObject({ isolated: 1, failedBatches: 0, failedOperations: 1 })
    expect(stats.splits).toBeGreaterThan(0)
    for (const a of accounts) {
      expect(await expectLedgerReplays(victims, a)).toMatchObject({ total: 96 })
    }
    expect(await ledgerOldestFirst(attacker, 'poison-reason')).toEqual([])
    expect((await expectLedgerReplays(attacker, 'fine')).total).toBe(10)
  })

  it('several refused operations in one batch, among operations on the same account, each fail alone and the order per account holds', async () => {
    const store = makeStore()
    await store.migrate()
    const meter = meterOn(tampered(store, poisonAccounts))
    await meter.grant('shared', 10)
    store.resetStats()
    const results = await Promise.all([
      settle(meter.debit('shared', 4)),
      settle(meter.grant('poison-account', 1)),
      settle(meter.debit('shared', 4)),
      settle(meter.adjust('poison-reason', 1)),
      // 2 left: refused for insufficiency, as it would be one at a time
      settle(meter.debit('shared', 4)),
      settle(meter.grant('shared', 5)),
      settle(meter.debit('shared', 4)),
    ])
    expect(results.map((r) => (r.ok ? 'ok' : (r.error as { code: string }).code))).toEqual([
      'ok',
      'invalid_input',
      'ok',
      'invalid_input',
      'insufficient_credits',
      'ok',
      'ok',
    ])
    expect((results[1] as { error: unknown }).error).toMatchObject({ field: 'account' })
    expect((results[3] as { error: unknown }).error).toMatchObject({ field: 'reason' })
    expect(store.stats()).toMatchObject({ isolated: 2, failedBatches: 0 })
    const entries = await ledgerOldestFirst(meter, 'shared')
    expect(entries.map((e) => [e.type, e.delta])).toEqual([
      ['grant', 10],
      ['debit', -4],
      ['debit', -4],
      ['grant', 5],
      ['debit', -4],
    ])
    expect((await expectLedgerReplays(meter, 'shared')).total).toBe(3)
  })

  it('a value the store cannot even serialise fails alone too', async () => {
    const store = makeStore()
    await store.migrate()
    // JSON cannot hold a BigInt: the batch's own code throws while writing it.
    const meter = meterOn(
      tampered(store, (req) =>
        req.account === 'bigint' && req.op.type === 'grant'
          ? { ...req, op: { ...req.op, metadata: { n: BigInt(1) as unknown as number } } }
          : req,
      ),
    )
    const results = await Promise.all([
      settle(meter.grant('a', 5)),
      settle(meter.grant('bigint', 5)),
      settle(meter.grant('b', 6)),
    ])
    expect(results[0]!.ok).toBe(true)
    expect(results[2]!.ok).toBe(true)
    expect(isTollgateError((results[1] as { error: unknown }).error, 'store_unavailable')).toBe(
      true,
    )
    expect(await ledgerOldestFirst(meter, 'bigint')).toEqual([])
    expect((await expectLedgerReplays(meter, 'b')).total).toBe(6)
  })

  it('an operation the engine throws on fails alone; the rest of its batch commits', async () => {
    const store = makeStore()
    await store.migrate()
    // A BigInt amount makes the engine's arithmetic throw (a bug's stand-in, not a refusal).
    const meter = meterOn(
      tampered(store, (req) =>
        req.account === 'throws' && req.op.type === 'debit'
          ? { ...req, op: { ...req.op, amount: BigInt(1) as unknown as number } }
          : req,
      ),
    )
    await Promise.all([meter.grant('throws', 5), meter.grant('a', 5)])
    store.resetStats()
    const results = await Promise.all([
      settle(meter.debit('a', 1)),
      settle(meter.debit('throws', 1)),
      settle(meter.debit('a', 2)),
    ])
    expect(results[0]!.ok).toBe(true)
    expect(results[2]!.ok).toBe(true)
    expect((results[1] as { error: unknown }).error).toMatchObject({ code: 'store_unavailable' })
    // Found by its place in the batch, without splitting it.
    expect(store.stats()).toMatchObject({ isolated: 1, failedBatches: 0, splits: 0 })
    expect((await ledgerOldestFirst(meter, 'throws')).map((e) => e.type)).toEqual(['grant'])
    expect((await expectLedgerReplays(meter, 'a')).total).toBe(2)
  })

  it('an operation whose deadline passed before it ran is not run', async () => {
    const store = makeStore()
    await store.migrate()
    const meter = meterOn(store)
    const config = {
      lowBalanceThreshold: null,
      overdraftLimit: null,
      overage: 'clamp' as const,
      redeemMaxFailures: 10,
      redeemWindowMs: 3_600_000,
    }
    const grant = (timeoutMs: number): Promise<Outcome> =>
      Promise.resolve(
        store.execute({
          tenant: meter.tenant,
          account: 'late',
          op: {
            type: 'grant',
            amount: 5,
            expiresAt: null,
            validityDays: null,
            priority: 50,
            category: 'paid',
            metadata: {},
          },
          now: Date.now(),
          config,
          newId: (prefix) => `${prefix}_${Math.random().toString(36).slice(2)}`,
          timeoutMs,
        }),
      )
    const [late, onTime] = await Promise.all([settle(grant(0)), settle(grant(60_000))])
    expect(late.ok).toBe(false)
    expect((late as { error: unknown }).error).toMatchObject({
      code: 'store_unavailable',
      status: 503,
      retryAfterMs: 1_000,
    })
    expect(onTime.ok).toBe(true)
    expect(store.stats().expired).toBe(1)
    // Only the one that was still awaited is in the ledger.
    expect((await ledgerOldestFirst(meter, 'late')).map((e) => e.delta)).toEqual([5])
  })

  it('a full queue refuses at once, with a hint of when to come back', async () => {
    const store = makeStore({ maxQueue: 3 })
    await store.migrate()
    const meter = meterOn(store)
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => settle(meter.grant(`q${i}`, 1))),
    )
    const shed = results.filter((r) => !r.ok)
    expect(shed).toHaveLength(7)
    for (const r of shed) {
      expect((r as { error: unknown }).error).toMatchObject({
        code: 'store_unavailable',
        retryAfterMs: 1_000,
      })
    }
    expect(store.stats().shed).toBe(7)
    // The queue drains and takes work again.
    expect((await meter.grant('q9', 1)).balance.total).toBe(1)
  })
}

describe('fault isolation on PGlite', () => {
  // One PGlite for the file: starting one takes a while. Stores over it use their own schemas.
  let db: PGlite
  beforeAll(async () => {
    db = await PGlite.create()
  })
  afterAll(() => db.close())
  let schemaNo = 0
  faultSuite((options) => {
    schemaNo += 1
    return pgliteStore({ client: db, schema: `faults_${schemaNo}`, ...options })
  })
})

describePostgres('fault isolation on PostgreSQL', (url) => {
  const schema = uniqueSchema('faults')
  const stores: PostgresStore[] = []
  const make = (options: SqlStoreOptions = {}) => {
    const store = postgresStore({ connectionString: url, schema, poolSize: 6, ...options })
    stores.push(store)
    return store
  }
  afterAll(() => Promise.all(stores.map((s) => s.close())))
  dropSchemaAfterAll(url, schema)

  faultSuite((options) => make(options))

  it("a row locked elsewhere fails only its own account's operations, with store_unavailable, and none is applied later", async () => {
    const store = make({ timeoutMs: 1_500 })
    await store.migrate()
    const meter = createMeter({ store, tenant: 'locks', cache: false, migrate: false })
    const others = Array.from({ length: 16 }, (_, i) => `free-${i}`)
    await Promise.all([...others, 'stuck'].map((a) => meter.grant(a, 100)))
    store.resetStats()
    await withClient(url, async (locker) => {
      await locker.query('BEGIN')
      await locker.query(
        `SELECT 1 FROM "${schema}".accounts WHERE tenant = 'locks' AND account = 'stuck' FOR UPDATE`,
      )
      try {
        const order: string[] = []
        const track = (name: string, p: Promise<unknown>) =>
          settle(p).then((r) => {
            order.push(name)
            return r
          })
        // Operations on the locked account and on free ones, in the same batches.
        const stuck = [1, 2, 3].map((n) => track('stuck', meter.debit('stuck', n)))
        const free = others.flatMap((a) => [
          track('free', meter.debit(a, 1)),
          track(
            'free',
            meter.reserve(a, 2).then((h) => h.commit(1)),
          ),
        ])
        const stuckResults = await Promise.all(stuck)
        const freeResults = await Promise.all(free)
        expect(freeResults.filter((r) => !r.ok)).toEqual([])
        for (const r of stuckResults) {
          expect(r.ok).toBe(false)
          expect((r as { error: unknown }).error).toMatchObject({
            code: 'store_unavailable',
            status: 503,
          })
        }
        // Every operation on a free account settled before the first one on the locked row:
        // none waited for it.
        expect(order.indexOf('stuck')).toBe(free.length)
        const stats = store.stats()
        expect(stats.contended).toBeGreaterThanOrEqual(1)
        expect(stats.failedBatches).toBe(0)
      } finally {
        await locker.query('ROLLBACK')
      }
    })
    // The lock is gone: the failed debits were never applied, and the account works again.
    expect((await ledgerOldestFirst(meter, 'stuck')).map((e) => e.type)).toEqual(['grant'])
    expect((await meter.debit('stuck', 5)).balance.total).toBe(95)
    for (const a of others) expect((await expectLedgerReplays(meter, a)).total).toBe(98)
  })
})
