/**
 * The shared conformance suite and the model-based property test on PostgreSQL, in a schema of
 * this run's own (dropped afterwards). One store serves every test; the suite gives each test a
 * tenant of its own.
 */
import { describeStoreConformance } from '@tollgate/conformance'
import { afterAll } from 'vitest'
import { postgresStore } from './postgres-store.js'
import type { PostgresStore } from './sql-store.js'
import { describePostgres, dropSchemaAfterAll, uniqueSchema } from './test-support.js'

describePostgres('postgresStore', (url) => {
  const schema = uniqueSchema('conf')
  const stores: PostgresStore[] = []
  /** Created on first use, inside a test, so a skipped suite never connects. */
  const lazy = (options: { groupCommit?: boolean; holdCacheSize?: number } = {}) => {
    let store: PostgresStore | undefined
    return () => {
      if (!store) {
        store = postgresStore({ connectionString: url, schema, ...options })
        stores.push(store)
      }
      return store
    }
  }
  afterAll(() => Promise.all(stores.map((s) => s.close())))
  dropSchemaAfterAll(url, schema)

  describeStoreConformance({
    name: 'postgres',
    createStore: lazy(),
    teardown: () => {},
    // Another process's store on the same schema: the change feed reaches it by NOTIFY.
    createPeer: () => postgresStore({ connectionString: url, schema, poolSize: 2 }),
    // ~60 ms a sequence on this 2-core machine (500 runs took 29 s): 200 runs ≈ 12 s.
    numRuns: 200,
  })

  // The rules again in the baseline mode (a transaction per operation) and with every hold
  // found by id in the database instead of the store's hold cache: the other code paths.
  describeStoreConformance({
    name: 'postgres, groupCommit: false, holdCacheSize: 0',
    createStore: lazy({ groupCommit: false, holdCacheSize: 0 }),
    teardown: () => {},
    // Fewer sequences here: the group-commit run above already explores the rules widely.
    numRuns: 30,
  })
})
