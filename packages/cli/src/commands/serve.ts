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
  port: number
  host: string
  dataDir: string
  databaseUrl?: string
  demo?: boolean
  logLevel: LogLevel
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
      new Option('--port <port>', 'port to listen on (0: any free one)')
        .default(DEFAULT_PORT)
        .argParser(parsePort),
    )
    .addOption(new Option('--host <host>', 'interface to listen on').default(DEFAULT_HOST))
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
      new Option('--log-level <level>', 'server log level (JSON lines on stdout)')
        .choices(LOG_LEVELS)
        .default('warn'),
    )
    .addHelpText(
      'after',
      `
The admin key is printed on the first start only (the store keeps its hash).
SIGINT/SIGTERM stop the server gracefully: in-flight requests finish, the store closes.`,
    )
    .action(
      kit.action(async (opts: ServeFlags) => {
        const databaseUrl = opts.databaseUrl ?? kit.io.env.TOLLGATE_DATABASE_URL
        if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
          throw new UsageError('--database-url must be a postgres:// or postgresql:// URL')
        }
        await serve(
          {
            port: opts.port,
            host: opts.host,
            dataDir: opts.dataDir,
            ...(databaseUrl ? { databaseUrl } : {}),
            demo: opts.demo === true,
            logLevel: opts.logLevel,
            command,
          },
          kit.io,
        )
      }),
    )
}
