/**
 * Every statement the store runs, built once per store for its schema. Values only ever travel
 * as bound parameters (arrays for the multi-row ones); the schema name, validated and quoted, is
 * the one thing written into the text.
 */
import { createHash } from 'node:crypto'
import type { Statement } from './driver.js'
import { dueCondition } from './due-sql.js'
import { usageReadSql, usageUpsertCte } from './usage-sql.js'

/** A statement named after its text, so each distinct text is prepared once per connection. */
export function statement(text: string): Statement {
  return { name: `tollgate_${createHash('sha256').update(text).digest('hex').slice(0, 20)}`, text }
}

/** The statements of one schema. */
export interface Statements {
  /**
   * The class (first key) of the schema's in-flight guard, sent as the lock statements' $5;
   * null when batches take no guard (PGlite: one connection, nothing runs beside a batch).
   */
  guardClass: number | null
  /** Where committed batches' change notifications go; null when none are sent. */
  channel: string | null
  /** Sends notifications on `$1`, one per payload of `$2` (outside any write transaction). */
  notify: Statement
  lock: Statement
  lockOrSkip: Statement
  load: Statement
  persist: Statement
  /** `persist` for a batch with alerts: entries and alerts numbered from one ordered stream. */
  persistWithAlerts: Statement
  ledger: Statement
  /** The usage read (usage-sql.ts). */
  usage: Statement
  /** The store sequence's last value (the first step of an outbox read, see sql-store.ts). */
  lastSeq: Statement
  /** The lowest sequence bound an unfinished batch holds (see {@link guard}). */
  inFlightBound: Statement
  eventsOfTenant: Statement
  eventsOfAll: Statement
  saveCodesKey: Statement
  readKey: Statement
  insertCodes: Statement
  dueAccounts: Statement
  pruneKeys: Statement
  pruneHolds: Statement
  noteRedeemFailure: Statement
  tenantSettings: Statement
  putTenantSettings: Statement
  pruneRedeemFailures: Statement
}

/** Columns of an account row as the lock statement returns them. */
export const ACCOUNT_COLUMNS = `a.tenant, a.account, a.debt, a.low_balance_threshold, a.overdraft_limit,
  a.alert_level, a.cycle, a.redeem_failures, a.redeem_window_start, a.created_at,
  a.sweep_claimed_until IS NOT NULL AS claimed`

/**
 * Sequence numbers per unit of an in-flight guard's key: a guard's key is the sequence's last
 * value divided by this (an int4 holds the key up to 2^41 entries).
 */
export const GUARD_UNIT = 1024

/**
 * The in-flight guard every PostgreSQL batch takes first (with its account locks): a shared
 * advisory lock, `($G, last_value / GUARD_UNIT)`, held until the batch commits or rolls back.
 * Every sequence number the batch takes afterwards is above `key × GUARD_UNIT`, and the lock
 * shows in `pg_locks` to every session: an outbox reader does not read past the lowest bound an
 * unfinished batch holds, so it never skips an entry that commits after a higher one
 * (docs/store.md "Outbox"). `$G` stands for the schema's guard class.
 */
function guard(s: string, param: string): string {
  return `guard AS MATERIALIZED (
  SELECT pg_advisory_xact_lock_shared(${param}::int4, (last_value / ${GUARD_UNIT})::int4) AS taken
  FROM ${s}.ledger_seq_seq
)`
}

/** The store sequence, as a regclass literal. */
const seqOf = (s: string) => `'${s.replace(/'/g, "''")}.ledger_seq_seq'::regclass`

/**
 * The persist statement: every table's rows in one statement. With `alerts`, entries and alerts
 * take their numbers from one stream in event order; without, entries take the identity in
 * arrival order, as they always did. It returns the batch's highest sequence number (the
 * sequence's last value when it wrote no entry), which its change notification carries: that is
 * sent after COMMIT, by the store's notifier (notifier.ts), never inside the transaction.
 */
