/**
 * Combines the benches' `results/*.json` into `bench/RESULTS.md` (machine, settings, one table
 * per benchmark, the acceptance targets with their measured ratios) and `bench/results.svg`
 * (HTTP throughput by scenario). `pnpm bench` runs it last; alone:
 *
 *   pnpm --filter @tollgate/bench bench:report
 */
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { throughputChart } from './chart.js'
import {
  BENCH_DIR,
  type BenchResult,
  fixed,
  int,
  loadavgText,
  markdownTable,
  RESULTS_DIR,
  ratio,
  readResults,
} from './common.js'
import type { Framework, HttpData, HttpScenarioResult } from './http-scenarios.js'
import { publishedTable } from './published.js'
import type { SuiteRun } from './run.js'

const ORDER = ['http', 'postgres', 'server', 'engine']
const results = readResults().sort((a, b) => ORDER.indexOf(a.bench) - ORDER.indexOf(b.bench))
let suite: SuiteRun | null = null
try {
  suite = JSON.parse(readFileSync(path.join(RESULTS_DIR, 'suite.json'), 'utf8')) as SuiteRun
} catch {
  // benches run one by one: no suite record
}
const http = results.find((r) => r.bench === 'http') as BenchResult<HttpData> | undefined

// ---- acceptance targets ----------------------------------------------------------------------

/** A scenario's medians, as the targets compare them. */
type Measured = NonNullable<HttpScenarioResult['median']>

interface Target {
  text: string
  scenario: string
  bare: string
  min: number
}

/** The throughput targets of the performance issue, each against its framework's bare run. */
const TARGETS: Target[] = [
  {
    text: 'Express + Tollgate on PostgreSQL with leases, 1 hot account ≥ 0.8× bare Express',
    scenario: 'express-tollgate-postgres-lease-hot',
    bare: 'express-bare',
    min: 0.8,
  },
  {
    text: 'Express + Tollgate on memory ≥ 0.95× bare Express',
    scenario: 'express-tollgate-memory-hot',
    bare: 'express-bare',
    min: 0.95,
  },
  {
    text: 'Koa + Tollgate on memory ≥ 0.9× bare Koa',
    scenario: 'koa-tollgate-memory-hot',
    bare: 'koa-bare',
    min: 0.9,
  },
  {
    text: 'Express + Tollgate via the server (httpStore) with leases ≥ 0.8× bare Express',
    scenario: 'express-tollgate-server-lease-hot',
    bare: 'express-bare',
    min: 0.8,
  },
  {
    text: 'Koa + Tollgate on PostgreSQL with leases ≥ 0.5× bare Koa',
    scenario: 'koa-tollgate-postgres-lease-hot',
    bare: 'koa-bare',
    min: 0.5,
  },
]
/**
 * The middleware-cost targets (issue 17): server CPU per request of bare over the metered
 * scenario's, so 0.85× means metering adds under 18% to what the framework itself spends.
 * CPU per request is steadier than req/s on a shared machine; both come from the same run.
 */
const CPU_TARGETS: Target[] = [
  {
    text: 'Koa + Tollgate on memory, 1,000 accounts: server CPU per request ≥ 0.85× bare Koa',
    scenario: 'koa-tollgate-memory-many',
    bare: 'koa-bare',
    min: 0.85,
  },
  {
    text: 'Express + Tollgate on memory, 1,000 accounts: server CPU per request ≥ 0.9× bare Express',
    scenario: 'express-tollgate-memory-many',
    bare: 'express-bare',
    min: 0.9,
  },
  {
    text: 'Express + Tollgate on PostgreSQL with leases, 1 hot account: server CPU per request ≥ 0.8× bare Express',
    scenario: 'express-tollgate-postgres-lease-hot',
    bare: 'express-bare',
    min: 0.8,
  },
]

/** p99 of the metered route at the same load as bare, at most this many times bare's. */
const P99_MAX = 1.2

function check(ok: boolean | null, line: string): string {
  const box = ok === true ? '[x]' : '[ ]'
  const verdict = ok === true ? '**met**' : ok === false ? '**missed**' : '*not measured*'
  return `- ${box} ${line} — ${verdict}`
}

