/**
 * What the cross-process tests share: the PostgreSQL gate, running worker processes
 * (test/workers/*.mjs, plain Node scripts over the built packages), contending metering
 * processes, and the ledger replay check.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import type { LedgerEntry, Meter } from '@tollgate/core'
import pg from 'pg'
import { describe, expect, it } from 'vitest'

/**
 * The PostgreSQL server of the tests, when there is one: TOLLGATE_TEST_DATABASE_URL, which the
 * global setup (scripts/test-database.mjs) sets to the default local server when it answers.
 */
export const databaseUrl = process.env.TOLLGATE_TEST_DATABASE_URL

/**
 * Without a database, PostgreSQL suites skip (saying so) on a developer machine and fail in
 * CI, where .ci/run always provides one.
 */
export function gateOnDatabase(what: string): void {
  if (databaseUrl) return
  if (process.env.CI) {
    describe(what, () => {
      it('needs TOLLGATE_TEST_DATABASE_URL in CI', () => {
        expect.fail('TOLLGATE_TEST_DATABASE_URL is not set; .ci/run sets it to the local server')
      })
    })
  } else {
    console.warn(`SKIPPED: ${what} (${NO_DATABASE})`)
  }
}

/** Why a PostgreSQL suite is skipped, in its SKIPPED line. */
export const NO_DATABASE =
  'no PostgreSQL answered at the default address and TOLLGATE_TEST_DATABASE_URL is unset'

const workers = new URL('./workers/', import.meta.url).pathname

function spawnWorker(script: string, args: unknown): ChildProcess {
  return spawn(process.execPath, [join(workers, script), JSON.stringify(args)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
}

/** Runs a worker to completion and returns the JSON it printed last. */
export function runWorker<T>(script: string, args: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawnWorker(script, args)
    let out = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk
    })
    child.on('error', reject)
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${script} exited with ${code}: ${out}`))
      resolve(JSON.parse(out.trim().split('\n').at(-1)!) as T)
    })
  })
}

/** Calls `fn` with each whole line the child prints on stdout. */
function eachLine(child: ChildProcess, fn: (line: string) => void): void {
  let buffered = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk
    let nl = buffered.indexOf('\n')
    while (nl >= 0) {
      fn(buffered.slice(0, nl))
      buffered = buffered.slice(nl + 1)
      nl = buffered.indexOf('\n')
    }
  })
}

/** Starts a worker and resolves once it printed a line matching `ready`. */
export function startWorker(
  script: string,
  args: unknown,
  ready: (line: string) => boolean,
  onLine: (line: string) => void = () => {},
): Promise<{ child: ChildProcess; line: string }> {
  return new Promise((resolve, reject) => {
    const child = spawnWorker(script, args)
    let done = false
    eachLine(child, (line) => {
      onLine(line)
      if (!done && ready(line)) {
        done = true
        resolve({ child, line })
      }
    })
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      if (!done) reject(new Error(`${script} exited (${code ?? signal}) before it was ready`))
    })
  })
}

/**
 * Starts the Tollgate server worker (test/workers/tollgate-server.mjs); resolves with its URL
 * and bootstrap admin key once it listens.
 */
export async function startServer(
  args: Record<string, unknown>,
): Promise<{ child: ChildProcess; url: string; adminKey: string }> {
  const { child, line } = await startWorker('tollgate-server.mjs', args, () => true)
  const { url, adminKey } = JSON.parse(line) as { url: string; adminKey: string }
  return { child, url, adminKey }
}

/** A tenant API key, created through the admin API as an operator would. */
export async function createTenantKey(
  url: string,
  adminKey: string,
  tenant: string,
): Promise<string> {
  const res = await fetch(`${url}/v1/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ tenant, name: 'processes test' }),
  })
  expect(res.status).toBe(201)
  return ((await res.json()) as { key: string }).key
}

/** SIGKILL: the process gets no chance to clean up. */
export function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  })
}

/** A graceful stop (SIGTERM); SIGKILL if it hangs. Resolves with the exit code. */
export function stop(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode)
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve(code)
    })
    child.kill('SIGTERM')
  })
}

/** What the metering processes of {@link contend} did, summed. */
export interface Contention {
  ok: number
  insufficient: number
  errors: string[]
}

/**
 * Runs `processes` reserve-commit.mjs workers at once, each with `loops` concurrent
 * reserve → commit loops over a shared list of `attempts` (attempt i charges 1 credit to
 * `accounts[i % accounts.length]`). `store` says where the workers meter: `{ url, tenant }` for
 * PostgreSQL, `{ url, apiKey, transport }` for a Tollgate server through httpStore.
 */
