/**
 * The schema, as versioned migrations. `migrate()` applies the ones a database lacks, in one
 * transaction under a transaction-scoped advisory lock, so processes that start together queue
 * up and all but the first find nothing to do. Applied versions are recorded in
 * `<schema>.schema_migrations`.
 *
 * Layout (see README): every account-scoped table is keyed by (tenant, account) first, so the
 * data distributes by account; amounts and times are int8 (ms since epoch), parsed back to JS
 * numbers (they are safe integers); metadata, results and allocations are `json` (kept as
 * written: key order, and never queried inside). Text keys use the "C" collation: byte order,
 * the same in every process, so locks taken in key order never deadlock.
 */
import type { SqlClient, Statement } from './driver.js'
import { statement } from './statements.js'
import { usageBackfillSql, usageTableSql } from './usage-sql.js'

interface Migration {
  version: number
  name: string
  /** The SQL, given the quoted schema name. */
  sql(s: string): string
}

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: (s) => `
CREATE TABLE ${s}.accounts (
  tenant text COLLATE "C" NOT NULL,
  account text COLLATE "C" NOT NULL,
  debt int8 NOT NULL,
  low_balance_threshold int8,
  overdraft_limit int8,
  alert_level int2,
  cycle json,
  -- Start of the next cycle period while a cycle is active: what dueAccounts() looks for.
  cycle_next_at int8,
  redeem_failures int8 NOT NULL,
  redeem_window_start int8 NOT NULL,
  created_at int8 NOT NULL,
  -- Database time (ms) until which a sweeper owns the account (dueAccounts() claims it).
  sweep_claimed_until int8,
  PRIMARY KEY (tenant, account)
) WITH (fillfactor = 80);
CREATE INDEX accounts_cycle_due ON ${s}.accounts (tenant, cycle_next_at)
  WHERE cycle_next_at IS NOT NULL;

-- Live buckets only: a spent bucket (remaining = 0) is deleted.
CREATE TABLE ${s}.buckets (
  tenant text COLLATE "C" NOT NULL,
  account text COLLATE "C" NOT NULL,
  id text COLLATE "C" NOT NULL,
  amount int8 NOT NULL,
  remaining int8 NOT NULL,
  held int8 NOT NULL,
  expires_at int8,
  priority int4 NOT NULL,
  category text NOT NULL,
  created_at int8 NOT NULL,
  expired bool NOT NULL,
  cycle_id text,
  PRIMARY KEY (tenant, account, id)
) WITH (fillfactor = 80);
CREATE INDEX buckets_due ON ${s}.buckets (tenant, expires_at)
  WHERE NOT expired AND expires_at IS NOT NULL;

-- Pending holds, and resolved ones until prune() drops them after the retention.
CREATE TABLE ${s}.holds (
  tenant text COLLATE "C" NOT NULL,
  account text COLLATE "C" NOT NULL,
  id text COLLATE "C" NOT NULL,
  amount int8 NOT NULL,
  expires_at int8 NOT NULL,
  created_at int8 NOT NULL,
  status text NOT NULL,
  allocations json,
  metadata json,
  resolved_at int8,
  PRIMARY KEY (tenant, account, id)
) WITH (fillfactor = 80);
-- commit/release/extend carry only the hold id. Not unique, so the table still distributes by
-- account (ids are unique by construction: time + counter + random).
CREATE INDEX holds_by_id ON ${s}.holds (tenant, id);
-- Pending holds are few (work in flight, abandoned holds not swept yet): this one index serves
-- both the per-account TTL lookup and dueAccounts().
CREATE INDEX holds_pending ON ${s}.holds (tenant, account, expires_at) WHERE status = 'pending';
CREATE INDEX holds_resolved ON ${s}.holds (tenant, resolved_at) WHERE status <> 'pending';

-- Append-only. seq increases with every entry (so within a tenant, and per account in the order
-- the account's row lock serialized them); it is the entry id and the cursor.
CREATE TABLE ${s}.ledger (
  tenant text COLLATE "C" NOT NULL,
  account text COLLATE "C" NOT NULL,
  seq int8 GENERATED ALWAYS AS IDENTITY,
  type text NOT NULL,
  delta int8 NOT NULL,
  held_delta int8 NOT NULL,
  debt_delta int8 NOT NULL,
  balance_after int8 NOT NULL,
  hold_id text,
  grant_id text,
  redemption_id text,
  cycle_id text,
  idempotency_key text,
  reason text,
  metadata json,
  at int8 NOT NULL,
  PRIMARY KEY (tenant, account, seq)
);

CREATE TABLE ${s}.idempotency (
  tenant text COLLATE "C" NOT NULL,
  key text COLLATE "C" NOT NULL,
  -- '' for tenant-level operations (createCodes).
  account text NOT NULL,
  fingerprint text NOT NULL,
  result json NOT NULL,
  created_at int8 NOT NULL,
  PRIMARY KEY (tenant, key)
);
CREATE INDEX idempotency_created ON ${s}.idempotency (tenant, created_at);

-- Redeem codes: the SHA-256 of the canonical code, never the code.
CREATE TABLE ${s}.codes (
  tenant text COLLATE "C" NOT NULL,
  hash text COLLATE "C" NOT NULL,
  batch_id text NOT NULL,
  credits int8 NOT NULL,
  validity_days int4,
  code_expires_at int8,
  max_redemptions int8 NOT NULL,
  redemptions int8 NOT NULL,
  priority int4 NOT NULL,
  category text NOT NULL,
  created_at int8 NOT NULL,
  PRIMARY KEY (tenant, hash)
);

CREATE TABLE ${s}.redemptions (
  tenant text COLLATE "C" NOT NULL,
  code_hash text COLLATE "C" NOT NULL,
  account text COLLATE "C" NOT NULL,
  redemption_id text NOT NULL,
  at int8 NOT NULL,
  PRIMARY KEY (tenant, code_hash, account)
);
`,
  },
  {
    version: 2,
    name: 'server API keys',
    // Keys are few and looked up by id; not account data, so not keyed by tenant first.
    sql: (s) => `
CREATE TABLE ${s}.api_keys (
  id text COLLATE "C" PRIMARY KEY,
  tenant text COLLATE "C" NOT NULL,
  role text NOT NULL,
  name text NOT NULL,
  -- SHA-256 hex of the whole key; the key itself is never stored.
  hash text NOT NULL,
  created_at int8 NOT NULL,
  revoked_at int8
);
CREATE INDEX api_keys_tenant ON ${s}.api_keys (tenant, created_at);
`,
  },
  {
    version: 3,
    name: 'redeem failures per tenant window',
    // The server's tenant redeem limit counts distinct failing accounts of a tenant per window,
    // across processes: a count over a tenant, so keyed by tenant first, not by account (a few
    // rows a minute per tenant, dropped when a newer window starts and by prune()).
    sql: (s) => `
CREATE TABLE ${s}.redeem_failures (
  tenant text COLLATE "C" NOT NULL,
  window_start int8 NOT NULL,
  account text COLLATE "C" NOT NULL,
  PRIMARY KEY (tenant, window_start, account)
);
`,
  },
  {
    version: 4,
    name: 'outbox: events by sequence and alerts',
    // The outbox is the ledger read by sequence (every entry is an event, seq its number) plus
    // alerts, the events the ledger has no entry for. Alerts take their seq from the ledger's
    // identity sequence, so one sequence orders both (docs/store.md "Outbox"). The COMMENT
    // checks that the sequence has the name the statements use.
    sql: (s) => `
CREATE INDEX ledger_seq ON ${s}.ledger (seq);
CREATE INDEX ledger_tenant_seq ON ${s}.ledger (tenant, seq);
COMMENT ON SEQUENCE ${s}.ledger_seq_seq IS 'Tollgate store sequence: ledger entries and alerts';
CREATE TABLE ${s}.alerts (
  tenant text COLLATE "C" NOT NULL,
  account text COLLATE "C" NOT NULL,
  seq int8 NOT NULL,
  type text NOT NULL,
  data json NOT NULL,
  at int8 NOT NULL,
  PRIMARY KEY (tenant, account, seq)
);
CREATE INDEX alerts_seq ON ${s}.alerts (seq);
CREATE INDEX alerts_tenant_seq ON ${s}.alerts (tenant, seq);
`,
  },
  {
    version: 5,
    name: 'webhooks',
    // A server's webhooks: endpoints, deliveries (a copy of the event, so the outbox can be pruned
    // on its own schedule) and each tenant's fan-out cursor. Deliveries are keyed by tenant,
    // endpoint and account first: claims keep each account's deliveries in event order.
    sql: (s) => `
CREATE TABLE ${s}.webhooks (
  tenant text COLLATE "C" NOT NULL,
  id text COLLATE "C" NOT NULL,
  url text NOT NULL,
  events json NOT NULL,
  -- The signing secret: needed in the clear to sign, so kept as is (like a database password).
  secret text NOT NULL,
  created_at int8 NOT NULL,
  PRIMARY KEY (tenant, id)
);

CREATE TABLE ${s}.webhook_deliveries (
  tenant text COLLATE "C" NOT NULL,
  webhook_id text COLLATE "C" NOT NULL,
  account text COLLATE "C" NOT NULL,
  event_seq int8 NOT NULL,
  id text COLLATE "C" NOT NULL,
  event_id text NOT NULL,
  type text NOT NULL,
  at int8 NOT NULL,
  data json NOT NULL,
  status text NOT NULL,
  attempts int4 NOT NULL,
  next_at int8 NOT NULL,
  -- The claim's lease: which process attempts the delivery, until when.
  locked_until int8,
  lock_owner text,
  last_attempt_at int8,
  last_status int4,
  last_error text,
  delivered_at int8,
  created_at int8 NOT NULL,
  PRIMARY KEY (tenant, webhook_id, account, event_seq)
);
CREATE UNIQUE INDEX webhook_deliveries_id ON ${s}.webhook_deliveries (id);
CREATE INDEX webhook_deliveries_due ON ${s}.webhook_deliveries (next_at)
  WHERE status = 'pending';
CREATE INDEX webhook_deliveries_list ON ${s}.webhook_deliveries (tenant, webhook_id, event_seq);
-- What pruneDeliveries() drops: finished deliveries past the retention.
CREATE INDEX webhook_deliveries_finished ON ${s}.webhook_deliveries (created_at)
  WHERE status <> 'pending';

CREATE TABLE ${s}.webhook_cursors (
  tenant text COLLATE "C" PRIMARY KEY,
  seq int8 NOT NULL
);
`,
  },
  {
    version: 6,
    name: 'tenant settings',
    // A tenant's default settings, read with each batch's account state (one row per tenant,
    // keyed by tenant: a sharded database keeps it as a reference table). Each version is
    // applied on its own, so versions written on parallel branches apply in any order.
    sql: (s) => `
CREATE TABLE ${s}.tenant_settings (
  tenant text COLLATE "C" PRIMARY KEY,
  low_balance_threshold int8,
  overdraft_limit int8,
  updated_at int8 NOT NULL
);
`,
  },
  {
    version: 8,
    name: 'usage rollups',
    // Hourly usage per account and per tenant (usage-sql.ts, docs/usage.md), kept by every
    // batch in its own transaction from now on, and built here from the ledger written so far.
    // (Version 7 is another change's; versions apply in any order.)
    sql: (s) => `${usageTableSql(s)}${usageBackfillSql(s)}`,
  },
]