function targetLines(d: HttpData): string[] {
  const byId = new Map(d.scenarios.map((s) => [s.id, s]))
  const lines: string[] = ['Throughput (closed loop, medians):', '']
  const judge = (
    t: { scenario: string; bare: string; text: string; min: number },
    figure: (s: Measured, b: Measured) => [number, string],
  ): void => {
    const s = byId.get(t.scenario)?.median
    const b = byId.get(t.bare)?.median
    if (!s || !b) {
      const why = byId.get(t.scenario)?.reason ?? 'not in this run'
      lines.push(check(null, `${t.text} (\`${t.scenario}\`): ${why}`))
      return
    }
    const [r, detail] = figure(s, b)
    lines.push(check(r >= t.min, `${t.text}: **${ratio(r)}** (${detail}, \`${t.scenario}\`)`))
  }
  for (const t of TARGETS) {
    judge(t, (s, b) => [s.rps / b.rps, `${int(s.rps)} vs ${int(b.rps)} req/s`])
  }
  lines.push('', 'Server CPU per request, bare ÷ metered (medians):', '')
  for (const t of CPU_TARGETS) {
    judge(t, (s, b) => [b.cpuUs / s.cpuUs, `${fixed(s.cpuUs)} vs ${fixed(b.cpuUs)} µs/request`])
  }
  lines.push(
    '',
    `p99 latency of the metered route within ${P99_MAX}× of bare at the same load (open loop, medians):`,
    '',
  )
  for (const t of TARGETS) {
    const s = byId.get(t.scenario)
    const b = byId.get(t.bare)?.fixed
    const name = `\`${t.scenario}\``
    const rate = d.fixedRates[byId.get(t.bare)?.framework as Framework]
    if (!s?.fixed || !b || !Number.isFinite(b.p99)) {
      lines.push(check(null, `${name}: no fixed-rate run`))
      continue
    }
    if (!Number.isFinite(s.fixed.p99)) {
      lines.push(
        check(
          false,
          `${name}: could not take ${int(rate ?? Number.NaN)} req/s (its throughput was lower)`,
        ),
      )
      continue
    }
    const r = s.fixed.p99 / b.p99
    lines.push(
      check(
        r <= P99_MAX && s.fixed.overloadedRounds === 0,
        `${name} at ${int(rate ?? Number.NaN)} req/s: p99 ${fixed(s.fixed.p99, 2)} ms vs bare ` +
          `${fixed(b.p99, 2)} ms = **${ratio(r)}**`,
      ),
    )
  }
  return lines
}

// ---- the document ----------------------------------------------------------------------------

const out: string[] = []
const md = (...lines: string[]) => out.push(...lines)
const minutes = (s: number) => `${(s / 60).toFixed(1)} min`
const dateOf = (iso: string) => `${iso.slice(0, 16).replace('T', ' ')} UTC`

md(
  '# Tollgate benchmark results',
  '',
  '<!-- Generated by `pnpm bench` (bench/run.ts, then bench/report.ts). Rerun it rather than editing. -->',
  '',
)
if (suite?.quick || results.some((r) => r.settings.quick === true)) {
  md(
    '> **Quick run** (`--quick`: one round, short durations). A smoke test that everything runs;',
    '> do not read the figures. Run `pnpm bench` for numbers.',
    '',
  )
}
if (suite) {
  const parts = suite.benches.map(
    (b) => `${b.bench} ${minutes(b.seconds)}${b.exitCode === 0 ? '' : ' (failed)'}`,
  )
  md(
    `Run of ${dateOf(suite.startedAt)}: \`pnpm bench${suite.args.length ? ` ${suite.args.join(' ')}` : ''}\`, ` +
      `${minutes(suite.seconds)} in all (${parts.join(' · ')}).`,
    '',
  )
}

