/**
 * Engine and memory-store throughput: reserve+commit pairs and debits per second on one core.
 *
 * Each scenario runs in a process of its own: run together, the scenarios that feed the engine
 * different call shapes would leave its functions polymorphic for the ones after them. Each
 * tinybench iteration runs a batch, so the timer's own cost is spread over the batch;
 * ops/s = batches/s × batch size.
 *
 *   pnpm --filter @tollgate/bench bench:engine [--time 2000] [--warmup-time 500] [--only hot]
 *                                              [--quick]
 */
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { createMeter, memoryStore } from '@tollgate/core'
import {
  type AccountState,
  applyOperation,
  type EngineConfig,
  NO_METADATA,
  newAccountState,
} from '@tollgate/core/engine'
import { newId } from '@tollgate/core/store'
import { Bench } from 'tinybench'
import {
  fixed,
  int,
  machine,
  markdownTable,
  matchesOnly,
  type Table,
  writeResult,
} from './common.js'

const { values } = parseArgs({
  options: {
    time: { type: 'string' },
    'warmup-time': { type: 'string' },
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    /** Internal: run one scenario and print its result as JSON. */
    scenario: { type: 'string' },
  },
})
const TIME = Number(values.time ?? (values.quick ? 500 : 2_000))
const WARMUP_TIME = Number(values['warmup-time'] ?? (values.quick ? 200 : 500))

const BATCH = 1_000
const CREDITS = 2 ** 50
const config: EngineConfig = {
  lowBalanceThreshold: null,
  overdraftLimit: null,
  overage: 'clamp',
  redeemMaxFailures: 10,
  redeemWindowMs: 3_600_000,
}

async function meterWith(accounts: number) {
  const meter = createMeter({ store: memoryStore() })
  const names = Array.from({ length: accounts }, (_, i) => `acct_${i}`)
  for (const a of names) await meter.grant(a, CREDITS)
  return { meter, names }
}

/** Each scenario sets up and returns one batch of work. */
const scenarios: Record<string, () => Promise<() => unknown>> = {
  // The engine alone: one account's state, no store, no meter, no promises. Each operation
  // reads the clock once, as the meter does.
  'engine only: reserve+commit (no store)': async () => {
    const state: AccountState = newAccountState('a', Date.now())
    const ctx = () => ({ now: Date.now(), config, idempotency: null, newId })
    applyOperation(
      state,
      {
        type: 'grant',
        amount: CREDITS,
        expiresAt: null,
        validityDays: null,
        priority: 50,
        category: 'paid',
        metadata: NO_METADATA,
      },
      ctx(),
    )
    return () => {
      for (let i = 0; i < BATCH; i++) {
        const fx = applyOperation(
          state,
          { type: 'reserve', amount: 1, ttlMs: 60_000, metadata: NO_METADATA },
          ctx(),
        )
        state.holds = [state.holds[state.holds.length - 1]!]
        const holdId = (fx.result as { id: string }).id
        applyOperation(
          state,
          { type: 'commit', holdId, actual: undefined, overage: undefined, metadata: NO_METADATA },
          ctx(),
        )
        state.holds = []
      }
    }
  },
  'meter: reserve+commit, one hot account, sequential': async () => {
    const { meter } = await meterWith(1)
    return async () => {
      for (let i = 0; i < BATCH; i++) {
        const hold = await meter.reserve('acct_0', 1)
        await hold.commit()
      }
    }
  },
  'meter: reserve+commit, one hot account, 100 in flight': async () => {
    const { meter } = await meterWith(1)
    const one = async () => {
      const hold = await meter.reserve('acct_0', 1)
      await hold.commit()
    }
    return async () => {
      for (let i = 0; i < BATCH; i += 100) {
        const batch: Promise<void>[] = []
        for (let j = 0; j < 100; j++) batch.push(one())
        await Promise.all(batch)
      }
    }
  },
  'meter: reserve+commit, 10,000 accounts, sequential': async () => {
    const { meter, names } = await meterWith(10_000)
    let n = 0
    return async () => {
      for (let i = 0; i < BATCH; i++) {
        const hold = await meter.reserve(names[n++ % names.length]!, 1)
        await hold.commit()
      }
    }
  },
  'meter: debit, one hot account, sequential': async () => {
    const { meter } = await meterWith(1)
    return async () => {
      for (let i = 0; i < BATCH; i++) await meter.debit('acct_0', 1)
    }
  },
}

interface Row {
  scenario: string
  opsPerSec: number
  rme: number
  state: string
}

async function runOne(name: string): Promise<Row> {
  const bench = new Bench({ time: TIME, warmupTime: WARMUP_TIME })
  const batch = await scenarios[name]!()
  bench.add(name, batch)
  await bench.run()
  const r = bench.tasks[0]!.result
  if (r.state !== 'completed') {
    return { scenario: name, opsPerSec: Number.NaN, rme: Number.NaN, state: r.state }
  }
  return {
    scenario: name,
    opsPerSec: r.throughput.mean * BATCH,
    rme: r.throughput.rme,
    state: r.state,
  }
}

if (values.scenario !== undefined) {
  console.log(JSON.stringify(await runOne(values.scenario)))
} else {
  const startedAt = new Date().toISOString()
  const machineAtStart = machine()
  const self = fileURLToPath(import.meta.url)
  const names = Object.keys(scenarios).filter((n) => matchesOnly(n, values.only))
  const rows = names.map((name) => {
    const out = execFileSync(
      process.execPath,
      [
        ...process.execArgv,
        self,
        '--scenario',
        name,
        '--time',
        String(TIME),
        '--warmup-time',
        String(WARMUP_TIME),
      ],
      { encoding: 'utf8' },
    )
    const row = JSON.parse(out.trim().split('\n').at(-1)!) as Row
    console.error(`  ${name}: ${int(row.opsPerSec)} ops/s ±${fixed(row.rme)}%`)
    return row
  })
  const table: Table = {
    columns: ['scenario', 'ops/s', '±%'],
    rows: rows.map((r) => [
      r.scenario,
      r.state === 'completed' ? int(r.opsPerSec) : `(${r.state})`,
      fixed(r.rme),
    ]),
  }
  const m = machine()
  console.log(
    `Tollgate engine bench: node ${process.version}, ${m.cpu} ×${m.cores}, ${new Date().toISOString()}`,
  )
  console.log('ops = reserve+commit pairs (or debits); each scenario in its own process\n')
  console.log(markdownTable(table))
  if (rows.length > 0) {
    writeResult({
      bench: 'engine',
      title: 'Engine and memory store',
      command: 'pnpm --filter @tollgate/bench bench:engine',
      startedAt,
      finishedAt: new Date().toISOString(),
      machine: machineAtStart,
      loadavgEnd: m.loadavg,
      settings: {
        'time ms': TIME,
        'warm-up ms': WARMUP_TIME,
        batch: BATCH,
        only: values.only ?? '',
      },
      tables: [table],
      notes: [
        'ops = reserve+commit pairs (or debits) per second on one core; tinybench, batches of 1,000, each scenario in a process of its own; ±% is tinybench’s relative margin of error.',
      ],
      data: { rows },
    })
  }
}
