// A metering process: `loops` concurrent reserve→commit loops over a shared list of attempts.
// Attempt i charges 1 credit to accounts[i % accounts.length]. With `apiKey` it meters through a
// Tollgate server (httpStore, `transport` being extra httpStore options such as retries), else
// on PostgreSQL at `url` in `tenant`; `lease` is the meter's lease option, if any. Prints one
// JSON line at the end: { ok, insufficient, errors }.
import { createMeter, httpStore } from '@tollgate/core'
import { postgresStore } from '@tollgate/postgres'

const { url, tenant, apiKey, transport, lease, accounts, attempts, loops, offset, stride } =
  JSON.parse(process.argv[2])
const meter = apiKey
  ? createMeter({ store: httpStore({ url, apiKey, ...transport }), cache: false, lease })
  : createMeter({ store: postgresStore({ connectionString: url }), tenant, cache: false, lease })
const counts = { ok: 0, insufficient: 0, errors: [] }
let next = offset
async function loop() {
  for (;;) {
    const i = next
    next += stride
    if (i >= attempts) return
    const account = accounts[i % accounts.length]
    try {
      const hold = await meter.reserve(account, 1, { ttlMs: 60_000 })
      await hold.commit()
      counts.ok++
    } catch (err) {
      if (err?.code === 'insufficient_credits') counts.insufficient++
      else counts.errors.push(`${err?.code ?? 'unknown'}: ${err?.cause?.message ?? err?.message}`)
    }
  }
}
await Promise.all(Array.from({ length: loops }, loop))
await meter.close()
process.stdout.write(`${JSON.stringify(counts)}\n`)
