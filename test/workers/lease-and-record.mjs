// A leasing process that records every request it serves and runs until it is killed (SIGKILL).
// `loops` concurrent loops reserve 1 credit of `account`, record it, then commit it; between
// requests each loop waits `pauseMs` (0: it only yields to the event loop, as requests arriving
// over the network do), which sets how fast the leases are used up. The
// record is one byte appended to the file `out` per hold, written before the hold is committed
// (the request counts as served once its handler may run): 'L' for a hold served from a lease,
// 'S' for one the store served. write(2) has handed the byte to the kernel when it returns, so a
// SIGKILL cannot lose it, and the parent knows exactly what was served. With `apiKey` it meters
// through a Tollgate server (httpStore), else on PostgreSQL at `url` in `tenant`. Prints
// "serving" once the first request was served.
import { openSync, writeSync } from 'node:fs'
import { createMeter, httpStore } from '@tollgate/core'
import { postgresStore } from '@tollgate/postgres'

const { url, tenant, apiKey, account, lease, loops, pauseMs, out } = JSON.parse(process.argv[2])
const meter = apiKey
  ? createMeter({ store: httpStore({ url, apiKey }), cache: false, lease })
  : createMeter({ store: postgresStore({ connectionString: url }), tenant, cache: false, lease })
const fd = openSync(out, 'a')
let serving = false
async function loop() {
  for (;;) {
    const hold = await meter.reserve(account, 1, { ttlMs: 60_000 })
    writeSync(fd, hold.id.startsWith('lh_') ? 'L' : 'S')
    if (!serving) {
      serving = true
      process.stdout.write('serving\n')
    }
    await hold.commit()
    await new Promise((resolve) =>
      pauseMs > 0 ? setTimeout(resolve, pauseMs) : setImmediate(resolve),
    )
  }
}
await Promise.all(Array.from({ length: loops }, loop))
