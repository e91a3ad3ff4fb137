/**
 * PostgreSQL stopped with `-m immediate` (a crash: no checkpoint, every connection cut) while
 * app processes and REST clients load a Tollgate server, then started again. Every error the
 * server answers meanwhile is a 503 `store_unavailable` (key lookups included), and once it is
 * back nothing is lost or applied twice: the invariant checks of the other cross-process tests.
 *
 * It stops the machine's PostgreSQL, so it runs only when TOLLGATE_TEST_PG_RESTART=1 (CI sets
 * it), after every other file (test/vitest.config.ts), and keeps the outage to a few seconds.
 */
import { execFile } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { promisify } from 'node:util'
import { createMeter, type Meter } from '@tollgate/core'
import { postgresStore } from '@tollgate/postgres'
import { afterAll, describe, expect, it } from 'vitest'
import { DebitClient, expectLedgerMatchesAnswers, type Sample, summary } from './faults.js'
import {
  contend,
  countTypes,
  createTenantKey,
  databaseUrl,
  dropSchemas,
  expectReplays,
  gateOnDatabase,
  ledgerOf,
  startServer,
  stop,
} from './processes.js'

const run = promisify(execFile)
const enabled = process.env.TOLLGATE_TEST_PG_RESTART === '1'
if (enabled) gateOnDatabase('PostgreSQL restart under load')
else {
  console.warn(
    'SKIPPED: PostgreSQL restart under load (it stops the machine’s PostgreSQL; set TOLLGATE_TEST_PG_RESTART=1 to run it)',
  )
}

const OUTAGE_MS = 1_000
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** `pg_ctlcluster <version> main <action>`, the way the machine runs its PostgreSQL. */
async function cluster(action: 'stop' | 'start'): Promise<void> {
  const version = readdirSync('/etc/postgresql')[0]!
  const args = ['--skip-systemctl-redirect', version, 'main', action]
  if (action === 'stop') args.push('-m', 'immediate')
  await run('pg_ctlcluster', args)
}

/** Resolves once PostgreSQL accepts connections again (at most a minute). */
async function untilReady(): Promise<void> {
  const { hostname, port } = new URL(databaseUrl!)
  for (let i = 0; i < 120; i++) {
    try {
      await run('pg_isready', ['-q', '-h', hostname, '-p', port || '5432'])
      return
    } catch {
      await sleep(500)
    }
  }
  throw new Error('PostgreSQL did not come back within a minute')
}

describe.skipIf(!databaseUrl || !enabled)('PostgreSQL stopped under load', () => {
  const schema = `tg_test_restart_${process.pid}_${Date.now().toString(36)}`
  let meter: Meter | undefined
  afterAll(async () => {
    await meter?.close()
    await dropSchemas(schema)
  }, 60_000)

  it('every error the server answers is a 503; nothing is lost or applied twice', async () => {
    const server = await startServer({ url: databaseUrl, schema })
    let stopped = false
    try {
      const apiKey = await createTenantKey(server.url, server.adminKey, 'restart')
      meter = createMeter({
        store: postgresStore({ connectionString: databaseUrl!, schema, poolSize: 2 }),
        tenant: 'restart',
        cache: false,
      })
      await meter.grant('hot', 1_000)
      const accounts = ['r0', 'r1', 'r2', 'r3']
      for (const a of accounts) await meter.grant(a, 1_000_000)

      // App processes through httpStore, retrying long enough to ride out the outage.
      const apps = contend(
        { url: server.url, apiKey, transport: { retries: 60, retryBaseMs: 20, retryMaxMs: 250 } },
        ['hot'],
        3_000,
      )
      // REST clients that see every answer, each debit retried under its key until it is 200.
      const origin = performance.now()
      const rest = new DebitClient(server.url, apiKey, 'restart', origin)
      let appsDone = false
      let n = 0
      const restLoop = async () => {
        while (!appsDone) {
          const i = n++
          const key = `rest-${i}`
          let answer: Sample
          do {
            answer = await rest.debit(accounts[i % accounts.length]!, key)
            if (answer.status !== 200) await sleep(50)
          } while (answer.status !== 200)
        }
      }
      const restLoops = Promise.all(Array.from({ length: 4 }, restLoop))
      const allApps = apps.finally(() => {
        appsDone = true
      })

      // The outage, in the middle of the load.
      await sleep(1_500)
      const stopping = performance.now() - origin
      await cluster('stop')
      stopped = true
      const stoppedAt = performance.now() - origin
      await sleep(OUTAGE_MS)
      const starting = performance.now() - origin
      await cluster('start')
      await untilReady()
      stopped = false
      const readyAt = performance.now() - origin

      const r = await allApps
      await restLoops
      await rest.close()

      const errors = rest.samples.filter((s) => s.status !== 200)
      const statuses: Record<string, number> = {}
      for (const s of rest.samples) {
        const k = `${s.status}${s.code ? ` ${s.code}` : ''}`
        statuses[k] = (statuses[k] ?? 0) + 1
      }
      console.log(
        `[postgres -m immediate] stop ${Math.round(stopping)}–${Math.round(stoppedAt)} ms, ` +
          `start ${Math.round(starting)}–${Math.round(readyAt)} ms (ready); ` +
          `REST answers ${JSON.stringify(statuses)}, errors ${JSON.stringify(summary(errors.map((s) => s.ms)))} ms; ` +
          `app processes: ${r.ok} ok, ${r.insufficient} insufficient, ${r.errors.length} errors`,
      )
      // The outage was felt, and every error said so as a 503.
      expect(errors.length).toBeGreaterThan(0)
      for (const s of errors) {
        expect(s).toMatchObject({ status: 503, code: 'store_unavailable' })
        expect(s.retryAfter).toMatch(/^[1-9][0-9]*$/)
      }

      // Nothing lost, nothing applied twice: the app processes' account…
      expect(r.errors).toEqual([])
      expect(r.ok).toBe(1_000)
      expect(r.insufficient).toBe(2_000)
      const { balance, entries } = await expectReplays(meter, 'hot')
      expect(balance).toMatchObject({ total: 0, held: 0, available: 0, debt: 0 })
      expect(countTypes(entries)).toEqual({ grant: 1, hold: 1_000, commit: 1_000 })
      // …and the REST clients' accounts: every key once, as answered.
      const debits = await expectLedgerMatchesAnswers(meter, rest.samples)
      expect(debits).toBe(n)
      for (const a of accounts) {
        expect((await ledgerOf(meter, a)).filter((e) => e.type === 'debit').length).toBeGreaterThan(
          0,
        )
      }
    } finally {
      // Never leave the machine without its database.
      if (stopped) {
        await cluster('start').catch(() => {})
        await untilReady()
      }
      expect(await stop(server.child)).toBe(0)
    }
  }, 240_000)
})
