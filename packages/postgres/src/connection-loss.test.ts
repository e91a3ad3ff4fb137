/**
 * Connection loss: the store's backends are terminated (as a database restart or failover does)
 * while operations run. Each operation either succeeds or fails with store_unavailable, none is
 * half-applied (the ledger replays to the balance), and the pool recovers by itself.
 */
import { createMeter, isTollgateError } from '@tollgate/core'
import { expect, it } from 'vitest'
import { postgresStore } from './postgres-store.js'
import {
  describePostgres,
  dropSchemaAfterAll,
  expectLedgerReplays,
  uniqueSchema,
  withClient,
} from './test-support.js'

describePostgres('postgresStore after losing its connections', (url) => {
  const schema = uniqueSchema('loss')
  dropSchemaAfterAll(url, schema)

  it('fails operations with store_unavailable, never half-applies, and recovers', async () => {
    const applicationName = `tollgate-loss-${process.pid}`
    const store = postgresStore({ connectionString: url, schema, applicationName, poolSize: 4 })
    const meter = createMeter({ store, cache: false })
    const accounts = ['a', 'b', 'c']
    try {
      for (const a of accounts) await meter.grant(a, 1_000_000)
      let running = true
      let ok = 0
      let unavailable = 0
      const unexpected: unknown[] = []
      const worker = async (w: number) => {
        while (running) {
          const account = accounts[w % accounts.length]!
          try {
            const hold = await meter.reserve(account, 2)
            await hold.commit(1)
            await meter.debit(account, 1)
            ok++
          } catch (err) {
            if (isTollgateError(err, 'store_unavailable')) unavailable++
            else unexpected.push(err)
          }
        }
      }
      const workers = Array.from({ length: 8 }, (_, w) => worker(w))
      const kill = () =>
        withClient(url, (c) =>
          c.query(
            'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
            [applicationName],
          ),
        )
      // Kill a few times, and until some operation was caught in the act.
      for (let kills = 0; kills < 30 && (kills < 3 || unavailable === 0); kills++) {
        await new Promise((resolve) => setTimeout(resolve, 100))
        await kill()
      }
      await new Promise((resolve) => setTimeout(resolve, 150))
      running = false
      await Promise.all(workers)
      console.log(`[connection loss] ${ok} rounds succeeded, ${unavailable} operations failed`)
      // An operation either succeeded or failed as store_unavailable: nothing else.
      expect(unexpected).toEqual([])
      expect(ok).toBeGreaterThan(0)
      expect(unavailable).toBeGreaterThan(0)
      // The same store (and pool) works again, and every ledger adds up.
      for (const a of accounts) {
        await meter.grant(a, 1)
        await expectLedgerReplays(meter, a)
      }
    } finally {
      await meter.close()
    }
  })
})
