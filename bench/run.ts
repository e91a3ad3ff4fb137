/**
 * `pnpm bench`: every benchmark in sequence, each in a process of its own (engine, durable
 * stores, server, HTTP), then `report.ts`, which combines their `results/*.json` into
 * `bench/RESULTS.md` and `bench/results.svg`.
 *
 *   pnpm bench [--quick] [--rounds N] [--duration S] [--only FILTER]
 *              [--benches engine,postgres,server,http] [--no-report]
 *
 * --quick     a smoke run of every scenario: one round, short durations; its figures are not
 *             for reading
 * --rounds    rounds of the postgres, server and HTTP benches (default here 2, and 1 for HTTP;
 *             each bench alone defaults to 3)
 * --duration  measured seconds per scenario and round of those benches (default here 2, after
 *             1 s of HTTP warm-up, and 2 s fixed-rate runs; each bench alone defaults to 5
 *             after 2). The whole suite takes about 12 minutes on 2 cores.
 * --only      scenario filter handed to every bench: comma-separated substrings or regular
 *             expressions (e.g. `--only lease-hot`, `--only 'koa-.*-(hot|many)$'`)
 * --benches   which benches to run; the others' last results stay in the report (so do those of
 *             a bench that failed or that --only left with nothing to run), marked as earlier
 *
 * Each bench also runs alone: `pnpm --filter @tollgate/bench bench:http` (and `bench:engine`,
 * `bench:postgres`, `bench:server`, `bench:report`).
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { BENCH_DIR, RESULTS_DIR } from './common.js'

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    only: { type: 'string' },
    benches: { type: 'string', default: 'engine,postgres,server,http' },
    'no-report': { type: 'boolean', default: false },
  },
})

const BENCHES = {
  engine: 'engine.bench.ts',
  postgres: 'postgres.bench.ts',
  server: 'server.bench.ts',
  http: 'http.bench.ts',
} as const
type BenchName = keyof typeof BENCHES

const selected = values.benches
  .split(',')
  .map((b) => b.trim())
  .filter((b): b is BenchName => b in BENCHES)

function argsFor(bench: BenchName): string[] {
  const args: string[] = []
  if (values.quick) args.push('--quick')
  if (values.only) args.push('--only', values.only)
  if (bench === 'engine') return args
  if (values.rounds) args.push('--rounds', values.rounds)
  else if (!values.quick) {
    // The suite's budget is 12 minutes. The HTTP bench's 103 scenarios get one round (each
    // setup's process serves its hot and many scenarios, see http.bench.ts); the postgres and
    // server benches two, since their rounds are short.
    args.push('--rounds', bench === 'http' ? '1' : '2')
  }
  if (values.duration) args.push('--duration', values.duration)
  else if (!values.quick) {
    // Shorter than each bench's own default (5 s): the spread of their rounds allows it.
    args.push('--duration', '2')
    if (bench === 'http') args.push('--warmup', '1', '--fixed-duration', '2')
  }
  return args
}

async function run(file: string, args: string[]): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, file, ...args], {
    cwd: BENCH_DIR,
    stdio: 'inherit',
  })
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null]
  return code ?? (signal ? 1 : 0)
}

export interface SuiteRun {
  startedAt: string
  finishedAt: string
  seconds: number
  args: string[]
  quick: boolean
  benches: { bench: string; seconds: number; exitCode: number; args: string[] }[]
}

const started = performance.now()
const suite: SuiteRun = {
  startedAt: new Date().toISOString(),
  finishedAt: '',
  seconds: 0,
  args: process.argv.slice(2),
  quick: values.quick,
  benches: [],
}
mkdirSync(RESULTS_DIR, { recursive: true })
for (const bench of selected) {
  const args = argsFor(bench)
  console.log(`\n=== ${bench}: ${BENCHES[bench]} ${args.join(' ')}\n`)
  const t0 = performance.now()
  const exitCode = await run(BENCHES[bench], args)
  const seconds = (performance.now() - t0) / 1_000
  suite.benches.push({ bench, seconds, exitCode, args })
  console.log(
    `\n=== ${bench}: ${exitCode === 0 ? 'done' : `FAILED (exit ${exitCode})`} in ${seconds.toFixed(0)} s`,
  )
}
suite.finishedAt = new Date().toISOString()
suite.seconds = (performance.now() - started) / 1_000
writeFileSync(path.join(RESULTS_DIR, 'suite.json'), `${JSON.stringify(suite, null, 2)}\n`)

let failed = suite.benches.some((b) => b.exitCode !== 0)
if (!values['no-report']) {
  console.log('\n=== report: report.ts\n')
  if ((await run('report.ts', [])) !== 0) failed = true
}
console.log(
  `\nbench suite: ${(suite.seconds / 60).toFixed(1)} min${failed ? ', with failures' : ''}`,
)
process.exit(failed ? 1 : 0)
