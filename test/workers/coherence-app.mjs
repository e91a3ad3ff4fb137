// An app process for the cache coherence test: a meter with the default balance cache, on
// PostgreSQL (`url` + `schema`, in `tenant`) or on a Tollgate server through httpStore (`server`
// + `apiKey`). It reads one JSON command per stdin line and answers one JSON line on stdout:
// - { op: 'refuse', account }: two reserves of 1, both refused (the second from the cache);
// - { op: 'wait', account }: reserves of 1 every millisecond until one is served (at most
//   `waitMs`); answers { servedAt } (performance.timeOrigin + performance.now()), or null;
// - { op: 'grant', account }: grants 10; answers { grantedAt } once the grant returned.
// Prints { ready: true } first, once the meter's change feed had a moment to open.
import { createInterface } from 'node:readline'
import { createMeter, httpStore } from '@tollgate/core'
import { postgresStore } from '@tollgate/postgres'

const { url, schema, tenant, server, apiKey, waitMs = 5_000 } = JSON.parse(process.argv[2])
const meter = server
  ? createMeter({ store: httpStore({ url: server, apiKey }) })
  : createMeter({ store: postgresStore({ connectionString: url, schema }), tenant })
const now = () => performance.timeOrigin + performance.now()
const answer = (value) => process.stdout.write(`${JSON.stringify(value)}\n`)
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function refused(account) {
  try {
    const hold = await meter.reserve(account, 1)
    await hold.release()
    return false
  } catch (err) {
    if (err?.code === 'insufficient_credits') return true
    throw err
  }
}

const commands = {
  async refuse({ account }) {
    return { refused: (await refused(account)) && (await refused(account)) }
  },
  async wait({ account }) {
    const deadline = now() + waitMs
    while (now() < deadline) {
      if (!(await refused(account))) return { servedAt: now() }
      await pause(1)
    }
    return { servedAt: null }
  },
  async grant({ account }) {
    await meter.grant(account, 10)
    return { grantedAt: now() }
  },
}

// Warm up: the first operation runs migrations and opens the store's connections.
await meter.balance('warm-up', { fresh: true })
await pause(200)
answer({ ready: true })
for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line)
  try {
    answer(await commands[command.op](command))
  } catch (err) {
    answer({ error: `${err?.code ?? 'unknown'}: ${err?.message}` })
  }
}
await meter.close()
