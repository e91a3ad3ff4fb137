// A Tollgate server process: createServer over a file-backed PGlite store (`dataDir`),
// PostgreSQL (`url` + `schema`) or, with `memory`, the memory store, on `port` (default: a free
// one), with `webhooks` options when given. Prints one JSON line { url, adminKey } when it
// listens, then serves until SIGTERM (a graceful close) or SIGKILL.

import { memoryStore } from '@tollgate/core'
import { pgliteStore, postgresStore } from '@tollgate/postgres'
import { createServer } from '@tollgate/server'

const { dataDir, url, schema, memory, port = 0, webhooks, adminKey } = JSON.parse(process.argv[2])
const store = memory
  ? memoryStore()
  : url
    ? postgresStore({ connectionString: url, schema })
    : pgliteStore({ dataDir })
const server = createServer({
  store,
  logger: false,
  sweepIntervalMs: 0,
  ...(webhooks ? { webhooks } : {}),
  ...(adminKey ? { adminKey } : {}),
})
const listening = await server.listen({ port, host: '127.0.0.1' })
process.stdout.write(`${JSON.stringify({ url: listening.url, adminKey: listening.adminKey })}\n`)
process.once('SIGTERM', () => {
  server.close().then(
    () => process.exit(0),
    (err) => {
      console.error(err)
      process.exit(1)
    },
  )
})
