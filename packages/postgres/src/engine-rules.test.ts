/**
 * The SQL store decides nothing itself: its queries for "which accounts are due" and "which
 * holds to load" are built from the engine's rules (due-sql.ts), and these tests hold them to
 * the engine's functions on random rows, to the memory store on random operation sequences, and
 * check that idempotency records an earlier version stored still replay. On PGlite always, and
 * on PostgreSQL when there is one (see describePostgres).
 */
import { PGlite } from '@electric-sql/pglite'
import { createMeter, memoryStore, type Store } from '@tollgate/core'
import {
  type BucketState,
  type CycleState,
  type EngineConfig,
  type HoldState,
  type HoldStatus,
  holdsToLoad,
  isAccountDue,
  nextCycleAt,
  type Operation,
} from '@tollgate/core/engine'
import { type ExecuteRequest, newId } from '@tollgate/core/store'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { dueCondition } from './due-sql.js'
import { pgliteStore } from './pglite-store.js'
import { postgresStore } from './postgres-store.js'
import { holdFrom, type LoadRow } from './rows.js'
import type { PostgresStore } from './sql-store.js'
import { buildStatements } from './statements.js'
import { describePostgres, dropSchemaAfterAll, uniqueSchema } from './test-support.js'

const NOW = Date.UTC(2030, 0, 1)
const DAY = 86_400_000
const STATUSES: HoldStatus[] = ['pending', 'committed', 'released', 'expired']

/** A small seeded generator (mulberry32): the random cases are the same on every run. */
function random(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}
const pick = <T>(r: () => number, list: readonly T[]): T => list[Math.floor(r() * list.length)]!
/** A time at, just around or far from `now`: the boundary is where rules go wrong. */
const near = (r: () => number, now: number) => now + pick(r, [-DAY, -1, 0, 0, 1, DAY])

