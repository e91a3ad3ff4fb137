/**
 * `tollgate serve`: a Tollgate server on embedded PGlite (the default, durable in a data
 * directory) or on PostgreSQL, stopped gracefully by SIGINT/SIGTERM.
 */
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import type { Store } from '@tollgate/core'
import { pgliteStore, postgresStore } from '@tollgate/postgres'
import { createServer } from '@tollgate/server'
import { formatCredits } from './format.js'
import type { CliIo } from './io.js'
import { seedDemo } from './seed-demo.js'

/** Where `serve` keeps PGlite's files unless told otherwise (relative to the working directory). */
export const DEFAULT_DATA_DIR = './.tollgate'
/** The port `serve` listens on unless told otherwise. */
export const DEFAULT_PORT = 7070
/** The interface `serve` listens on unless told otherwise: this machine only. */
export const DEFAULT_HOST = '127.0.0.1'

/** Log levels `--log-level` accepts; `silent` turns the server's logger off. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/** Options of {@link serve}. */
export interface ServeOptions {
  /** @default 7070 */
  port?: number
  /** @default '127.0.0.1' */
  host?: string
  /** PGlite's directory, when no `databaseUrl` is given. @default './.tollgate' */
  dataDir?: string
  /** A PostgreSQL connection string: use `postgresStore()` instead of PGlite. */
  databaseUrl?: string
  /** Seed the demo tenant and print what to try ({@link seedDemo}). @default false */
  demo?: boolean
  /**
   * The server's log level. The log is JSON lines on `io.stdout`, one object per line and
   * nothing else there (the human lines go to `io.stderr`); `silent`: none. @default 'warn'
   */
  logLevel?: LogLevel
  /** How the printed instructions call the CLI. @default 'tollgate' */
  command?: string
}

/**
 * Runs a server until SIGINT/SIGTERM (or `io.signal` aborts), then closes it: it stops
 * accepting, finishes in-flight requests and closes the store. Resolves once closed.
 * stdout carries only the JSON log (for log shippers); the start-up lines meant for a person
 * (the URL, the admin key, the demo's instructions) go to stderr.
 * @example
 * const stop = new AbortController()
 * const running = serve({ port: 0, dataDir: tmp, demo: true }, { ...processIo(), signal: stop.signal })
 * // …
 * stop.abort()
 * await running
 */
export async function serve(options: ServeOptions, io: CliIo): Promise<void> {
  const port = options.port ?? DEFAULT_PORT
  const host = options.host ?? DEFAULT_HOST
  const logLevel = options.logLevel ?? 'warn'
  let store: Store
  let where: string
  if (options.databaseUrl) {
    store = postgresStore({ connectionString: options.databaseUrl })
    where = `PostgreSQL at ${redact(options.databaseUrl)}`
  } else {
    const dataDir = options.dataDir ?? DEFAULT_DATA_DIR
    await mkdir(dataDir, { recursive: true })
    store = pgliteStore({ dataDir })
    where = `PGlite in ${dataDir}`
  }

  const server = createServer({
    store,
    // The log goes to io.stdout (process.stdout from a shell): JSON lines, nothing else there.
    logger: logLevel === 'silent' ? false : { level: logLevel, stream: io.stdout },
  })
  // Listen for signals before listening on the port: a Ctrl-C during startup still closes
  // the store cleanly (PGlite must be closed to leave its data directory consistent).
  const stopped = waitForStop(io)
  let listening: { url: string; adminKey: string | null }
  try {
    listening = await server.listen({ port, host })
  } catch (err) {
    stopped.dispose()
    await server.close().catch(() => {})
    throw err
  }
  const { url, adminKey } = listening
  // For a person, so on stderr: stdout is the JSON log alone.
  const out = (line = '') => io.stderr.write(`${line}\n`)
  out(`Tollgate server on ${url} (${where})`)
  if (adminKey) {
    out(`Admin key (shown this once, keep it): ${adminKey}`)
  } else {
    out('Admin key: created on the first start and shown then (it is stored as a hash).')
  }

  if (options.demo) {
    try {
      const seed = await seedDemo({ store, url })
      const cmd = options.command ?? 'tollgate'
      out()
      out(
        `Demo tenant "${seed.tenant}": ${seed.account} has ${formatCredits(seed.balance.available)} credits available${seed.granted ? '' : ' (granted on an earlier run)'}.`,
      )
      out(`Tenant key (a new one each start): ${seed.apiKey}`)
      out()
      out('Try:')
      out(
        `  curl -s -H 'Authorization: Bearer ${seed.apiKey}' ${url}/v1/accounts/${seed.account}/balance`,
      )
      out(`  TOLLGATE_URL=${url} TOLLGATE_API_KEY=${seed.apiKey} ${cmd} balance ${seed.account}`)
      out(`  TOLLGATE_URL=${url} TOLLGATE_API_KEY=${seed.apiKey} ${cmd} debit ${seed.account} 5`)
      out(`  TOLLGATE_URL=${url} TOLLGATE_API_KEY=${seed.apiKey} ${cmd} ledger ${seed.account}`)
    } catch (err) {
      stopped.dispose()
      await server.close().catch(() => {})
      throw err
    }
  }
  out()
  out('Ctrl-C stops the server.')

  const signal = await stopped.promise
  io.stderr.write(`${signal ? `${signal}: ` : ''}shutting down…\n`)
  await server.close()
  io.stderr.write('stopped\n')
}

/** Resolves on the first SIGINT/SIGTERM or when `io.signal` aborts; a second signal forces exit. */
function waitForStop(io: CliIo): { promise: Promise<string | null>; dispose: () => void } {
  let dispose = () => {}
  const promise = new Promise<string | null>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      dispose()
      // A second Ctrl-C while closing means "now": do not hang on a stuck request.
      process.once(signal, () => process.exit(130))
      resolve(signal)
    }
    const onAbort = () => {
      dispose()
      resolve(null)
    }
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    io.signal?.addEventListener('abort', onAbort, { once: true })
    dispose = () => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      io.signal?.removeEventListener('abort', onAbort)
    }
    if (io.signal?.aborted) onAbort()
  })
  return { promise, dispose }
}

/** A connection string without its password, for the startup line. */
function redact(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return 'the given URL'
  }
}

/** The `node …/bin.js` that runs this CLI, relative to `cwd`: for printed instructions. */
export function nodeCommand(binPath: string, cwd = process.cwd()): string {
  const rel = path.relative(cwd, binPath)
  // Absolute when there is no relative path (another drive on Windows).
  return `node ${path.isAbsolute(rel) ? binPath : rel}`
}