/** The schema version this package writes and reads. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version

/** Statements `migrate()` needs, for one schema. */
export interface MigrationStatements {
  schema: string
  quoted: string
  version: Statement
  /** Every applied version. */
  applied: Statement
  lock: Statement
  record: Statement
}

export function migrationStatements(schema: string, quoted: string): MigrationStatements {
  return {
    schema,
    quoted,
    version: statement(
      `SELECT coalesce(max(version), 0)::int4 AS version, count(*)::int4 AS applied
FROM ${quoted}.schema_migrations`,
    ),
    applied: statement(`SELECT version FROM ${quoted}.schema_migrations`),
    // Two int4 keys: one for Tollgate, one for the schema, so two schemas migrate independently.
    lock: statement(
      `SELECT pg_advisory_xact_lock(hashtext('tollgate.migrate'), hashtext($1::text))`,
    ),
    record: statement(
      `INSERT INTO ${quoted}.schema_migrations (version, name) VALUES ($1::int4, $2::text)`,
    ),
  }
}

/** The newest applied version and how many are applied. */
async function currentVersion(
  db: SqlClient,
  st: MigrationStatements,
): Promise<{ version: number; applied: number }> {
  const [row] = await db.query<{ version: number | string; applied: number | string }>(
    st.version,
    [],
  )
  return { version: Number(row?.version ?? 0), applied: Number(row?.applied ?? 0) }
}

