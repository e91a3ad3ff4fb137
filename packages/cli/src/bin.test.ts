/**
 * The built binary (`node dist/bin.js`, compiled by the global setup) in child processes:
 * exit codes, stdout/stderr as a shell sees them, and `serve` on PGlite in a temp directory.
 */
import { type ChildProcessByStdio, execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import type { Balance } from '@tollgate/core'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { CLI_BIN } from './paths.js'
import { runCli } from './program.js'
import { buffer, runBin, startTestServer } from './test-support.js'

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url))

describe('tollgate (built binary) against a server', () => {
  let srv: Awaited<ReturnType<typeof startTestServer>>
  beforeAll(async () => {
    srv = await startTestServer()
  })
  afterAll(async () => {
    await srv?.close()
  })

  it('--version and --help exit 0', async () => {
    expect(await runBin(['--version'])).toEqual({ code: 0, stdout: '0.1.0\n', stderr: '' })
    const help = await runBin(['--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('Usage: tollgate [options] [command]')
    const sub = await runBin(['codes', 'create', '--help'])
    expect(sub.code).toBe(0)
    expect(sub.stdout).toContain('Usage: tollgate codes create [options]')
  })

  it('grant, balance --json, a refused debit (exit 1) and a bad amount (exit 2)', async () => {
    expect((await runBin(['grant', 'alice', '2'], srv.env)).code).toBe(0)
    const b = await runBin(['balance', 'alice', '--json'], srv.env)
    expect(b.code).toBe(0)
    expect((JSON.parse(b.stdout) as Balance).available).toBe(2)

    expect(await runBin(['debit', 'alice', '5'], srv.env)).toEqual({
      code: 1,
      stdout: '',
      stderr: 'error: insufficient_credits: account needs 5 credits but has 2 available\n',
    })
    const bad = await runBin(['debit', 'alice', 'abc'], srv.env)
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/^error: command-argument value 'abc' is invalid/)
  })

  it('a key with a trailing newline: a bad-key line and exit 2, not "cannot reach"', async () => {
    const r = await runBin(['balance', 'alice'], {
      TOLLGATE_URL: srv.url,
      TOLLGATE_API_KEY: 'tg_sk_abc\n',
    })
    expect(r).toEqual({
      code: 2,
      stdout: '',
      stderr:
        'error: invalid_input: apiKey: TOLLGATE_API_KEY must be printable ASCII without spaces or line breaks\n',
    })
  })

  it('codes create: codes on stdout, progress on stderr', async () => {
    const r = await runBin(['codes', 'create', '--credits', '3', '--count', '250'], srv.env)
    expect(r.code).toBe(0)
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(250)
    expect(r.stdout).not.toContain('codes:')
    expect(r.stderr).toBe(
      'codes: 0/250\ncodes: 100/250\ncodes: 200/250\ncodes: 250/250\ncreated 250 codes of 3 credits each (3 batches)\n',
    )
  })

  it('keys create prints only the key, so a shell can capture it', async () => {
    const r = await runBin(['keys', 'create', '--tenant', 'shell'], srv.adminEnv)
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^tg_sk_\S+\n$/)
    const key = r.stdout.trim()
    const b = await runBin(['balance', 'nobody', '--json'], {
      TOLLGATE_URL: srv.url,
      TOLLGATE_API_KEY: key,
    })
    expect(JSON.parse(b.stdout)).toMatchObject({ account: 'nobody', available: 0 })
  })
})

type Child = ChildProcessByStdio<null, Readable, Readable>

interface Serving {
  child: Child
  /** What it had printed on stderr, for a person, once started: the URL, keys, instructions. */
  started: string
  stderr: () => string
  stdout: () => string
}

/**
 * Starts `tollgate serve …` (`--port 0` unless `env` sets PORT) and resolves once it has
 * printed its instructions on stderr.
 */
async function startServe(args: string[], env: Record<string, string> = {}): Promise<Serving> {
  const port = env.PORT === undefined ? ['--port', '0'] : []
  const child = spawn(process.execPath, [CLI_BIN, 'serve', ...port, ...args], {
    cwd: PACKAGE_DIR,
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d
  })
  await new Promise<void>((resolve, reject) => {
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d
      if (stderr.includes('Ctrl-C stops the server.')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)))
  })
  return { child, started: stderr, stderr: () => stderr, stdout: () => stdout }
}

