/**
 * Usage rollups in SQL (docs/usage.md): the table the store keeps in step with the ledger, the
 * backfill that builds it from an existing ledger, and the read. What an entry adds is the
 * engine's `usageOf` and `usageDimensions`: the store path calls them (rows.ts); the backfill
 * below is the same mapping written once in SQL for the migration, and a test holds the two to
 * the same rows.
 */
import {
  MAX_USAGE_DIMENSIONS,
  MAX_USAGE_KEY_LENGTH,
  MAX_USAGE_VALUE_LENGTH,
} from '@tollgate/core/engine'

/**
 * How many shards a tenant's rows are spread over. Every batch adds to the tenant's rows of its
 * hour; with one row per key, concurrent transactions of a tenant (other processes, or
 * concurrent group commits) would all wait on that row's lock until the holder commits, one
 * point serializing every account. Each batch writes its tenant increments to one shard it
 * picks at random, so two concurrent batches meet on a row once in 16; reads sum the shards.
 */
export const USAGE_TENANT_SHARDS = 16

/**
 * One row per (tenant, account, dimension, UTC hour, value, shard): account `''` holds the
 * tenant's totals (no account id is empty), spread over shards 0…{@link USAGE_TENANT_SHARDS}-1;
 * an account's rows are all shard 0. Dimension `''` with value `''` holds the totals, each
 * grouped metadata key its values. Days and months are sums of hours, and every read sums over
 * shards. The shard is the key's last column, so reads use the key's index as before.
 */
export function usageTableSql(s: string): string {
  return `
CREATE TABLE ${s}.usage_hourly (
  tenant text COLLATE "C" NOT NULL,
  account text COLLATE "C" NOT NULL,
  dim_key text COLLATE "C" NOT NULL,
  hour int8 NOT NULL,
  dim_value text COLLATE "C" NOT NULL,
  -- numeric, not int8: a tenant's hour sums every account's figures, and many accounts of
  -- safe-integer amounts can pass int8's range; a write must never fail for it.
  granted numeric NOT NULL,
  spent numeric NOT NULL,
  released numeric NOT NULL,
  expired numeric NOT NULL,
  shard int2 NOT NULL DEFAULT 0 CHECK (shard >= 0 AND shard < ${USAGE_TENANT_SHARDS}),
  PRIMARY KEY (tenant, account, dim_key, hour, dim_value, shard)
) WITH (fillfactor = 90);
`
}

/**
 * The rollup rows of the ledger entries `where` selects (a condition on the ledger alias `l`),
 * aggregated: the engine's `usageOf` per entry type, and `usageDimensions` (string, number and
 * boolean values as JSON wrote them, the first keys in "C" order, keys and values bounded by
 * code points). Entries whose figures are all zero (holds) add no row, as on the store path.
 * Every row goes to shard 0: the backfill runs alone, and reads sum over shards anyway.
 */
export function usageBackfillSql(s: string, where = 'true'): string {
  return `
INSERT INTO ${s}.usage_hourly (tenant, account, dim_key, hour, dim_value, granted, spent,
  released, expired)
SELECT e.tenant, w.account, d.k, e.hour, d.v, sum(e.granted), sum(e.spent), sum(e.released),
  sum(e.expired)
FROM (
  SELECT l.tenant, l.account, l.metadata, l.at - l.at % 3600000 AS hour,
    CASE WHEN l.type IN ('grant', 'redeem', 'cycle_grant', 'adjust') THEN l.delta ELSE 0 END
      AS granted,
    CASE WHEN l.type IN ('debit', 'commit') THEN -l.delta ELSE 0 END AS spent,
    CASE l.type WHEN 'commit' THEN greatest(0, l.delta - l.held_delta)
      WHEN 'release' THEN -l.held_delta ELSE 0 END AS released,
    CASE WHEN l.type = 'expire' THEN -l.delta ELSE 0 END AS expired
  FROM ${s}.ledger l
  WHERE ${where} AND l.type <> 'hold'
) e
CROSS JOIN LATERAL (VALUES (e.account), ('')) AS w(account)
CROSS JOIN LATERAL (
  SELECT ''::text AS k, ''::text AS v
  UNION ALL
  SELECT j.key, left(j.value #>> '{}', ${MAX_USAGE_VALUE_LENGTH})
  FROM (
    SELECT m.key, m.value, row_number() OVER (ORDER BY m.key COLLATE "C") AS n
    FROM json_each(e.metadata) AS m
    WHERE json_typeof(m.value) IN ('string', 'number', 'boolean')
      AND length(m.key) BETWEEN 1 AND ${MAX_USAGE_KEY_LENGTH}
  ) j
  WHERE j.n <= ${MAX_USAGE_DIMENSIONS}
) d
WHERE e.granted <> 0 OR e.spent <> 0 OR e.released <> 0 OR e.expired <> 0
GROUP BY e.tenant, w.account, d.k, e.hour, d.v
ON CONFLICT (tenant, account, dim_key, hour, dim_value, shard) DO UPDATE SET
  granted = ${s}.usage_hourly.granted + excluded.granted,
  spent = ${s}.usage_hourly.spent + excluded.spent,
  released = ${s}.usage_hourly.released + excluded.released,
  expired = ${s}.usage_hourly.expired + excluded.expired;
`
}