/** Raw SQL on the store's database, outside the store. */
interface Db {
  query(text: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>
}

/** One generated account: its rows as the engine sees them. */
interface GenAccount {
  account: string
  cycle: CycleState | null
  buckets: BucketState[]
  holds: HoldState[]
}

function genAccount(r: () => number, account: string, now: number, n: { id: number }): GenAccount {
  let cycle: CycleState | null = null
  if (r() < 0.6) {
    const period = Math.floor(r() * 3)
    // Anchored so that the next period starts at, around or far from `now`.
    cycle = {
      id: `cyc_${++n.id}`,
      amount: 10,
      every: 'day',
      rolloverMax: null,
      priority: 50,
      category: 'paid',
      anchor: near(r, now) - (period + 1) * DAY,
      period,
      active: r() < 0.8,
      bucketId: null,
    }
  }
  const buckets: BucketState[] = []
  for (let i = Math.floor(r() * 4); i > 0; i--) {
    buckets.push({
      id: `grt_${++n.id}`,
      amount: 10,
      remaining: 10,
      held: 0,
      expiresAt: r() < 0.25 ? null : near(r, now),
      priority: 50,
      category: 'paid',
      createdAt: now - 2 * DAY,
      expired: r() < 0.3,
      cycleId: null,
    })
  }
  const holds: HoldState[] = []
  for (let i = Math.floor(r() * 5); i > 0; i--) {
    const status = pick(r, STATUSES)
    holds.push({
      id: `hld_${++n.id}`,
      account,
      amount: 1,
      expiresAt: near(r, now),
      createdAt: now - 2 * DAY,
      status,
      allocations: [],
      metadata: {},
      resolvedAt: status === 'pending' ? null : now - DAY,
    })
  }
  return { account, cycle, buckets, holds }
}

async function insert(db: Db, s: string, tenant: string, a: GenAccount): Promise<void> {
  // cycle_next_at is what the store persists beside the account: the engine's nextCycleAt.
  await db.query(
    `INSERT INTO ${s}.accounts (tenant, account, debt, alert_level, cycle, cycle_next_at,
      redeem_failures, redeem_window_start, created_at)
    VALUES ($1, $2, 0, 0, $3::json, $4::int8, 0, 0, $5::int8)`,
    [tenant, a.account, JSON.stringify(a.cycle), nextCycleAt({ cycle: a.cycle }), NOW - 2 * DAY],
  )
  for (const b of a.buckets) {
    await db.query(
      `INSERT INTO ${s}.buckets (tenant, account, id, amount, remaining, held, expires_at,
        priority, category, created_at, expired, cycle_id)
      VALUES ($1, $2, $3, $4::int8, $5::int8, $6::int8, $7::int8, $8::int4, $9, $10::int8, $11, $12)`,
      [
        tenant,
        a.account,
        b.id,
        b.amount,
        b.remaining,
        b.held,
        b.expiresAt,
        b.priority,
        b.category,
        b.createdAt,
        b.expired,
        b.cycleId,
      ],
    )
  }
  for (const h of a.holds) {
    await db.query(
      `INSERT INTO ${s}.holds (tenant, account, id, amount, expires_at, created_at, status,
        allocations, metadata, resolved_at)
      VALUES ($1, $2, $3, $4::int8, $5::int8, $6::int8, $7, NULL, NULL, $8::int8)`,
      [tenant, a.account, h.id, h.amount, h.expiresAt, h.createdAt, h.status, h.resolvedAt],
    )
  }
}

/** The load statement's holds for one account, with `named` named by id, at `now`. */
async function loadedHolds(
  db: Db,
  s: string,
  tenant: string,
  account: string,
  named: string | null,
  now: number,
): Promise<string[]> {
  const st = buildStatements(s)
  const { rows } = await db.query(st.load.text, [
    [tenant],
    [account],
    named === null ? [] : [tenant],
    named === null ? [] : [named],
    now,
    [],
    [],
    [],
    [],
    [],
    [],
    [],
    [tenant],
  ])
  const load = rows[0] as unknown as LoadRow
  const ids = new Set<string>()
  for (const t of load.holds ?? []) ids.add(holdFrom(t).id)
  return [...ids].sort()
}

const CONFIG: EngineConfig = {
  lowBalanceThreshold: null,
  overdraftLimit: null,
  overage: 'clamp',
  redeemMaxFailures: 10,
  redeemWindowMs: 3_600_000,
}

/** Registers the tests against one SQL store and raw access to its database. */
function describeAgreement(
  name: string,
  setup: () => Promise<{ store: PostgresStore; db: Db; schema: string }>,
): void {
  describe(`engine rules on ${name}`, () => {
    let store: PostgresStore
    let db: Db
    let s: string
    let tenantNo = 0
    afterAll(() => store?.close())
    beforeAll(async () => {
      const ready = await setup()
      store = ready.store
      db = ready.db
      // Test schema names are plain identifiers (see uniqueSchema): quoted as the store does.
      s = `"${ready.schema}"`
      await store.migrate()
    }, 60_000)

    it('the due conditions are the engine rules in SQL, keeping the partial indexes usable', () => {
      expect(dueCondition('hold', 'h', '$5::int8')).toBe(
        "h.status = 'pending' AND h.expires_at <= $5::int8",
      )
      expect(dueCondition('bucket', 'b', '$2::int8')).toBe(
        'NOT b.expired AND b.expires_at <= $2::int8',
      )
      expect(dueCondition('account', 'a', '$2::int8')).toBe('a.cycle_next_at <= $2::int8')
    })

    it('dueAccounts() and the holds loaded agree with the engine on 60 random tenants', async () => {
      const r = random(5)
      const n = { id: 0 }
      let due = 0
      let notDue = 0
      let loaded = 0
      for (let trial = 0; trial < 60; trial++) {
        const tenant = `due_${++tenantNo}`
        const now = NOW + Math.floor(r() * 5) - 2
        const accounts: GenAccount[] = []
        for (let i = Math.floor(r() * 5) + 1; i > 0; i--) {
          accounts.push(genAccount(r, pick(r, [`a${i}`, `ü ✓ ${i}`, `o'neil ${i}`]), now, n))
        }
        for (const a of accounts) await insert(db, s, tenant, a)
        const expected = accounts
          .filter((a) => isAccountDue({ cycle: a.cycle }, a.buckets, a.holds, now))
          .map((a) => a.account)
          .sort()
        const got = (await store.dueAccounts(tenant, now, 1_000)).sort()
        expect(got, `trial ${trial}`).toEqual(expected)
        due += expected.length
        notDue += accounts.length - expected.length
        for (const a of accounts) {
          const named = a.holds.length > 0 && r() < 0.7 ? pick(r, a.holds) : undefined
          const want = holdsToLoad(named, a.holds, now)
            .map((h) => h.id)
            .sort()
          const have = await loadedHolds(db, s, tenant, a.account, named?.id ?? null, now)
          expect(have, `trial ${trial}, ${a.account}`).toEqual(want)
          loaded += want.length
        }
      }
      // Both answers occur often: the comparison is not all one-sided.
      expect(due).toBeGreaterThan(20)
      expect(notDue).toBeGreaterThan(20)
      expect(loaded).toBeGreaterThan(20)
    }, 120_000)

    it('the memory store and this store find the same accounts due along random operation sequences', async () => {
      let compared = 0
      let dueSeen = 0
      for (let seed = 1; seed <= 8; seed++) {
        const r = random(100 + seed)
        const tenant = `seq_${++tenantNo}`
        const mem = memoryStore()
        const stores: Store[] = [mem, store]
        /** Hold ids per store, by creation order, so both commit "the same" hold. */
        const holds: string[][] = [[], []]
        const accounts = ['a', 'b', 'c']
        let now = NOW
        const run = async (i: number, account: string | undefined, op: Operation) => {
          const req: ExecuteRequest = { tenant, account, op, now, config: CONFIG, newId }
          const out = await stores[i]!.execute(req)
          if (op.type === 'reserve' && out.result) holds[i]!.push(out.result.id as string)
          return out
        }
        for (let step = 0; step < 30; step++) {
          now += Math.floor(r() * r() * 2 * DAY)
          const account = pick(r, accounts)
          const roll = r()
          const hold = holds[0]!.length > 0 ? Math.floor(r() * holds[0]!.length) : -1
          const opFor = (i: number): [string | undefined, Operation] => {
            if (roll < 0.3)
              return [
                account,
                {
                  type: 'grant',
                  amount: 1 + Math.floor(roll * 100),
                  expiresAt: roll < 0.1 ? null : now + Math.floor(roll * 10 * DAY),
                  validityDays: null,
                  priority: 50,
                  category: 'paid',
                  metadata: {},
                },
              ]
            if (roll < 0.55)
              return [
                account,
                { type: 'reserve', amount: 1, ttlMs: 1_000 + Math.floor(roll * DAY), metadata: {} },
              ]
            if (roll < 0.7 && hold >= 0)
              return [undefined, { type: 'release', holdId: holds[i]![hold]!, metadata: {} }]
            if (roll < 0.8)
              return [
                account,
                {
                  type: 'startCycle',
                  amount: 3,
                  every: { days: 1 },
                  rolloverMax: null,
                  priority: 50,
                  category: 'paid',
                },
              ]
            return [account, { type: 'debit', amount: 1, metadata: {} }]
          }
          const answers: (string | null)[] = []
          for (let i = 0; i < 2; i++) {
            const [acct, op] = opFor(i)
            answers.push((await run(i, acct, op)).error?.code ?? null)
          }
          // Both stores answer alike (errors included), so their states stay alike.
          expect(answers[1], `seed ${seed} step ${step}`).toBe(answers[0])
          // Every few steps, a sweep: what is due, then a read of each due account on both.
          if (step % 3 === 2) {
            const probe = now + Math.floor(r() * DAY)
            const [a, b] = await Promise.all(stores.map((x) => x.dueAccounts(tenant, probe, 100)))
            expect(b!.sort(), `seed ${seed} step ${step}`).toEqual(a!.sort())
            compared++
            dueSeen += a!.length
            now = probe
            for (const acct of a!) {
              for (let i = 0; i < 2; i++) await run(i, acct, { type: 'balance' })
            }
          }
        }
        await mem.close()
      }
      expect(compared).toBeGreaterThan(60)
      expect(dueSeen).toBeGreaterThan(10)
    }, 120_000)

    it('an idempotency key an earlier version stored (as-built fingerprint) still replays', async () => {
      const tenant = `legacy_${++tenantNo}`
      const meter = createMeter({ store, tenant, clock: () => NOW, cache: false, migrate: false })
      const metadata = { z: 1, a: { y: 2, b: 3 } }
      const first = await meter.grant('acc', 5, { metadata, idempotencyKey: 'g-1' })
      // Rewrite the record as an earlier version stored it: the operation's JSON as built.
      const asBuilt = JSON.stringify({
        type: 'grant',
        amount: 5,
        expiresAt: null,
        validityDays: null,
        priority: 50,
        category: 'paid',
        metadata,
      })
      const { rows } = await db.query(
        `UPDATE ${s}.idempotency SET fingerprint = $3 WHERE tenant = $1 AND key = $2
        RETURNING fingerprint`,
        [tenant, 'g-1', asBuilt],
      )
      expect(rows).toHaveLength(1)
      const again = await meter.grant('acc', 5, { metadata, idempotencyKey: 'g-1' })
      expect(again).toMatchObject({ id: first.id, replayed: true })
      await expect(
        meter.grant('acc', 6, { metadata, idempotencyKey: 'g-1' }),
      ).rejects.toMatchObject({ code: 'idempotency_conflict' })
      expect((await meter.balance('acc')).total).toBe(5)
    })
  })
}

// ---------------------------------------------------------------- PGlite, always

let pglite: PGlite | undefined
afterAll(async () => {
  await pglite?.close()
})
describeAgreement('pglite', async () => {
  pglite = await PGlite.create()
  const schema = 'engine_rules'
  return { store: pgliteStore({ client: pglite, schema }), db: pglite as unknown as Db, schema }
})

// ---------------------------------------------------------------- PostgreSQL, when configured

describePostgres('postgresStore engine rules', (url) => {
  const schema = uniqueSchema('rules')
  dropSchemaAfterAll(url, schema)
  let client: pg.Client | undefined
  afterAll(() => client?.end())
  describeAgreement('postgres', async () => {
    client = new pg.Client({ connectionString: url })
    await client.connect()
    const store = postgresStore({ connectionString: url, schema })
    return { store, db: client as unknown as Db, schema }
  })
})