const m = (http ?? results[0])?.machine
if (m) {
  md(
    '## Machine',
    '',
    markdownTable({
      columns: ['', ''],
      align: ['l', 'l'],
      rows: [
        ['CPU', `${m.cpu}, ${m.cores} cores`],
        ['RAM', `${m.ramGb} GiB`],
        ['OS', m.os],
        ['Node', m.node],
        ['PostgreSQL', http?.data.postgres ?? 'not used or unreachable'],
        ...results.map((r) => [
          `load average, ${r.bench} bench (1/5/15 min)`,
          `${loadavgText(r.machine.loadavg)} at start → ${loadavgText(r.loadavgEnd)} at end`,
        ]),
      ],
    }),
    '',
    `The load generators run in the bench process on the same ${m.cores} cores as the servers`,
    'they measure (and PostgreSQL): figures are for comparing scenarios within one run, not',
    'absolute capacity. Every measured server is a fresh process; rounds interleave the',
    'scenarios, so slow drift of a shared machine hits them all alike; tables show medians.',
    '',
  )
}

if (http) {
  md(`## Acceptance targets`, '', `From the HTTP bench of ${dateOf(http.startedAt)} (one run).`, '')
  md(...targetLines(http.data), '')
}

const earlier = (r: BenchResult) =>
  suite !== null && Date.parse(r.startedAt) < Date.parse(suite.startedAt)
for (const r of results) {
  md(`## ${r.title}`, '')
  md(
    (earlier(r) ? '**From an earlier run than the one above.** ' : '') +
      `${dateOf(r.startedAt)}, ${minutes((Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1_000)}; ` +
      `alone: \`${r.command}\`. Settings: ` +
      Object.entries(r.settings)
        .filter(([, v]) => v !== '' && v !== false)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') +
      '.',
    '',
  )
  if (r.bench === 'http') {
    const svg = throughputChart(
      r.data as HttpData,
      `${m?.cores ?? '?'} × ${m?.cpu ?? '?'}, Node ${m?.node ?? '?'}, ${dateOf(r.startedAt)}; ` +
        `${r.settings.rounds} rounds × ${r.settings['duration s']} s, ${r.settings.connections} connections`,
    )
    writeFileSync(path.join(BENCH_DIR, 'results.svg'), svg)
    md('![HTTP throughput by scenario](results.svg)', '')
  }
  for (const t of r.tables) {
    if (t.title) md(`**${t.title}**`, '')
    md(markdownTable(t), '')
  }
  if (r.notes.length > 0) md(...r.notes.map((n) => `- ${n}`), '')
}

const published = publishedTable()
md(
  `## ${published.title}`,
  '',
  'What comparable projects report of themselves, quoted as published: other machines, other',
  'loads and other definitions of an operation, so none of it is comparable figure for figure',
  "with this run's. Tollgate's own reserve+commit rate is in the durable-stores table above.",
  '',
  markdownTable(published),
  '',
)

if (http) {
  const failing = http.data.scenarios.filter(
    (s: HttpScenarioResult) => s.status !== 'ok' && s.status !== 'skipped',
  )
  if (failing.length > 0) {
    md(
      '## Failures',
      '',
      ...failing.map((s) => `- \`${s.id}\`: ${s.reason ?? s.errors.join('; ')}`),
      '',
    )
  }
}

if (results.length === 0) md('No results yet: run `pnpm bench`.', '')

const file = path.join(BENCH_DIR, 'RESULTS.md')
writeFileSync(file, `${out.join('\n').trimEnd()}\n`)
// The repository's formatter also formats Markdown (aligned tables): the committed file
// passes `pnpm lint` as written.
const biome = path.join(BENCH_DIR, '..', 'node_modules', '.bin', 'biome')
const formatted = spawnSync(
  biome,
  ['format', '--write', file, path.join(BENCH_DIR, 'results.svg')],
  {
    cwd: path.join(BENCH_DIR, '..'),
    encoding: 'utf8',
  },
)
if (formatted.status !== 0) {
  console.warn(
    `could not format RESULTS.md with biome: ${formatted.error?.message ?? formatted.stderr}`,
  )
}
console.log(`wrote ${path.relative(process.cwd(), file)}${http ? ' and results.svg' : ''}`)
