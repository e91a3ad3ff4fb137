/**
 * Summarizes V8 CPU profiles (`bench:http --profile` writes one per server process): self time
 * by where the code lives (Tollgate's packages, the framework, Node internals, GC, idle) and the
 * top functions, each in µs per request when `--requests` says how many requests the profile
 * covers.
 *
 *   tsx profile-summary.ts <file.cpuprofile> [--requests N] [--top 15] [--skip S]
 *   tsx profile-summary.ts <metered.cpuprofile> --base <bare.cpuprofile> --cpu 61 --base-cpu 35
 *
 * With `--base`, it prints where a metered server's extra CPU per request goes: each profile's
 * busy (non-idle) self time is scaled to the CPU per request the benchmark measured for it
 * (`--cpu`, `--base-cpu`: `app CPU µs/req` of `bench:http`, taken in the same run), and the
 * table lists µs per request by area and by function, bare → metered, largest difference first.
 * Shares of one profile are exact; the scaling to µs is as good as the two CPU figures.
 *
 * --skip S leaves out the first S seconds of the profile (start-up, module loading, seeding),
 * so that what remains is the steady state a benchmark measured.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
}
interface Profile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    requests: { type: 'string' },
    top: { type: 'string', default: '15' },
    skip: { type: 'string', default: '0' },
    base: { type: 'string' },
    cpu: { type: 'string' },
    'base-cpu': { type: 'string' },
  },
})
if (positionals.length === 0) {
  console.error(
    'usage: tsx profile-summary.ts <file.cpuprofile> [--requests N] [--top 15] [--skip S]',
  )
  process.exit(2)
}

/** Where a frame's code lives, coarsely. */
function area(url: string, name: string): string {
  if (name === '(idle)') return 'idle'
  if (name === '(garbage collector)') return 'gc'
  if (name === '(program)') return 'V8 / native'
  if (url.includes('/packages/core/')) return 'tollgate: core'
  if (url.includes('/packages/postgres/')) return 'tollgate: postgres'
  if (url.includes('/packages/server/')) return 'tollgate: server'
  if (url.includes('/packages/express/')) return 'tollgate: express adapter'
  if (url.includes('/packages/koa/')) return 'tollgate: koa adapter'
  const pkg = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg) return pkg[1]!
  if (url.startsWith('node:')) return 'node internals'
  if (url === '') return 'V8 / native'
  return 'other'
}

/** Self time (µs) by area and by function of one profile, after the first `skip` seconds. */
function selfTimes(file: string) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const selfUs = new Map<number, number>()
  const skipUs = Number(values.skip) * 1e6
  let at = 0
  let total = 0
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!
    const us = p.timeDeltas[i] ?? 0
    at += us
    if (at < skipUs) continue
    total += us
    selfUs.set(id, (selfUs.get(id) ?? 0) + us)
  }
  const areas = new Map<string, number>()
  const fns = new Map<string, number>()
  let busy = 0
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame
    const a = area(url, functionName)
    areas.set(a, (areas.get(a) ?? 0) + us)
    if (a === 'idle') continue
    busy += us
    const short = url.replace(/^.*\/(node_modules|packages)\//, '')
    const key = `${functionName || '(anonymous)'} ${short}:${lineNumber + 1}`
    fns.set(key, (fns.get(key) ?? 0) + us)
  }
  areas.delete('idle')
  return { total, busy, areas, fns }
}

if (values.base !== undefined) {
  if (positionals.length !== 1 || !values.cpu || !values['base-cpu']) {
    console.error('--base needs one metered profile, --cpu and --base-cpu (µs per request)')
    process.exit(2)
  }
  const metered = selfTimes(positionals[0]!)
  const bare = selfTimes(values.base)
  // Busy self time, scaled so that it sums to the measured CPU per request.
  const perReq = (t: ReturnType<typeof selfTimes>, cpu: number, us: number | undefined) =>
    ((us ?? 0) / t.busy) * cpu
  const cpu = Number(values.cpu)
  const baseCpu = Number(values['base-cpu'])
  const diff = (pick: 'areas' | 'fns') => {
    const keys = new Set([...metered[pick].keys(), ...bare[pick].keys()])
    return [...keys]
      .map((k) => {
        const b = perReq(bare, baseCpu, bare[pick].get(k))
        const m = perReq(metered, cpu, metered[pick].get(k))
        return { k, b, m, d: m - b }
      })
      .sort((x, y) => Math.abs(y.d) - Math.abs(x.d))
  }
  const row = (r: { k: string; b: number; m: number; d: number }) =>
    `  ${r.b.toFixed(2).padStart(7)} → ${r.m.toFixed(2).padStart(7)}  ${(r.d >= 0 ? '+' : '') + r.d.toFixed(2)}`.padEnd(
      34,
    ) + r.k
  console.log(`µs of CPU per request, bare → metered (${baseCpu} → ${cpu}), by area:`)
  for (const r of diff('areas')) console.log(row(r))
  console.log(`top ${values.top} functions by difference (self time):`)
  for (const r of diff('fns').slice(0, Number(values.top))) console.log(row(r))
  process.exit(0)
}

for (const file of positionals) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const selfUs = new Map<number, number>()
  const skipUs = Number(values.skip) * 1e6
  let at = 0
  let total = 0
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!
    const us = p.timeDeltas[i] ?? 0
    at += us
    if (at < skipUs) continue
    total += us
    selfUs.set(id, (selfUs.get(id) ?? 0) + us)
  }
  const areas = new Map<string, number>()
  const fns = new Map<string, number>()
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!
    const { functionName, url, lineNumber } = n.callFrame
    const a = area(url, functionName)
    areas.set(a, (areas.get(a) ?? 0) + us)
    const short = url.replace(/^.*\/(node_modules|packages)\//, '')
    const key = `${functionName || '(anonymous)'} ${short}:${lineNumber + 1}`
    fns.set(key, (fns.get(key) ?? 0) + us)
  }
  const requests = values.requests ? Number(values.requests) : null
  const fmt = (us: number) =>
    requests
      ? `${(us / requests).toFixed(2).padStart(8)} µs/req`
      : `${((us / total) * 100).toFixed(1).padStart(6)} %`
  console.log(
    `\n${file}: ${(total / 1e6).toFixed(1)} s profiled${skipUs > 0 ? ` (after the first ${values.skip} s)` : ''}`,
  )
  console.log('by area:')
  for (const [a, us] of [...areas].sort((x, y) => y[1] - x[1])) {
    console.log(`  ${fmt(us)}  ${((us / total) * 100).toFixed(1).padStart(5)} %  ${a}`)
  }
  console.log(`top ${values.top} functions (self time, idle excluded):`)
  const top = [...fns]
    .filter(([k]) => !k.startsWith('(idle)'))
    .sort((x, y) => y[1] - x[1])
    .slice(0, Number(values.top))
  for (const [k, us] of top) console.log(`  ${fmt(us)}  ${k}`)
}
