// Reserves `holds` holds on one account, says so, then waits to be killed (SIGKILL).
import { createMeter } from '@tollgate/core'
import { postgresStore } from '@tollgate/postgres'

const { url, tenant, account, holds, amount, ttlMs } = JSON.parse(process.argv[2])
const meter = createMeter({ store: postgresStore({ connectionString: url }), tenant })
const ids = []
for (let i = 0; i < holds; i++) ids.push((await meter.reserve(account, amount, { ttlMs })).id)
process.stdout.write(`${JSON.stringify({ held: ids })}\n`)
setInterval(() => {}, 1_000)
