/**
 * Usage over time at scale: one tenant with 10 M ledger rows in PostgreSQL, then a 30-day daily
 * usage read (per account and tenant-wide) from the store's hourly rollups, against its peer, the
 * same figures aggregated straight from the ledger through an index. Median of several runs each;
 * the ratio is peer ÷ rollups.
 *
 * The load is fast and exact: the ledger rows are generated with one set-based
 * `INSERT … SELECT generate_series` per million; the rollups are then built by the store's own
 * migration (version 8, the backfill that a test in @tollgate/postgres holds to the rows the store
 * keeps batch by batch), and a realistic tail of operations runs through the store's batch path
 * on top. Before timing, a sample of reports (accounts and the tenant, every interval, grouped)
 * is checked equal to a direct aggregation of the ledger. The schema is dropped afterwards.
 *
 *   pnpm --filter @tollgate/bench bench:usage [--rows 10000000] [--accounts 10000] [--runs 7]
 *   TOLLGATE_BENCH_DATABASE_URL=postgres://… (default: the local `test` database)
 */
import { parseArgs } from 'node:util'
import { createMeter, type UsageInterval, type UsageReport } from '@tollgate/core'
import { postgresStore } from '@tollgate/postgres'
import pg from 'pg'
import {
  DATABASE_URL,
  fixed,
  int,
  loadavgText,
  machine,
  markdownTable,
  median,
  postgresUnreachable,
  ratio,
} from './common.js'

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '10000000' },
    accounts: { type: 'string', default: '10000' },
    runs: { type: 'string', default: '7' },
  },
})
const ROWS = Number(values.rows)
const ACCOUNTS = Number(values.accounts)
const RUNS = Number(values.runs)
const DAY = 86_400_000
const HOUR = 3_600_000
/** The ledger spans 90 days before END; the timed window is the last 30. */
const END = Date.UTC(2026, 10, 30)
const SPAN = 90 * DAY
const TENANT = 'bench'
const SCHEMA = `tollgate_usage_bench_${process.pid}`
/** Rows generated per statement: progress to watch, and no statement holds the whole load. */
const CHUNK = 1_000_000

const unreachable = await postgresUnreachable()
if (unreachable) {
  console.log(`PostgreSQL unreachable (${unreachable}): usage bench skipped`)
  process.exit(0)
}

const db = new pg.Client({ connectionString: DATABASE_URL })
await db.connect()
const q = (text: string, params: unknown[] = []) => db.query(text, params)
const s = `"${SCHEMA}"`

async function timed<T>(what: string, fn: () => Promise<T>): Promise<[T, number]> {
  const t = performance.now()
  const out = await fn()
  const ms = performance.now() - t
  console.log(`${what}: ${fixed(ms / 1000, 1)} s`)
  return [out, ms]
}

