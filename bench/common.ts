/**
 * What the benchmarks share: the machine description, medians, the `--only` filter, the
 * PostgreSQL probe, and the JSON result files (`bench/results/<bench>.json`) that `report.ts`
 * combines into `bench/RESULTS.md`.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'

export const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url))
export const RESULTS_DIR = path.join(BENCH_DIR, 'results')

/** The PostgreSQL the benchmarks use (`TOLLGATE_BENCH_DATABASE_URL`). */
export const DATABASE_URL =
  process.env.TOLLGATE_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

export interface Machine {
  cpu: string
  cores: number
  ramGb: number
  node: string
  os: string
  /** 1, 5 and 15 minute load averages when the description was taken. */
  loadavg: [number, number, number]
}

function osName(): string {
  try {
    const release = readFileSync('/etc/os-release', 'utf8')
    const pretty = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(release)?.[1]
    if (pretty) return `${pretty} (${os.type()} ${os.release()})`
  } catch {
    // not Linux, or no os-release: the kernel name will do
  }
  return `${os.type()} ${os.release()}`
}

export function machine(): Machine {
  const [l1 = 0, l5 = 0, l15 = 0] = os.loadavg()
  return {
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown CPU',
    cores: os.cpus().length,
    ramGb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: osName(),
    loadavg: [l1, l5, l15],
  }
}

export const loadavgText = (l: readonly number[]) => l.map((x) => x.toFixed(2)).join(' / ')

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** (max − min) / min, in %: how far apart the rounds were. */
export function spreadPct(xs: readonly number[]): number {
  if (xs.length < 2) return 0
  return (Math.max(...xs) / Math.min(...xs) - 1) * 100
}

/**
 * `--only`: comma-separated terms; a name is kept when it contains a term or matches it as a
 * regular expression (case-insensitive). No terms keep everything.
 */
export function matchesOnly(name: string, only: string | undefined): boolean {
  if (only === undefined || only.trim() === '') return true
  return only
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '')
    .some((term) => {
      if (name.toLowerCase().includes(term.toLowerCase())) return true
      try {
        return new RegExp(term, 'i').test(name)
      } catch {
        return false
      }
    })
}

/** Null when PostgreSQL answers at `url`, else why not. */
export async function postgresUnreachable(url = DATABASE_URL): Promise<string | null> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 })
  client.on('error', () => {})
  try {
    await client.connect()
    await client.query('SELECT 1')
    return null
  } catch (error) {
    return error instanceof Error ? error.message || error.name : String(error)
  } finally {
    await client.end().catch(() => {})
  }
}

/** The server's version, e.g. `15.20`; null when unreachable. */
export async function postgresVersion(url = DATABASE_URL): Promise<string | null> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 })
  client.on('error', () => {})
  try {
    await client.connect()
    const r = await client.query<{ server_version: string }>('SHOW server_version')
    return r.rows[0]?.server_version.split(' ')[0] ?? null
  } catch {
    return null
  } finally {
    await client.end().catch(() => {})
  }
}

/** One statement on a connection of its own. */
export async function sql(text: string, url = DATABASE_URL): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 })
  client.on('error', () => {})
  await client.connect()
  try {
    await client.query(text)
  } finally {
    await client.end().catch(() => {})
  }
}

/** A table ready for Markdown: cells are already formatted. */
export interface Table {
  title?: string
  columns: string[]
  /** Per column; default left for the first, right for the others. */
  align?: ('l' | 'r')[]
  rows: string[][]
}

/** What one benchmark writes to `bench/results/<bench>.json`. */
export interface BenchResult<D = unknown> {
  bench: string
  title: string
  /** How to run it alone. */
  command: string
  startedAt: string
  finishedAt: string
  machine: Machine
  /** Load averages when it finished. */
  loadavgEnd: [number, number, number]
  settings: Record<string, string | number | boolean>
  tables: Table[]
  notes: string[]
  /** Bench-specific raw figures (the HTTP bench's feed the targets and the chart). */
  data: D
}

export function writeResult(result: BenchResult): string {
  mkdirSync(RESULTS_DIR, { recursive: true })
  const file = path.join(RESULTS_DIR, `${result.bench}.json`)
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`)
  return file
}

export function readResults(): BenchResult[] {
  let files: string[]
  try {
    files = readdirSync(RESULTS_DIR).filter((f) => f.endsWith('.json') && f !== 'suite.json')
  } catch {
    return []
  }
  return files.map(
    (f) => JSON.parse(readFileSync(path.join(RESULTS_DIR, f), 'utf8')) as BenchResult,
  )
}

export function markdownTable(t: Table): string {
  const align = t.columns.map((_, i) => t.align?.[i] ?? (i === 0 ? 'l' : 'r'))
  const esc = (s: string) => s.replace(/\|/g, '\\|')
  return [
    `| ${t.columns.map(esc).join(' | ')} |`,
    `| ${align.map((a) => (a === 'r' ? '---:' : '---')).join(' | ')} |`,
    ...t.rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n')
}

export const int = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–')
export const fixed = (x: number, digits = 1) =>
  Number.isFinite(x)
    ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : '–'
export const ratio = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '–')