/** Every line of `text` parsed as one JSON object: throws on a line that is not one. */
function jsonLines(text: string): Record<string, unknown>[] {
  const lines = text.split('\n')
  // The log ends each line with a newline: nothing is left after the last one.
  expect(lines.pop()).toBe('')
  return lines.map((line) => {
    const value: unknown = JSON.parse(line)
    expect(typeof value === 'object' && value !== null && !Array.isArray(value), line).toBe(true)
    return value as Record<string, unknown>
  })
}

/** Sends SIGTERM and resolves to the exit code. */
async function stop(child: Child): Promise<number | null> {
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const [code] = (await exited) as [number | null]
  return code
}

const sh = (line: string, cwd: string) =>
  new Promise<{ code: number; stdout: string }>((resolve) => {
    execFile('sh', ['-c', line], { cwd }, (err, stdout) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout }),
    )
  })

describe('tollgate serve (child process, PGlite in a temp directory)', () => {
  let dir = ''
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tollgate-serve-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('prints the admin key on the first start, serves, seeds the demo and exits 0 on SIGTERM', async () => {
    const dataDir = path.join(dir, 'data')
    const first = await startServe(['--data-dir', dataDir, '--demo'])
    const url = /^Tollgate server on (http:\/\/\S+) \(PGlite in (.+)\)$/m.exec(first.started)
    expect(url?.[2]).toBe(dataDir)
    const base = url![1]!
    expect(first.started).toMatch(/^Admin key \(shown this once, keep it\): tg_sk_\S+$/m)
    const tenantKey = /^Tenant key \(a new one each start\): (tg_sk_\S+)$/m.exec(first.started)![1]!
    expect(first.started).toContain('Demo tenant "demo": alice has 1,000 credits available.\n')

    const health = await request(`${base}/healthz`)
    expect(health.statusCode).toBe(200)
    expect(await health.body.json()).toEqual({ status: 'ok' })

    // The printed commands work as printed (run from where serve was started).
    const printed = first.started.split('\n').filter((l) => l.startsWith('  '))
    const cli = printed.find((l) => l.includes(' balance alice'))!.trim()
    expect(cli).toMatch(/^TOLLGATE_URL=\S+ TOLLGATE_API_KEY=\S+ node dist\/bin\.js balance alice$/)
    const ran = await sh(cli, PACKAGE_DIR)
    expect(ran.code).toBe(0)
    expect(ran.stdout).toMatch(/^alice: 1,000 available, 0 held, 1,000 total\n/)
    const curl = printed.find((l) => l.includes('curl'))!.trim()
    expect(curl).toBe(
      `curl -s -H 'Authorization: Bearer ${tenantKey}' ${base}/v1/accounts/alice/balance`,
    )

    expect(await stop(first.child)).toBe(0)
    expect(first.stderr()).toBe(`${first.started}SIGTERM: shutting down…\nstopped\n`)
    // The log level is warn by default: nothing to say on a clean run, and nothing else there.
    expect(first.stdout()).toBe('')

    // A restart on the same data: no admin key again, and the demo grant is not repeated.
    const second = await startServe(['--data-dir', dataDir, '--demo'])
    expect(second.started).not.toMatch(/tg_sk_\S+\n\nDemo/)
    expect(second.started).toContain('Admin key: created on the first start')
    expect(second.started).toContain(
      'alice has 1,000 credits available (granted on an earlier run)',
    )
    const newKey = /^Tenant key \(a new one each start\): (tg_sk_\S+)$/m.exec(second.started)![1]!
    expect(newKey).not.toBe(tenantKey)
    expect(await stop(second.child)).toBe(0)
  })

  it('in process: serve stops when io.signal aborts, and leaves no signal listeners', async () => {
    const stdout = buffer()
    const stderr = buffer()
    const stop = new AbortController()
    const before = process.listenerCount('SIGTERM')
    const exit = runCli(['serve', '--port', '0', '--data-dir', path.join(dir, 'inproc')], {
      stdout,
      stderr,
      env: {},
      signal: stop.signal,
    })
    await vi.waitFor(() => expect(stderr.text()).toContain('Ctrl-C stops the server.'), {
      timeout: 30_000,
    })
    const base = /^Tollgate server on (\S+) /m.exec(stderr.text())![1]!
    expect((await request(`${base}/healthz`)).statusCode).toBe(200)
    stop.abort()
    expect(await exit).toBe(0)
    expect(stderr.text()).toMatch(/\nCtrl-C stops the server\.\nshutting down…\nstopped\n$/)
    expect(stdout.text()).toBe('')
    expect(process.listenerCount('SIGTERM')).toBe(before)
  })

  it('reads PORT and TOLLGATE_LOG_LEVEL; stdout is JSON log lines only, people read stderr', async () => {
    const serving = await startServe(['--data-dir', path.join(dir, 'env')], {
      PORT: '0',
      TOLLGATE_LOG_LEVEL: 'info',
    })
    const base = /^Tollgate server on (http:\/\/\S+) /m.exec(serving.started)![1]!
    expect(serving.started).toMatch(/^Admin key \(shown this once, keep it\): tg_sk_\S+$/m)
    const health = await request(`${base}/healthz`, { headers: { 'x-request-id': 'cli-log-1' } })
    expect(health.statusCode).toBe(200)
    expect(health.headers['x-request-id']).toBe('cli-log-1')
    await health.body.dump()
    const missing = await request(`${base}/v1/accounts/a/balance`)
    expect(missing.statusCode).toBe(401)
    await missing.body.dump()
    expect(await stop(serving.child)).toBe(0)

    const log = jsonLines(serving.stdout())
    // Info level from the environment: the start-up and the requests are logged, as JSON.
    expect(log.some((l) => String(l.msg).startsWith('Server listening at'))).toBe(true)
    expect(
      log.some((l) => l.msg === 'generated the bootstrap admin key (returned by listen() once)'),
    ).toBe(true)
    const mine = log.filter((l) => l.requestId === 'cli-log-1').map((l) => l.msg)
    expect(mine).toEqual(['incoming request', 'request completed'])
    for (const line of log) expect(typeof line.level).toBe('number')
    // No secret and no human line leaked into the log stream.
    expect(serving.stdout()).not.toMatch(/tg_sk_|Tollgate server on|Ctrl-C/)
  })

  it('flags override the environment, even a bad value there', async () => {
    const serving = await startServe(
      ['--data-dir', path.join(dir, 'override'), '--port', '0', '--log-level', 'silent'],
      { PORT: 'not-a-port', TOLLGATE_LOG_LEVEL: 'info' },
    )
    const base = /^Tollgate server on (http:\/\/\S+) /m.exec(serving.started)![1]!
    const health = await request(`${base}/healthz`)
    expect(health.statusCode).toBe(200)
    await health.body.dump()
    expect(await stop(serving.child)).toBe(0)
    // --log-level silent beat TOLLGATE_LOG_LEVEL=info: no log at all.
    expect(serving.stdout()).toBe('')
  })

  it('a bad PORT, HOST or TOLLGATE_LOG_LEVEL: one line naming the variable, exit 2', async () => {
    const data = ['serve', '--data-dir', path.join(dir, 'bad-env')]
    const level = await runBin(data, { TOLLGATE_LOG_LEVEL: 'loud' })
    expect(level).toEqual({
      code: 2,
      stdout: '',
      stderr:
        'error: TOLLGATE_LOG_LEVEL="loud" must be one of fatal, error, warn, info, debug, trace, silent\n',
    })
    const port = await runBin(data, { PORT: '70000' })
    expect(port).toEqual({
      code: 2,
      stdout: '',
      stderr: 'error: PORT="70000" must be a port, 0–65535\n',
    })
    const host = await runBin(data, { HOST: 'two words' })
    expect(host.code).toBe(2)
    expect(host.stderr).toBe('error: HOST="two words" must be a host name or address\n')
    // A bad flag is commander's refusal, exit 2 as well.
    const flag = await runBin([...data, '--log-level', 'loud'])
    expect(flag.code).toBe(2)
    expect(flag.stderr).toMatch(/^error: option '--log-level <level>' argument 'loud' is invalid/)
  })

  it('a port in use: one error line, exit 1', async () => {
    const srv = await startTestServer()
    try {
      const port = new URL(srv.url).port
      const r = await runBin(['serve', '--port', port, '--data-dir', path.join(dir, 'busy')])
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/^error: .*EADDRINUSE/)
    } finally {
      await srv.close()
    }
  })
})
