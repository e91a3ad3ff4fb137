/**
 * The API keys of a Tollgate server running on this store, in `<schema>.api_keys` (migration 2):
 * the key's id, tenant, role and the SHA-256 of the key, never the key itself.
 */
import { isTollgateError, StoreUnavailableError } from '@tollgate/core'
import type { ApiKeyRecord, KeyRegistry } from '@tollgate/core/store'
import type { SqlClient } from './driver.js'
import { statement } from './statements.js'

interface KeyRow {
  id: string
  tenant: string
  role: string
  name: string
  hash: string
  created_at: string | number
  revoked_at: string | number | null
}

function recordOf(r: KeyRow): ApiKeyRecord {
  return {
    id: r.id,
    tenant: r.tenant,
    role: r.role === 'admin' ? 'admin' : 'tenant',
    name: r.name,
    hash: r.hash,
    createdAt: Number(r.created_at),
    revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
  }
}

/** A {@link KeyRegistry} over one schema; `ready` runs before each call (the migrations). */
export function sqlKeyRegistry(
  client: SqlClient,
  quotedSchema: string,
  ready: () => Promise<void>,
): KeyRegistry {
  const cols = 'id, tenant, role, name, hash, created_at, revoked_at'
  const insert = statement(
    `INSERT INTO ${quotedSchema}.api_keys (${cols}) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
  )
  const find = statement(`SELECT ${cols} FROM ${quotedSchema}.api_keys WHERE id = $1`)
  const list = statement(
    `SELECT ${cols} FROM ${quotedSchema}.api_keys
WHERE $1::text IS NULL OR tenant = $1 ORDER BY created_at, id`,
  )
  const revoke = statement(
    `UPDATE ${quotedSchema}.api_keys SET revoked_at = $2
WHERE id = $1 AND revoked_at IS NULL RETURNING id`,
  )
  /**
   * Runs one registry call; a database failure is a {@link StoreUnavailableError} (503 on the
   * server, retried by clients) whose message does not carry the database's words (they stay on
   * `cause`, for the log).
   */
  const guarded = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      await ready()
      return await fn()
    } catch (err) {
      if (isTollgateError(err)) throw err
      throw new StoreUnavailableError(`API keys cannot be ${what}`, { cause: err })
    }
  }
  return {
    createKey: (k) =>
      guarded('written', async () => {
        await client.query(insert, [
          k.id,
          k.tenant,
          k.role,
          k.name,
          k.hash,
          k.createdAt,
          k.revokedAt,
        ])
      }),
    findKey: (id) =>
      guarded('read', async () => {
        const [row] = await client.query<KeyRow>(find, [id])
        return row ? recordOf(row) : null
      }),
    listKeys: (tenant) =>
      guarded('read', async () => (await client.query<KeyRow>(list, [tenant])).map(recordOf)),
    revokeKey: (id, at) =>
      guarded(
        'written',
        async () => (await client.query<{ id: string }>(revoke, [id, at])).length > 0,
      ),
  }
}