const store = postgresStore({ connectionString: DATABASE_URL, schema: SCHEMA, poolSize: 4 })
try {
  const loadStarted = performance.now()
  await store.migrate()

  // ---- the ledger: ROWS entries over SPAN, ACCOUNTS accounts, the mix of a metered app: per
  // ten entries 1 grant, 3 holds, 3 commits (8 of 10 held), 1 debit, 1 release, 1 expiry;
  // holds, commits and debits carry a `feature` of seven.
  await timed(`ledger: ${int(ROWS)} rows`, async () => {
    // The primary key is built once after the load: a sorted build, not 10 M random inserts.
    await q(`ALTER TABLE ${s}.ledger DROP CONSTRAINT ledger_pkey`)
    for (let first = 1; first <= ROWS; first += CHUNK) {
      const last = Math.min(ROWS, first + CHUNK - 1)
      await q(
        `INSERT INTO ${s}.ledger (tenant, account, type, delta, held_delta, debt_delta,
           balance_after, metadata, at)
         SELECT $1, 'acct-' || (g % $4), k.type, k.delta, k.held, 0, 0,
           CASE WHEN k.type IN ('hold', 'commit', 'debit')
             THEN ('{"feature":"f' || (g % 7) || '"}')::json END,
           $5::int8 - $6::int8 + (g::int8 * $6::int8 / $7::int8)
         FROM generate_series($2::int8, $3::int8) AS g
         CROSS JOIN LATERAL (SELECT CASE (g / $4) % 10
             WHEN 0 THEN 'grant' WHEN 1 THEN 'hold' WHEN 2 THEN 'hold' WHEN 3 THEN 'hold'
             WHEN 4 THEN 'commit' WHEN 5 THEN 'commit' WHEN 6 THEN 'commit'
             WHEN 7 THEN 'debit' WHEN 8 THEN 'release' ELSE 'expire' END AS type) t
         CROSS JOIN LATERAL (SELECT t.type,
             CASE t.type WHEN 'grant' THEN 1000 WHEN 'commit' THEN -8 WHEN 'debit' THEN -5
               WHEN 'expire' THEN -3 ELSE 0 END AS delta,
             CASE t.type WHEN 'hold' THEN 10 WHEN 'commit' THEN -10 WHEN 'release' THEN -10
               ELSE 0 END AS held) k`,
        [TENANT, first, last, ACCOUNTS, END, SPAN, ROWS],
      )
      process.stdout.write(`  ${int(last)} rows\n`)
    }
    await q(`ALTER TABLE ${s}.ledger ADD PRIMARY KEY (tenant, account, seq)`)
  })

  // ---- the rollups, by the store's own migration (the backfill of version 8)
  await q(`DROP TABLE ${s}.usage_hourly; DELETE FROM ${s}.schema_migrations WHERE version = 8`)
  // A store of its own: `store` has migrated once and would not look again.
  const migrator = postgresStore({ connectionString: DATABASE_URL, schema: SCHEMA, poolSize: 1 })
  const [, backfillMs] = await timed('rollups: the migration backfill', () =>
    migrator.migrate().finally(() => migrator.close()),
  )

  // ---- a realistic tail through the store's batch path: reserve+commit and debits on 100
  // accounts in the window's last hour, the rollups kept in each batch's transaction.
  let now = END - HOUR
  const meter = createMeter({ store, tenant: TENANT, clock: () => now })
  await timed('store path: 2,000 operations', async () => {
    for (let i = 0; i < 100; i++) await meter.grant(`acct-${i}`, 10_000)
    const ops: Promise<unknown>[] = []
    for (let i = 0; i < 900; i++) {
      const account = `acct-${i % 100}`
      const metadata = { feature: `f${i % 7}` }
      ops.push(
        i % 3 === 0
          ? meter.debit(account, 3, { metadata })
          : meter
              .reserve(account, 10, { metadata, ttlMs: 600_000 })
              .then((h) => h.commit(7, { metadata })),
      )
      if (ops.length === 64) await Promise.all(ops.splice(0))
      now += 1_000
    }
    await Promise.all(ops)
  })
  const [[{ n: ledgerRows }], [{ n: rollupRows }]] = [
    (await q(`SELECT count(*)::int8 AS n FROM ${s}.ledger`)).rows,
    (await q(`SELECT count(*)::int8 AS n FROM ${s}.usage_hourly`)).rows,
  ]
  await q(`ANALYZE ${s}.ledger`)
  await q(`ANALYZE ${s}.usage_hourly`)

  // ---- the peer: the same figures straight from the ledger, through an index that serves them
  await timed('peer index: ledger (tenant, at) INCLUDE (…)', () =>
    q(`CREATE INDEX ledger_usage_peer ON ${s}.ledger (tenant, at)
       INCLUDE (account, type, delta, held_delta)`),
  )
  const loadMs = performance.now() - loadStarted

  const peerSql = (account: boolean, bucket: string) => `
    SELECT ${bucket} AS start,
      sum(CASE WHEN type IN ('grant', 'redeem', 'cycle_grant', 'adjust') THEN delta ELSE 0 END)::int8 AS granted,
      sum(CASE WHEN type IN ('debit', 'commit') THEN -delta ELSE 0 END)::int8 AS spent,
      sum(CASE type WHEN 'commit' THEN greatest(0, delta - held_delta)
        WHEN 'release' THEN -held_delta ELSE 0 END)::int8 AS released,
      sum(CASE WHEN type = 'expire' THEN -delta ELSE 0 END)::int8 AS expired
    FROM ${s}.ledger
    WHERE tenant = $1 AND at >= $2 AND at < $3 ${account ? 'AND account = $4' : ''}
    GROUP BY 1 ORDER BY 1`
  const BUCKET: Record<UsageInterval, string> = {
    hour: 'at - at % 3600000',
    day: 'at - at % 86400000',
    month: `(extract(epoch FROM date_trunc('month', to_timestamp(at / 1000.0) AT TIME ZONE 'UTC')) * 1000)::int8`,
  }
  async function peer(account: string | null, interval: UsageInterval, from: number, to: number) {
    const params = account === null ? [TENANT, from, to] : [TENANT, from, to, account]
    return (await q(peerSql(account !== null, BUCKET[interval]), params)).rows.map((r) => ({
      start: Number(r.start),
      granted: Number(r.granted),
      spent: Number(r.spent),
      released: Number(r.released),
      expired: Number(r.expired),
    }))
  }
  const nonZero = (r: UsageReport) =>
    r.periods.filter((p) => p.granted || p.spent || p.released || p.expired)

  // ---- check a sample against the ledger itself
  const from = END - 30 * DAY
  const sample: [string | null, UsageInterval, number, number][] = [
    [null, 'day', from, END],
    [null, 'month', END - SPAN, END],
    ['acct-7', 'day', from, END],
    ['acct-42', 'hour', END - 2 * DAY, END],
    [`acct-${ACCOUNTS - 1}`, 'month', END - SPAN, END],
  ]
  for (const [account, interval, a, b] of sample) {
    const report = await meter.usage(account, { interval, from: a, to: b })
    const direct = (await peer(account, interval, report.from, report.to)).filter(
      (p) => p.granted || p.spent || p.released || p.expired,
    )
    if (JSON.stringify(nonZero(report)) !== JSON.stringify(direct)) {
      throw new Error(
        `rollups differ from the ledger for ${account ?? 'the tenant'} by ${interval}`,
      )
    }
  }
  const grouped = await meter.usage(null, { interval: 'day', from, to: END, groupBy: 'feature' })
  const byFeature = await q(
    `SELECT metadata->>'feature' AS f, sum(-delta)::int8 AS spent FROM ${s}.ledger
     WHERE tenant = $1 AND at >= $2 AND at < $3 AND type IN ('debit', 'commit')
     GROUP BY 1 ORDER BY 1`,
    [TENANT, grouped.from, grouped.to],
  )
  for (const row of byFeature.rows) {
    const g = grouped.groups?.find((x) => x.value === row.f)
    const spent = g?.periods.reduce((n, p) => n + p.spent, 0)
    if (spent !== Number(row.spent)) throw new Error(`feature ${row.f}: ${spent} ≠ ${row.spent}`)
  }
  console.log(`sample checked: ${sample.length} reports and the tenant by feature equal the ledger`)

  // ---- the timing: 30 days by day, median of RUNS, each run on another account
  async function time(fn: (run: number) => Promise<unknown>): Promise<number> {
    await fn(-1) // warm: the first read of a cold cache is not what a dashboard sees
    const ms: number[] = []
    for (let run = 0; run < RUNS; run++) {
      const t = performance.now()
      await fn(run)
      ms.push(performance.now() - t)
    }
    return median(ms)
  }
  const acct = (run: number) => `acct-${(run + 1) * 97}`
  const rows: { scenario: string; rollups: number; peer: number }[] = []
  rows.push({
    scenario: 'one account, 30 days by day',
    rollups: await time((r) => meter.usage(acct(r), { interval: 'day', from, to: END })),
    peer: await time((r) => peer(acct(r), 'day', from, END)),
  })
  rows.push({
    scenario: 'tenant-wide, 30 days by day',
    rollups: await time(() => meter.usage(null, { interval: 'day', from, to: END })),
    peer: await time(() => peer(null, 'day', from, END)),
  })
  rows.push({
    scenario: 'tenant-wide by feature, 30 days by day',
    rollups: await time(() =>
      meter.usage(null, { interval: 'day', from, to: END, groupBy: 'feature' }),
    ),
    peer: Number.NaN,
  })
  await meter.close()

  const m = machine()
  console.log('')
  console.log(
    `${int(Number(ledgerRows))} ledger rows, ${int(Number(rollupRows))} rollup rows, ${int(ACCOUNTS)} accounts; load ${fixed(loadMs / 1000, 0)} s (backfill ${fixed(backfillMs / 1000, 0)} s)`,
  )
  console.log(`${m.cpu}, ${m.cores} cores, load ${loadavgText(m.loadavg)}; median of ${RUNS} runs`)
  console.log(
    markdownTable({
      columns: ['scenario', 'rollups (ms)', 'ledger + index (ms)', 'peer ÷ rollups'],
      rows: rows.map((r) => [
        r.scenario,
        fixed(r.rollups, 1),
        Number.isNaN(r.peer) ? '–' : fixed(r.peer, 1),
        Number.isNaN(r.peer) ? '–' : ratio(r.peer / r.rollups),
      ]),
    }),
  )
} finally {
  await store.close()
  await q(`DROP SCHEMA IF EXISTS ${s} CASCADE`)
  await db.end()
}
