/** `store.tenants()`: every tenant with accounts, paged in order, on PGlite and PostgreSQL. */
import { createMeter, type Store } from '@tollgate/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pgliteStore } from './pglite-store.js'
import { postgresStore } from './postgres-store.js'
import { describePostgres, dropSchemaAfterAll, uniqueSchema } from './test-support.js'

// Tenant names whose order differs between byte order ("C") and a locale: case, accents, emoji.
const TENANTS = [
  ...Array.from({ length: 300 }, (_, i) => `t${String(i).padStart(3, '0')}`),
  'Z',
  'a',
  'é',
  'e\u0301',
  '😀',
  'tenant with spaces',
]

async function seed(store: Store): Promise<void> {
  await Promise.all(
    TENANTS.map((tenant) => createMeter({ store, tenant, cache: false }).grant('a', 1)),
  )
  // A second account in some tenants: a tenant is listed once.
  await createMeter({ store, tenant: 'a', cache: false }).grant('b', 1)
}

async function pages(store: Store, size: number): Promise<string[]> {
  const all: string[] = []
  let after: string | null = null
  for (;;) {
    const page: string[] = await store.tenants!(after, size)
    expect(page.length).toBeLessThanOrEqual(size)
    all.push(...page)
    if (page.length < size) return all
    after = page[page.length - 1]!
  }
}

function checks(make: () => Store): void {
  let store: Store
  beforeAll(async () => {
    store = make()
    await seed(store)
  }, 60_000)
  afterAll(() => store.close())

  it('lists every tenant once, in byte order, in pages of any size', async () => {
    const byteOrder = [...TENANTS].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
    expect(await pages(store, 128)).toEqual(byteOrder)
    expect(await pages(store, 1)).toEqual(byteOrder)
    expect(await pages(store, 10_000)).toEqual(byteOrder)
    expect(await store.tenants!(byteOrder.at(-1)!, 10)).toEqual([])
  })
}

describe('tenants() on PGlite', () => checks(() => pgliteStore()))

describePostgres('tenants() on PostgreSQL', (url) => {
  const schema = uniqueSchema('tenants')
  dropSchemaAfterAll(url, schema)
  checks(() => postgresStore({ connectionString: url, schema }))
})
