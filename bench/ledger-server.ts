/**
 * The Tollgate server of the HTTP benchmark's `server` scenarios: `createServer()` from
 * `@tollgate/server` in a process of its own, on a fresh file-backed PGlite store or on the
 * run's PostgreSQL schema. The app server reaches it through `httpStore()`.
 *
 *   node --import tsx ledger-server.ts '{"store":"pglite"|"postgres","databaseUrl","schema","adminKey"}'
 *
 * Reports `{ url }` over IPC (or `{ error }`), answers `'cpu'` with its CPU time so far, and
 * closes on SIGTERM or when the driver goes away.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pgliteStore, postgresStore } from '@tollgate/postgres'
import { createServer } from '@tollgate/server'

interface LedgerConfig {
  store: 'pglite' | 'postgres'
  databaseUrl: string
  schema: string
  adminKey: string
}

const config = JSON.parse(process.argv[2] ?? '{}') as LedgerConfig
const dataDir =
  config.store === 'postgres' ? null : mkdtempSync(path.join(os.tmpdir(), 'tollgate-bench-ledger-'))
const store =
  dataDir === null
    ? postgresStore({ connectionString: config.databaseUrl, schema: config.schema })
    : pgliteStore({ dataDir })
const server = createServer({ store, adminKey: config.adminKey, logger: false, sweepIntervalMs: 0 })

let stopping = false
async function stop(code = 0) {
  if (stopping) return
  stopping = true
  await server.close().catch(() => {})
  if (dataDir) rmSync(dataDir, { recursive: true, force: true })
  process.exit(code)
}

try {
  const { url } = await server.listen({ port: 0, host: '127.0.0.1' })
  process.send?.({ url })
} catch (error) {
  const message = error instanceof Error ? error.message : String(error)
  process.send?.({ error: message }, () => void stop(1))
}
process.on('message', (m) => {
  if (m === 'cpu') process.send?.({ cpu: process.cpuUsage() })
})
process.on('SIGTERM', () => void stop())
process.on('disconnect', () => void stop())