function persistSql(s: string, alerts: boolean): string {
  const entryColumns = `tenant, account, type, delta, held_delta, debt_delta, balance_after,
    hold_id, grant_id, redemption_id, cycle_id, idempotency_key, reason, metadata, at`
  const entryArrays = `$35::text[], $36::text[], $37::text[], $38::int8[], $39::int8[],
    $40::int8[], $41::int8[], $42::text[], $43::text[], $44::text[], $45::text[], $46::text[],
    $47::text[], $48::json[], $49::int8[]`
  const entries = alerts
    ? `stream AS MATERIALIZED (
  SELECT o, nextval(${seqOf(s)}) AS seq FROM generate_series(1, $74::int4) AS g(o)
),
entries AS (
  INSERT INTO ${s}.ledger (seq, ${entryColumns}) OVERRIDING SYSTEM VALUE
  SELECT st.seq, e.tenant, e.account, e.type, e.delta, e.held_delta, e.debt_delta,
    e.balance_after, e.hold_id, e.grant_id, e.redemption_id, e.cycle_id, e.idempotency_key,
    e.reason, e.metadata, e.at
  FROM unnest(${entryArrays}, $75::int4[]) AS e(${entryColumns}, o)
  JOIN stream st ON st.o = e.o
  RETURNING seq
),
alerted AS (
  INSERT INTO ${s}.alerts (tenant, account, seq, type, data, at)
  SELECT a.tenant, a.account, st.seq, a.type, a.data, a.at
  FROM unnest($76::text[], $77::text[], $78::text[], $79::json[], $80::int8[], $81::int4[])
    AS a(tenant, account, type, data, at, o)
  JOIN stream st ON st.o = a.o
),`
    : `entries AS (
  INSERT INTO ${s}.ledger (${entryColumns})
  SELECT * FROM unnest(${entryArrays})
  RETURNING seq
),`
  const top = alerts ? '(SELECT max(seq) FROM stream)' : '(SELECT max(seq) FROM entries)'
  return `WITH
acc AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::bool[], $4::int8[], $5::int8[], $6::int8[],
    $7::int2[], $8::json[], $9::int8[], $10::int8[], $11::int8[], $12::int8[])
  AS u(tenant, account, is_new, debt, low_balance_threshold, overdraft_limit, alert_level, cycle,
    cycle_next_at, redeem_failures, redeem_window_start, created_at)
),
new_accounts AS (
  INSERT INTO ${s}.accounts (tenant, account, debt, low_balance_threshold, overdraft_limit,
    alert_level, cycle, cycle_next_at, redeem_failures, redeem_window_start, created_at)
  SELECT tenant, account, debt, low_balance_threshold, overdraft_limit, alert_level, cycle,
    cycle_next_at, redeem_failures, redeem_window_start, created_at
  FROM acc WHERE is_new
  ORDER BY tenant COLLATE "C", account COLLATE "C"
),
old_accounts AS (
  UPDATE ${s}.accounts a SET debt = u.debt, low_balance_threshold = u.low_balance_threshold,
    overdraft_limit = u.overdraft_limit, alert_level = u.alert_level, cycle = u.cycle,
    cycle_next_at = u.cycle_next_at, redeem_failures = u.redeem_failures,
    redeem_window_start = u.redeem_window_start, sweep_claimed_until = NULL
  FROM acc u
  WHERE NOT u.is_new AND a.tenant = u.tenant AND a.account = u.account
),
bkt AS (
  SELECT * FROM unnest($13::text[], $14::text[], $15::text[], $16::int8[], $17::int8[],
    $18::int8[], $19::int8[], $20::int4[], $21::text[], $22::int8[], $23::bool[], $24::text[])
  AS u(tenant, account, id, amount, remaining, held, expires_at, priority, category, created_at,
    expired, cycle_id)
),
put_buckets AS (
  INSERT INTO ${s}.buckets (tenant, account, id, amount, remaining, held, expires_at, priority,
    category, created_at, expired, cycle_id)
  SELECT * FROM bkt WHERE remaining > 0
  ON CONFLICT (tenant, account, id) DO UPDATE SET remaining = excluded.remaining,
    held = excluded.held, expired = excluded.expired
),
spent_buckets AS (
  DELETE FROM ${s}.buckets b USING bkt u
  WHERE u.remaining = 0 AND b.tenant = u.tenant AND b.account = u.account AND b.id = u.id
),
put_holds AS (
  INSERT INTO ${s}.holds (tenant, account, id, amount, expires_at, created_at, status,
    allocations, metadata, resolved_at)
  SELECT * FROM unnest($25::text[], $26::text[], $27::text[], $28::int8[], $29::int8[],
    $30::int8[], $31::text[], $32::json[], $33::json[], $34::int8[])
  ON CONFLICT (tenant, account, id) DO UPDATE SET amount = excluded.amount,
    expires_at = excluded.expires_at,
    status = excluded.status, allocations = excluded.allocations,
    resolved_at = excluded.resolved_at
),
${entries}
${usageUpsertCte(s, 64)}
keys AS (
  INSERT INTO ${s}.idempotency (tenant, key, account, fingerprint, result, created_at)
  SELECT u.tenant, u.key, u.account, u.fingerprint, r.result, u.created_at
  FROM unnest($50::text[], $51::text[], $52::text[], $53::text[], $55::int8[])
    WITH ORDINALITY AS u(tenant, key, account, fingerprint, created_at, o)
  JOIN json_array_elements($54::json) WITH ORDINALITY AS r(result, o) ON r.o = u.o
  ORDER BY u.tenant COLLATE "C", u.key COLLATE "C"
),
redeemed AS (
  INSERT INTO ${s}.redemptions (tenant, code_hash, account, redemption_id, at)
  SELECT * FROM unnest($56::text[], $57::text[], $58::text[], $59::text[], $60::int8[])
),
code_counts AS (
  UPDATE ${s}.codes c SET redemptions = u.redemptions
  FROM unnest($61::text[], $62::text[], $63::int8[]) AS u(tenant, hash, redemptions)
  WHERE c.tenant = u.tenant AND c.hash = u.hash
)
SELECT coalesce(${top}, (SELECT last_value FROM ${s}.ledger_seq_seq)) AS seq`
}

