/** `tollgate serve`: the options and checks of the command; {@link serve} runs the server. */
import { type Command, Option } from 'commander'
import { parsePort } from '../args.js'
import { type CommandKit, UsageError } from '../command-kit.js'
import {
  DEFAULT_DATA_DIR,
  DEFAULT_HOST,
  DEFAULT_PORT,
  LOG_LEVELS,
  type LogLevel,
  serve,
} from '../serve.js'

interface ServeFlags {
  port?: number
  host?: string
  dataDir: string
  databaseUrl?: string
  demo?: boolean
  logLevel?: LogLevel
}

/**
 * `name`'s value from the environment, checked by `parse`; undefined when unset or empty (a
 * platform that always sets the variable may leave it empty). A bad value is a usage error
 * naming the variable.
 */
function fromEnv<T>(
  env: Record<string, string | undefined>,
  name: string,
  parse: (value: string) => T,
): T | undefined {
  const value = env[name]
  if (value === undefined || value === '') return undefined
  try {
    return parse(value)
  } catch (err) {
    throw new UsageError(`${name}=${JSON.stringify(value)} ${(err as Error).message}`)
  }
}

function parseLogLevel(value: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(value)) {
    throw new Error(`must be one of ${LOG_LEVELS.join(', ')}`)
  }
  return value as LogLevel
}

function parseHost(value: string): string {
  if (!/^[\x21-\x7e]+$/.test(value)) throw new Error('must be a host name or address')
  return value
}

/**
 * Adds `serve` to `program`; `command` is how its printed instructions call the CLI.
 * @example addServeCommand(program, kit, 'tollgate')
 */
export function addServeCommand(program: Command, kit: CommandKit, command: string): void {
  program
    .command('serve')
    .description('run a Tollgate server (embedded PGlite by default, or PostgreSQL)')
    .addOption(
      new Option(
        '--port <port>',
        `port to listen on, 0: any free one (env PORT, default ${DEFAULT_PORT})`,
      ).argParser(parsePort),
    )
    .addOption(
      new Option('--host <host>', `interface to listen on (env HOST, default ${DEFAULT_HOST})`),
    )
    .addOption(
      new Option('--data-dir <dir>', 'where PGlite keeps its files').default(DEFAULT_DATA_DIR),
    )
    .addOption(
      new Option(
        '--database-url <url>',
        'PostgreSQL connection string: use it instead of PGlite (env TOLLGATE_DATABASE_URL)',
      ),
    )
    .addOption(
      new Option('--demo', 'seed tenant "demo" (alice: 1,000 credits) and print what to try'),
    )
    .addOption(
      new Option(
        '--log-level <level>',
        'server log level, JSON lines on stdout (env TOLLGATE_LOG_LEVEL, default warn)',
      ).choices(LOG_LEVELS),
    )
    .addHelpText(
      'after',
      `
Flags override the environment: PORT, HOST, TOLLGATE_LOG_LEVEL, TOLLGATE_DATABASE_URL
(an empty variable counts as unset; a bad value is refused, naming it, with exit 2).
stdout carries only the server's JSON log, one object per line; the lines for a person (the
URL, the admin key, the demo's instructions) go to stderr.
The admin key is printed on the first start only (the store keeps its hash).
SIGINT/SIGTERM stop the server gracefully: in-flight requests finish, the store closes.`,
    )
    .action(
      kit.action(async (opts: ServeFlags) => {
        const env = kit.io.env
        const port = opts.port ?? fromEnv(env, 'PORT', parsePort) ?? DEFAULT_PORT
        const host = opts.host ?? fromEnv(env, 'HOST', parseHost) ?? DEFAULT_HOST
        const logLevel =
          opts.logLevel ?? fromEnv(env, 'TOLLGATE_LOG_LEVEL', parseLogLevel) ?? 'warn'
        const databaseUrl = opts.databaseUrl ?? env.TOLLGATE_DATABASE_URL
        if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
          throw new UsageError('--database-url must be a postgres:// or postgresql:// URL')
        }
        await serve(
          {
            port,
            host,
            dataDir: opts.dataDir,
            ...(databaseUrl ? { databaseUrl } : {}),
            demo: opts.demo === true,
            logLevel,
            command,
          },
          kit.io,
        )
      }),
    )
}