/**
 * The persist statement's part that adds a batch's rollup increments ($a…$a+8: tenant, account,
 * dim_key, hour, dim_value, granted, spent, released, expired; $a+9 the batch's tenant shard),
 * one row per key, locked in key order so that concurrent batches that meet on a row (an
 * account's, or the same tenant shard) queue instead of deadlocking. The tenant's rows (account
 * `''`) go to the batch's shard, an account's to shard 0.
 */
export function usageUpsertCte(s: string, a: number): string {
  const p = (i: number) => `$${a + i}`
  return `usage_rows AS (
  INSERT INTO ${s}.usage_hourly AS u (tenant, account, dim_key, hour, dim_value, granted, spent,
    released, expired, shard)
  SELECT x.*, CASE WHEN x.account = '' THEN ${p(9)}::int2 ELSE 0::int2 END
  FROM unnest(${p(0)}::text[], ${p(1)}::text[], ${p(2)}::text[], ${p(3)}::int8[],
    ${p(4)}::text[], ${p(5)}::numeric[], ${p(6)}::numeric[], ${p(7)}::numeric[],
    ${p(8)}::numeric[])
    AS x(tenant, account, dim_key, hour, dim_value, granted, spent, released, expired)
  ORDER BY x.tenant COLLATE "C", x.account COLLATE "C", x.dim_key COLLATE "C", x.hour,
    x.dim_value COLLATE "C"
  ON CONFLICT (tenant, account, dim_key, hour, dim_value, shard) DO UPDATE SET
    granted = u.granted + excluded.granted, spent = u.spent + excluded.spent,
    released = u.released + excluded.released, expired = u.expired + excluded.expired
),`
}

/**
 * The usage read: $1 tenant, $2 account (`''` for the tenant), $3 the groupBy key (null for
 * none), $4 the periods' starts, $5/$6 the window, $7 how many values to list. Rows of kind 0
 * are the totals per period; kind 1 a listed value's per period, or with a null value the
 * others summed (`others` says how many values that is). Periods come from `width_bucket` over
 * the starts, so hours, days and calendar months are the same query; the sums take in every
 * shard of the tenant's rows.
 */
export function usageReadSql(s: string): string {
  const sums = `sum(granted) AS granted, sum(spent) AS spent, sum(released) AS released,
    sum(expired) AS expired`
  return `WITH v AS (
  SELECT dim_value AS value, width_bucket(hour, $4::int8[]) AS p, ${sums}
  FROM ${s}.usage_hourly
  WHERE tenant = $1 AND account = $2 AND dim_key = $3::text AND hour >= $5 AND hour < $6
  GROUP BY 1, 2
),
ranked AS (
  SELECT value, row_number() OVER (ORDER BY sum(spent) DESC, value COLLATE "C") AS n
  FROM v GROUP BY value
)
SELECT 0 AS kind, NULL::text AS value, width_bucket(hour, $4::int8[]) AS p, ${sums},
  0::int8 AS others
FROM ${s}.usage_hourly
WHERE tenant = $1 AND account = $2 AND dim_key = '' AND hour >= $5 AND hour < $6
GROUP BY 3
UNION ALL
SELECT 1, CASE WHEN r.n <= $7 THEN v.value END, v.p, ${sums},
  (SELECT count(*) FROM ranked WHERE n > $7)::int8
FROM v JOIN ranked r ON r.value = v.value
GROUP BY 2, 3`
}