/**
 * Brings the schema up to date. Cheap when it already is (one read, no lock); otherwise one
 * transaction under the advisory lock.
 */
export async function migrate(
  db: SqlClient & { transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> },
  st: MigrationStatements,
): Promise<void> {
  let seen = { version: 0, applied: 0 }
  try {
    seen = await currentVersion(db, st)
  } catch {
    // No migrations table yet (or no schema): the locked path below creates it.
  }
  checkNotNewer(seen.version)
  if (seen.version === SCHEMA_VERSION && seen.applied === MIGRATIONS.length) return
  await db.transaction(async (tx) => {
    await tx.query(st.lock, [st.schema])
    // Under the lock: CREATE … IF NOT EXISTS alone is not safe against a concurrent creator.
    await tx.script(`CREATE SCHEMA IF NOT EXISTS ${st.quoted};
CREATE TABLE IF NOT EXISTS ${st.quoted}.schema_migrations (
  version int4 PRIMARY KEY,
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);`)
    // Read again under the lock: another process may have migrated while we waited.
    checkNotNewer((await currentVersion(tx, st)).version)
    // Every version not applied yet, not only those above the newest: versions written on
    // parallel branches (4, 5, 6) may reach a database in any order.
    const applied = new Set(
      (await tx.query<{ version: number | string }>(st.applied, [])).map((r) => Number(r.version)),
    )
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue
      await tx.script(m.sql(st.quoted))
      await tx.query(st.record, [m.version, m.name])
    }
  })
}

function checkNotNewer(version: number): void {
  if (version > SCHEMA_VERSION) {
    throw new Error(
      `Tollgate schema version ${version} is newer than this @tollgate/postgres (${SCHEMA_VERSION}): upgrade the package`,
    )
  }
}
