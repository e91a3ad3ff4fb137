/**
 * `Store.tenants()` for the SQL stores: the tenants that hold accounts, paged in the accounts
 * key's order ("C" collation), for a sweeper that must not remember every tenant it saw.
 */
import type { SqlClient } from './driver.js'
import { statement } from './statements.js'

/** Pages of tenant names over one schema. */
export function sqlTenantList(
  client: SqlClient,
  quotedSchema: string,
): (after: string | null, limit: number) => Promise<string[]> {
  // A skip scan: one index probe per distinct tenant on the (tenant, account) primary key, not a
  // scan of every account. PostgreSQL evaluates a recursive WITH only as far as the outer LIMIT
  // reads it. Tenants are never empty, so '' starts before the first.
  const page = statement(`WITH RECURSIVE t(tenant) AS (
  (SELECT tenant FROM ${quotedSchema}.accounts WHERE tenant > $1::text ORDER BY tenant LIMIT 1)
  UNION ALL
  SELECT (SELECT a.tenant FROM ${quotedSchema}.accounts a
    WHERE a.tenant > t.tenant ORDER BY a.tenant LIMIT 1)
  FROM t WHERE t.tenant IS NOT NULL
)
SELECT tenant FROM t WHERE tenant IS NOT NULL LIMIT $2::int4`)
  return async (after, limit) => {
    const rows = await client.query<{ tenant: string }>(page, [after ?? '', limit])
    return rows.map((r) => r.tenant)
  }
}
