/**
 * Engine and memory-store throughput: reserve+commit and debit per second on one core.
 * Each tinybench iteration runs a batch of operations, so the timer's own cost is spread
 * over the batch; ops/s = batches/s × batch size.
 *
 *   pnpm bench            (from the repo root: builds, then runs this)
 */
import os from 'node:os'
import {
  type AccountState,
  applyOperation,
  createMeter,
  type EngineConfig,
  memoryStore,
  NO_METADATA,
  newAccountState,
  newId,
} from '@tollgate/core'
import { Bench } from 'tinybench'

const BATCH = 1_000
const CREDITS = 2 ** 50
const config: EngineConfig = {
  lowBalanceThreshold: null,
  overdraftLimit: null,
  overage: 'clamp',
  redeemMaxFailures: 10,
  redeemWindowMs: 3_600_000,
}

function freshMeter() {
  return createMeter({ store: memoryStore() })
}

async function setup(accounts: number) {
  const meter = freshMeter()
  const names = Array.from({ length: accounts }, (_, i) => `acct_${i}`)
  for (const a of names) await meter.grant(a, CREDITS)
  return { meter, names }
}

const bench = new Bench({ time: 2_000, warmupTime: 300 })

// The engine alone: one account's state, no store, no meter, no promises. Each operation
// reads the clock once, as the meter does (real timestamps are not small integers, and a
// clock read is not free on every machine).
{
  const state: AccountState = newAccountState('a', Date.now())
  applyOperation(
    state,
    {
      type: 'grant',
      amount: CREDITS,
      expiresAt: null,
      validityDays: null,
      priority: 50,
      category: 'paid',
      metadata: {},
    },
    { now: Date.now(), config, idempotency: null, newId },
  )
  bench.add('engine only: reserve+commit (no store)', () => {
    for (let i = 0; i < BATCH; i++) {
      const fx = applyOperation(
        state,
        { type: 'reserve', amount: 1, ttlMs: 60_000, metadata: NO_METADATA },
        { now: Date.now(), config, idempotency: null, newId },
      )
      const hold = state.holds[state.holds.length - 1]!
      state.holds = [hold]
      applyOperation(
        state,
        {
          type: 'commit',
          holdId: (fx.result as { id: string }).id,
          actual: undefined,
          overage: undefined,
          metadata: NO_METADATA,
        },
        { now: Date.now(), config, idempotency: null, newId },
      )
      state.holds = []
    }
  })
}

{
  const ctx = await setup(1)
  bench.add('meter: reserve+commit, one hot account, sequential', async () => {
    const { meter } = ctx
    for (let i = 0; i < BATCH; i++) {
      const hold = await meter.reserve('acct_0', 1)
      await hold.commit()
    }
  })
}

{
  const ctx = await setup(1)
  bench.add('meter: reserve+commit, one hot account, 100 in flight', async () => {
    const { meter } = ctx
    const one = async () => {
      const hold = await meter.reserve('acct_0', 1)
      await hold.commit()
    }
    for (let i = 0; i < BATCH; i += 100) {
      const batch: Promise<void>[] = []
      for (let j = 0; j < 100; j++) batch.push(one())
      await Promise.all(batch)
    }
  })
}

{
  const ctx = await setup(10_000)
  let n = 0
  bench.add('meter: reserve+commit, 10,000 accounts, sequential', async () => {
    const { meter, names } = ctx
    for (let i = 0; i < BATCH; i++) {
      const hold = await meter.reserve(names[n++ % names.length]!, 1)
      await hold.commit()
    }
  })
}

{
  const ctx = await setup(1)
  bench.add('meter: debit, one hot account, sequential', async () => {
    const { meter } = ctx
    for (let i = 0; i < BATCH; i++) await meter.debit('acct_0', 1)
  })
}

await bench.run()

const rows = bench.tasks.map((task) => {
  const r = task.result
  if (r.state !== 'completed')
    return { scenario: task.name, 'ops/s': `(${r.state})`, '±%': '', samples: 0 }
  return {
    scenario: task.name,
    'ops/s': Math.round(r.throughput.mean * BATCH).toLocaleString('en-US'),
    '±%': r.throughput.rme.toFixed(1),
    samples: r.latency.samples?.length ?? 0,
  }
})
console.log(
  `Tollgate engine bench — node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} ×${os.cpus().length}, ${new Date().toISOString()}`,
)
console.log(`one operation = one reserve+commit pair (or one debit); batches of ${BATCH}`)
console.table(rows)
