/**
 * `store.noteRedeemFailure()`: distinct failing accounts per tenant window, shared by every
 * process on the database, on PGlite and PostgreSQL.
 */
import type { Store } from '@tollgate/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pgliteStore } from './pglite-store.js'
import { postgresStore } from './postgres-store.js'
import { describePostgres, dropSchemaAfterAll, uniqueSchema } from './test-support.js'

const W = 60_000

function checks(make: () => Store): void {
  let store: Store
  let note: (tenant: string, account: string, windowStart: number) => Promise<number>
  beforeAll(async () => {
    store = make()
    await store.migrate!()
    note = (tenant, account, windowStart) => store.noteRedeemFailure!(tenant, account, windowStart)
  }, 60_000)
  afterAll(() => store.close())

  it('counts distinct accounts, once each, per tenant and window', async () => {
    expect(await note('t', 'a', 10 * W)).toBe(1)
    expect(await note('t', 'a', 10 * W)).toBe(1)
    expect(await note('t', 'b', 10 * W)).toBe(2)
    expect(await note('t', 'a', 10 * W)).toBe(2)
    // Another tenant, and the same tenant's next window, count apart.
    expect(await note('u', 'a', 10 * W)).toBe(1)
    expect(await note('t', 'a', 11 * W)).toBe(1)
    // Ids that differ only in case or normalisation are distinct accounts.
    expect(await note('u', 'A', 10 * W)).toBe(2)
    expect(await note('u', 'e\u0301', 10 * W)).toBe(3)
    expect(await note('u', 'é', 10 * W)).toBe(4)
  })

  it('concurrent reports of many accounts count each once', async () => {
    const accounts = Array.from({ length: 40 }, (_, i) => `acct-${i % 20}`)
    const counts = await Promise.all(accounts.map((a) => note('c', a, 20 * W)))
    expect(Math.max(...counts)).toBe(20)
    expect(await note('c', 'acct-0', 20 * W)).toBe(20)
  })

  it('a new window drops older ones; prune() drops what is left', async () => {
    expect(await note('p', 'a', 30 * W)).toBe(1)
    expect(await note('p', 'b', 30 * W)).toBe(2)
    // The first failure of a newer window drops the older rows: reporting there starts again.
    expect(await note('p', 'c', 31 * W)).toBe(1)
    expect(await note('p', 'a', 30 * W)).toBe(1)
    expect(await store.prune('p', 31 * W)).toBe(1)
    expect(await note('p', 'b', 30 * W)).toBe(1)
    expect(await note('p', 'd', 31 * W)).toBe(2)
  })
}

describe('noteRedeemFailure() on PGlite', () => checks(() => pgliteStore()))

describePostgres('noteRedeemFailure() on PostgreSQL', (url) => {
  const schema = uniqueSchema('redeemfail')
  dropSchemaAfterAll(url, schema)
  checks(() => postgresStore({ connectionString: url, schema }))
})
