// Writes to a file-backed PGlite store as fast as it can and prints "ack <n>" after each
// operation the store acknowledged; the parent kills it with SIGKILL mid-load. Operation n is
// a debit of 1 (n odd) or a grant of 2 (n even) carrying idempotency key `op-<n>`.
import { createMeter } from '@tollgate/core'
import { pgliteStore } from '@tollgate/postgres'

const { dataDir, account, concurrency } = JSON.parse(process.argv[2])
const meter = createMeter({ store: pgliteStore({ dataDir }), cache: false })
await meter.grant(account, 1_000_000, { idempotencyKey: 'seed' })
process.stdout.write('ready\n')
let n = 0
async function loop() {
  for (;;) {
    const i = ++n
    const key = `op-${i}`
    if (i % 2 === 1) await meter.debit(account, 1, { idempotencyKey: key })
    else await meter.grant(account, 2, { idempotencyKey: key })
    process.stdout.write(`ack ${i}\n`)
  }
}
await Promise.all(Array.from({ length: concurrency }, loop))
