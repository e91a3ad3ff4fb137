import { afterEach, describe, expect, it, vi } from 'vitest'
import { pgliteStore } from './pglite-store.js'
import { postgresStore } from './postgres-store.js'

// Factories connect lazily: nothing here reaches a database.
const url = 'postgres://nobody@127.0.0.1:1/none'

describe('store options', () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it('warns about unknown keys, as createMeter does', async () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    const a = postgresStore({ connectionString: url, maxBach: 3 } as never)
    // A stand-in client: pgliteStore() would otherwise start a PGlite.
    const client = { transaction: () => Promise.reject(new Error('unused')) } as never
    const b = pgliteStore({ client, dataDri: '/tmp/x' } as never)
    expect(warn).toHaveBeenCalledWith(
      'postgresStore: unknown option "maxBach" is ignored',
      'TollgateWarning',
      'TOLLGATE_UNKNOWN_OPTION',
    )
    expect(warn).toHaveBeenCalledWith(
      'pgliteStore: unknown option "dataDri" is ignored',
      'TollgateWarning',
      'TOLLGATE_UNKNOWN_OPTION',
    )
    await a.close()
    await b.close()
  })

  it('refuses bad values with InvalidInputError naming the option', () => {
    const bad: [() => unknown, string][] = [
      [() => postgresStore({} as never), 'connectionString'],
      [() => postgresStore({ connectionString: url, maxBatch: 0 }), 'maxBatch'],
      [() => postgresStore({ connectionString: url, maxWaitMs: -1 }), 'maxWaitMs'],
      [() => postgresStore({ connectionString: url, maxInFlight: 1.5 }), 'maxInFlight'],
      [() => postgresStore({ connectionString: url, schema: 'has-dash' }), 'schema'],
      [() => postgresStore({ connectionString: url, schema: 'x"; DROP' }), 'schema'],
      [() => postgresStore({ connectionString: url, poolSize: 0 }), 'poolSize'],
      [() => postgresStore({ connectionString: url, groupCommit: 'yes' as never }), 'groupCommit'],
      [() => postgresStore({ connectionString: url, pool: {} as never }), 'pool'],
      [() => pgliteStore({ dataDir: '' }), 'dataDir'],
      [() => pgliteStore({ client: {} as never }), 'client'],
    ]
    for (const [make, field] of bad) {
      expect(make, field).toThrow(expect.objectContaining({ code: 'invalid_input', field }))
    }
  })

  it('takes undefined as the default', async () => {
    const store = postgresStore({ connectionString: url, maxBatch: undefined, schema: undefined })
    expect(store.kind).toBe('postgres')
    expect(store.stats()).toMatchObject({ batches: 0, operations: 0, batchSizes: {} })
    await store.close()
    await store.close() // idempotent
    await expect(store.migrate()).rejects.toMatchObject({ code: 'store_unavailable' })
  })
})