export async function contend(
  store: Record<string, unknown>,
  accounts: string[],
  attempts: number,
  { processes = 4, loops = 32 } = {},
): Promise<Contention> {
  const results = await Promise.all(
    Array.from({ length: processes }, (_, w) =>
      runWorker<Contention>('reserve-commit.mjs', {
        ...store,
        accounts,
        attempts,
        loops,
        offset: w,
        stride: processes,
      }),
    ),
  )
  return {
    ok: results.reduce((s, r) => s + r.ok, 0),
    insufficient: results.reduce((s, r) => s + r.insufficient, 0),
    errors: results.flatMap((r) => r.errors),
  }
}

/** The account's whole ledger, oldest first. */
export async function ledgerOf(meter: Meter, account: string): Promise<LedgerEntry[]> {
  const out: LedgerEntry[] = []
  let cursor: string | undefined
  for (;;) {
    const page = await meter.ledger(account, { limit: 1000, ...(cursor ? { cursor } : {}) })
    out.push(...page.entries)
    if (!page.nextCursor) return out.reverse()
    cursor = page.nextCursor
  }
}

/**
 * Replays the account's ledger in sequence order: every running balance matches
 * `balanceAfter`, available and held never go below zero, and the sums give the balance.
 * (Entries of different processes are ordered by sequence; their `at` comes from each
 * process's clock, so it is not checked for order here.)
 */
export async function expectReplays(meter: Meter, account: string) {
  const balance = await meter.balance(account, { fresh: true })
  const entries = await ledgerOf(meter, account)
  let net = 0
  let held = 0
  for (const e of entries) {
    net += e.delta
    held += e.heldDelta
    expect(e.balanceAfter, `entry ${e.id}`).toBe(net)
    expect(net - held, `available after entry ${e.id}`).toBeGreaterThanOrEqual(0)
    expect(held).toBeGreaterThanOrEqual(0)
  }
  expect({ net, held }).toEqual({ net: balance.total - balance.debt, held: balance.held })
  return { balance, entries }
}

/** How many entries of each type. */
export function countTypes(entries: LedgerEntry[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const e of entries) counts[e.type] = (counts[e.type] ?? 0) + 1
  return counts
}

/**
 * The many-accounts scenario: 1,000 accounts with 2 credits each and 3,000 attempts over
 * them. Exactly 2,000 are served and 1,000 refused; every account ends at 0 with two commits
 * and a ledger that replays.
 */
export async function expectManyAccountsSettle(
  meter: Meter,
  run: (accounts: string[], attempts: number) => Promise<Contention>,
): Promise<void> {
  const accounts = Array.from({ length: 1_000 }, (_, i) => `acct-${i}`)
  for (let i = 0; i < accounts.length; i += 50) {
    await Promise.all(accounts.slice(i, i + 50).map((a) => meter.grant(a, 2)))
  }
  const r = await run(accounts, 3_000)
  expect(r.errors).toEqual([])
  expect(r.ok).toBe(2_000)
  expect(r.insufficient).toBe(1_000)
  for (let i = 0; i < accounts.length; i += 50) {
    await Promise.all(
      accounts.slice(i, i + 50).map(async (a) => {
        const { balance, entries } = await expectReplays(meter, a)
        expect(balance).toMatchObject({ total: 0, held: 0 })
        expect(entries.filter((e) => e.type === 'commit')).toHaveLength(2)
      }),
    )
  }
}

/** Drops the test's own schemas from the test database (after the suite that made them). */
export async function dropSchemas(...schemas: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  } finally {
    await client.end()
  }
}

/** A worker that answers one JSON line per JSON command line (test/workers/coherence-app.mjs). */
export interface CommandWorker {
  /** Sends a command; resolves with its answer (commands are answered in order). */
  send<T>(command: Record<string, unknown>): Promise<T>
  /** Ends its input, so that it closes and exits; SIGKILL after 10 s. */
  stop(): Promise<number | null>
}

/** Starts a command worker and resolves once it printed its first line (`{ ready: true }`). */
export function startCommandWorker(script: string, args: unknown): Promise<CommandWorker> {
  const child = spawn(process.execPath, [join(workers, script), JSON.stringify(args)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const waiting: ((line: string) => void)[] = []
  eachLine(child, (line) => waiting.shift()?.(line))
  const next = () =>
    new Promise<string>((resolve, reject) => {
      waiting.push(resolve)
      child.once('exit', (code) => reject(new Error(`${script} exited (${code})`)))
    })
  const worker: CommandWorker = {
    async send<T>(command: Record<string, unknown>) {
      const answer = next()
      child.stdin!.write(`${JSON.stringify(command)}\n`)
      const parsed = JSON.parse(await answer) as T & { error?: string }
      if (parsed.error !== undefined) throw new Error(`${script}: ${parsed.error}`)
      return parsed
    },
    stop() {
      child.stdin!.end()
      return stop(child)
    },
  }
  return next().then(() => worker)
}
