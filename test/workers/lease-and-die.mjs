// Takes a lease on one account and serves `spend` reserve→commit pairs of 1 credit from it, says
// so, then waits to be killed (SIGKILL): its usage is never settled.
import { createMeter } from '@tollgate/core'
import { postgresStore } from '@tollgate/postgres'

const { url, tenant, account, spend, lease } = JSON.parse(process.argv[2])
const meter = createMeter({ store: postgresStore({ connectionString: url }), tenant, lease })
for (let i = 0; i < spend; i++) await (await meter.reserve(account, 1)).commit()
process.stdout.write(`${JSON.stringify({ spent: spend })}\n`)
setInterval(() => {}, 1_000)