/** The columns of an outbox read: a ledger entry or an alert (then `data` is set). */
function eventsSql(s: string, where: string): string {
  return `(SELECT seq, tenant, account, type, delta, held_delta, debt_delta, balance_after,
    hold_id, grant_id, redemption_id, cycle_id, idempotency_key, reason, metadata, at,
    NULL::json AS data
  FROM ${s}.ledger WHERE ${where} ORDER BY seq LIMIT $4::int4)
UNION ALL
(SELECT seq, tenant, account, type, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, at, data
  FROM ${s}.alerts WHERE ${where} ORDER BY seq LIMIT $4::int4)
ORDER BY seq LIMIT $4::int4`
}

export function buildStatements(
  s: string,
  guardClass: number | null = null,
  channel: string | null = null,
): Statements {
  const guarded = guardClass !== null
  const lockGuard = guarded
    ? `WITH ${guard(s, '$5')}
`
    : ''
  const lockFrom = guarded ? `FROM guard, ${s}.accounts a` : `FROM ${s}.accounts a`
  return {
    guardClass,
    channel,
    /**
     * Locks the batch's accounts, in one fixed order (tenant, account; "C" collation), so that
     * batches of several processes queue behind each other instead of deadlocking. $1/$2 name
     * accounts; $3/$4 name holds whose account the caller does not know. Accounts without a row
     * are new: they are inserted when persisted (a concurrent creator makes that a unique
     * violation, and the batch runs again).
     */
    lock: statement(`${lockGuard}SELECT ${ACCOUNT_COLUMNS}
${lockFrom}
WHERE (a.tenant, a.account) IN (
  SELECT x.tenant, x.account FROM unnest($1::text[], $2::text[]) AS x(tenant, account)
  UNION ALL
  SELECT h.tenant, h.account FROM ${s}.holds h
  JOIN unnest($3::text[], $4::text[]) AS y(tenant, id) ON h.tenant = y.tenant AND h.id = y.id
)
ORDER BY a.tenant, a.account
FOR UPDATE OF a`),

    /**
     * The lock statement of a shared batch: takes the locks it can get at once and waits for
     * none (SKIP LOCKED), so that an account another transaction holds (another process's
     * batch, or a session that keeps a row locked for a minute) cannot hold up the batch's other
     * accounts. Those accounts come back with `skipped` set; their operations leave the batch
     * and wait for the lock in a transaction of their own. Same parameters as `lock`.
     */
    lockOrSkip: statement(`WITH ${guarded ? `${guard(s, '$5')},\n` : ''}want AS (
  SELECT x.tenant, x.account FROM unnest($1::text[], $2::text[]) AS x(tenant, account)
  UNION
  SELECT h.tenant, h.account FROM ${s}.holds h
  JOIN unnest($3::text[], $4::text[]) AS y(tenant, id) ON h.tenant = y.tenant AND h.id = y.id
),
locked AS (
  SELECT ${ACCOUNT_COLUMNS}
  ${lockFrom}
  WHERE (a.tenant, a.account) IN (SELECT tenant, account FROM want)
  ORDER BY a.tenant, a.account
  FOR UPDATE OF a SKIP LOCKED
)
SELECT false AS skipped, l.* FROM locked l
UNION ALL
SELECT true AS skipped, ${ACCOUNT_COLUMNS}
FROM ${s}.accounts a
JOIN want w ON a.tenant = w.tenant AND a.account = w.account
WHERE NOT EXISTS (SELECT 1 FROM locked l WHERE l.tenant = a.tenant AND l.account = a.account)`),

    /**
     * Everything else the engine needs, in one round trip, after the locks (a statement's
     * snapshot is taken when it starts, so this one sees what the lock waited for):
     * live buckets of the locked accounts ($1/$2); holds named by id ($3/$4, any status) and
     * pending holds due by $5; idempotency records ($6/$7); codes ($8/$9, locked: their
     * redemption counter is shared between accounts) and whether each account redeemed its
     * code ($10/$11/$12). Each comes back as one JSON array of row tuples.
     */
    load: statement(`SELECT
(SELECT json_agg(json_build_array(b.tenant, b.account, b.id, b.amount, b.remaining, b.held,
    b.expires_at, b.priority, b.category, b.created_at, b.expired, b.cycle_id))
  FROM ${s}.buckets b
  JOIN unnest($1::text[], $2::text[]) AS x(tenant, account)
    ON b.tenant = x.tenant AND b.account = x.account) AS buckets,
(SELECT json_agg(json_build_array(h.tenant, h.account, h.id, h.amount, h.expires_at,
    h.created_at, h.status, h.allocations, h.metadata, h.resolved_at))
  FROM (
    SELECT h.* FROM ${s}.holds h
    JOIN unnest($3::text[], $4::text[]) AS y(tenant, id) ON h.tenant = y.tenant AND h.id = y.id
    UNION ALL
    SELECT h.* FROM ${s}.holds h
    JOIN unnest($1::text[], $2::text[]) AS x(tenant, account)
      ON h.tenant = x.tenant AND h.account = x.account
    WHERE ${dueCondition('hold', 'h', '$5::int8')}
  ) h) AS holds,
(SELECT json_agg(json_build_array(i.tenant, i.key, i.account, i.fingerprint, i.result,
    i.created_at))
  FROM ${s}.idempotency i
  JOIN unnest($6::text[], $7::text[]) AS k(tenant, key)
    ON i.tenant = k.tenant AND i.key = k.key) AS keys,
(SELECT json_agg(json_build_array(c.tenant, c.hash, c.batch_id, c.credits, c.validity_days,
    c.code_expires_at, c.max_redemptions, c.redemptions, c.priority, c.category, c.created_at))
  FROM (
    SELECT c.* FROM ${s}.codes c
    JOIN unnest($8::text[], $9::text[]) AS k(tenant, hash) ON c.tenant = k.tenant AND c.hash = k.hash
    ORDER BY c.tenant, c.hash
    FOR UPDATE OF c
  ) c) AS codes,
(SELECT json_agg(json_build_array(r.tenant, r.code_hash, r.account))
  FROM ${s}.redemptions r
  JOIN unnest($10::text[], $11::text[], $12::text[]) AS k(tenant, hash, account)
    ON r.tenant = k.tenant AND r.code_hash = k.hash AND r.account = k.account) AS redemptions,
(SELECT json_agg(json_build_array(t.tenant, t.low_balance_threshold, t.overdraft_limit))
  FROM ${s}.tenant_settings t WHERE t.tenant = ANY($13::text[])) AS settings`),

    /**
     * Writes a whole batch in one statement: each table gets one multi-row `unnest` insert,
     * upsert, update or delete, with the final version of every row it touches.
     * New accounts are inserted in key order (concurrent creators queue, not deadlock); a
     * conflict there or on an idempotency key is a unique violation, which rolls the batch back
     * to run again. Ledger entries are inserted in arrival order, so `seq` follows it.
     */
    notify: statement('SELECT pg_notify($1::text, p) FROM unnest($2::text[]) AS p'),
    persist: statement(persistSql(s, false)),
    persistWithAlerts: statement(persistSql(s, true)),

    /**
     * A ledger page, newest first, through the primary key (tenant, account, seq) backwards.
     * One row more than asked says whether another page follows.
     */
    ledger: statement(`SELECT seq, type, delta, held_delta, debt_delta, balance_after, hold_id,
  grant_id, redemption_id, cycle_id, idempotency_key, reason, metadata, at
FROM ${s}.ledger
WHERE tenant = $1 AND account = $2 AND seq < coalesce($3::int8, 9223372036854775807)
  AND ($4::text[] IS NULL OR type = ANY($4::text[]))
  AND ($5::int8 IS NULL OR at >= $5::int8)
  AND ($6::int8 IS NULL OR at < $6::int8)
ORDER BY seq DESC
LIMIT $7::int4`),

    usage: statement(usageReadSql(s)),
    lastSeq: statement(`SELECT last_value FROM ${s}.ledger_seq_seq`),

    inFlightBound: statement(`SELECT min(objid::int8) AS key FROM pg_locks
WHERE locktype = 'advisory' AND classid = $1::int8::oid AND objsubid = 2`),

    /**
     * One tenant's events with $2 < seq ≤ $3, oldest first, at most $4: ledger entries through
     * (tenant, seq), alerts through theirs.
     */
    eventsOfTenant: statement(eventsSql(s, 'tenant = $1 AND seq > $2::int8 AND seq <= $3::int8')),

    /** Every tenant's events ($1 unused, for the same parameters), through (seq). */
    eventsOfAll: statement(eventsSql(s, '$1::text IS NULL AND seq > $2::int8 AND seq <= $3::int8')),

    saveCodesKey:
      statement(`INSERT INTO ${s}.idempotency (tenant, key, account, fingerprint, result,
  created_at)
VALUES ($1, $2, $3, $4, $5::json, $6::int8)
ON CONFLICT (tenant, key) DO NOTHING
RETURNING 1 AS saved`),

    readKey: statement(`SELECT account, fingerprint, result FROM ${s}.idempotency
WHERE tenant = $1 AND key = $2`),

    insertCodes: statement(`INSERT INTO ${s}.codes (tenant, hash, batch_id, credits,
  validity_days, code_expires_at, max_redemptions, redemptions, priority, category, created_at)
SELECT $1::text, * FROM unnest($2::text[], $3::text[], $4::int8[], $5::int4[], $6::int8[], $7::int8[],
  $8::int8[], $9::int4[], $10::text[], $11::int8[])`),

    /**
     * Claims up to $3 accounts with work due at $2 for this sweeper: rows another transaction
     * holds are skipped (SKIP LOCKED), and claimed rows carry a lease in database time ($4 ms) so
     * concurrent sweepers take different accounts. Persisting an account clears its claim.
     */
    dueAccounts: statement(`WITH
clock AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8 AS now),
due AS (
  SELECT h.account FROM ${s}.holds h
  WHERE h.tenant = $1 AND ${dueCondition('hold', 'h', '$2::int8')}
  UNION
  SELECT b.account FROM ${s}.buckets b
  WHERE b.tenant = $1 AND ${dueCondition('bucket', 'b', '$2::int8')}
  UNION
  SELECT a.account FROM ${s}.accounts a
  WHERE a.tenant = $1 AND ${dueCondition('account', 'a', '$2::int8')}
),
claim AS (
  SELECT a.tenant, a.account FROM ${s}.accounts a, clock
  WHERE a.tenant = $1 AND a.account IN (SELECT account FROM due)
    AND (a.sweep_claimed_until IS NULL OR a.sweep_claimed_until <= clock.now)
  LIMIT $3::int4
  FOR UPDATE OF a SKIP LOCKED
)
UPDATE ${s}.accounts a SET sweep_claimed_until = clock.now + $4::int8
FROM claim c, clock
WHERE a.tenant = c.tenant AND a.account = c.account
RETURNING a.account`),

    pruneKeys: statement(`WITH
doomed AS (
  SELECT tenant, key FROM ${s}.idempotency
  WHERE tenant = $1 AND created_at < $2::int8
  LIMIT $3::int4
  FOR UPDATE SKIP LOCKED
),
gone AS (
  DELETE FROM ${s}.idempotency i USING doomed d
  WHERE i.tenant = d.tenant AND i.key = d.key
  RETURNING 1
)
SELECT count(*)::int4 AS n FROM gone`),

    pruneHolds: statement(`WITH
doomed AS (
  SELECT tenant, account, id FROM ${s}.holds
  WHERE tenant = $1 AND status <> 'pending' AND resolved_at < $2::int8
  LIMIT $3::int4
  FOR UPDATE SKIP LOCKED
),
gone AS (
  DELETE FROM ${s}.holds h USING doomed d
  WHERE h.tenant = d.tenant AND h.account = d.account AND h.id = d.id
  RETURNING 1
)
SELECT count(*)::int4 AS n FROM gone`),

    /**
     * Records a failing account in a tenant's redeem window (once: the key dedupes) and counts
     * the window's distinct accounts. The count reads the snapshot from before the insert, so the
     * row this statement inserted is added from `ins`.
     */
    /** The stored default settings of tenant $1 (no row: none stored). */
    tenantSettings: statement(`SELECT low_balance_threshold, overdraft_limit
FROM ${s}.tenant_settings WHERE tenant = $1::text`),

    /**
     * Stores tenant $1's defaults: $2/$3 the values, $4/$5 whether each is given (one left out
     * keeps its stored value), $6 the time. Returns the row as stored.
     */
    putTenantSettings: statement(`INSERT INTO ${s}.tenant_settings AS t
  (tenant, low_balance_threshold, overdraft_limit, updated_at)
VALUES ($1::text, $2::int8, $3::int8, $6::int8)
ON CONFLICT (tenant) DO UPDATE SET
  low_balance_threshold = CASE WHEN $4::bool THEN excluded.low_balance_threshold
    ELSE t.low_balance_threshold END,
  overdraft_limit = CASE WHEN $5::bool THEN excluded.overdraft_limit ELSE t.overdraft_limit END,
  updated_at = excluded.updated_at
RETURNING low_balance_threshold, overdraft_limit`),

    noteRedeemFailure: statement(`WITH ins AS (
  INSERT INTO ${s}.redeem_failures (tenant, window_start, account)
  VALUES ($1::text, $2::int8, $3::text)
  ON CONFLICT DO NOTHING
  RETURNING 1
)
SELECT ((SELECT count(*) FROM ${s}.redeem_failures WHERE tenant = $1::text AND window_start = $2::int8)
  + (SELECT count(*) FROM ins))::int4 AS n`),

    /** Drops up to $3 rows of a tenant's redeem windows that started before $2. */
    pruneRedeemFailures: statement(`WITH
doomed AS (
  SELECT tenant, window_start, account FROM ${s}.redeem_failures
  WHERE tenant = $1 AND window_start < $2::int8
  LIMIT $3::int4
  FOR UPDATE SKIP LOCKED
),
gone AS (
  DELETE FROM ${s}.redeem_failures r USING doomed d
  WHERE r.tenant = d.tenant AND r.window_start = d.window_start AND r.account = d.account
  RETURNING 1
)
SELECT count(*)::int4 AS n FROM gone`),
  }
}
