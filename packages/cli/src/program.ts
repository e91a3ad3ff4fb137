/**
 * The `tollgate` program: the root command, with each command group added from `commands/`.
 * `createProgram()` builds it over any {@link CliIo}, so tests run the same commands in process
 * that `bin.ts` runs in a shell.
 *
 * Exit codes: 0 done; 1 the server refused or could not be reached (one `error: code: detail`
 * line on stderr); 2 bad arguments, refused before any request.
 */
import { createRequire } from 'node:module'
import { Command, CommanderError } from 'commander'
import { DEFAULT_URL } from './client.js'
import { createCommandKit, EXIT } from './command-kit.js'
import { addAccountsCommands } from './commands/accounts.js'
import { addCodesCommands } from './commands/codes.js'
import { addCreditsCommands } from './commands/credits.js'
import { addCycleCommands } from './commands/cycle.js'
import { addKeysCommands } from './commands/keys.js'
import { addServeCommand } from './commands/serve.js'
import { addSettingsCommands } from './commands/settings.js'
import { addUsageCommand } from './commands/usage.js'
import { addWebhooksCommands } from './commands/webhooks.js'
import { type CliIo, processIo } from './io.js'

/** Options of {@link createProgram}: the process's streams and environment unless given. */
export interface ProgramOptions extends Partial<CliIo> {
  /** How printed instructions (`serve --demo`) call the CLI. @default 'tollgate' */
  command?: string
}

const VERSION = (createRequire(import.meta.url)('../package.json') as { version: string }).version

/**
 * Builds the `tollgate` program. It never exits the process: every failure, `--help` and
 * `--version` included, rejects `parseAsync` with a `CommanderError` whose `exitCode` says how
 * to exit (its message is already on stderr). {@link runCli} turns that into an exit code.
 * @example
 * const program = createProgram({ stdout, stderr, env: { TOLLGATE_API_KEY: key } })
 * await program.parseAsync(['balance', 'alice', '--json'], { from: 'user' })
 */
export function createProgram(options: ProgramOptions = {}): Command {
  const io: CliIo = { ...processIo(), ...options }
  const kit = createCommandKit(io)

  const program = new Command('tollgate')
  // Output and exit handling first: subcommands copy them when they are created.
  program
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .exitOverride((err) => {
      // Help and version are not failures; every other commander error is a usage mistake.
      const exitCode =
        err.code === 'commander.helpDisplayed' || err.code === 'commander.version'
          ? EXIT.ok
          : EXIT.usage
      throw new CommanderError(exitCode, err.code, err.message)
    })
    .showHelpAfterError('(run with --help for usage)')

  program
    .description(
      'Run a Tollgate server and manage prepaid credits, keys, codes and webhooks from a shell.',
    )
    .version(VERSION, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help for a command')

  // In this order: it is the order of the commands in the help.
  addServeCommand(program, kit, options.command ?? 'tollgate')
  addKeysCommands(program, kit)
  addCreditsCommands(program, kit)
  addAccountsCommands(program, kit)
  addCodesCommands(program, kit)
  addCycleCommands(program, kit)
  addSettingsCommands(program, kit)
  addUsageCommand(program, kit)
  addWebhooksCommands(program, kit)
  kit.addClientOptions()

  program.addHelpText(
    'after',
    `
Commands other than serve talk to a server: --url (TOLLGATE_URL, default ${DEFAULT_URL})
with --api-key (TOLLGATE_API_KEY). "tollgate <command> --help" shows a command's options.
Exit codes: 0 done, 1 refused by the server or unreachable, 2 bad arguments.`,
  )
  return program
}

/**
 * Runs the CLI on `argv` (the arguments after the program name) and resolves to the exit code;
 * never exits the process. Error lines and help go to `options.stderr`/`stdout`.
 * @example process.exitCode = await runCli(process.argv.slice(2))
 */
export async function runCli(
  argv: readonly string[],
  options: ProgramOptions = {},
): Promise<number> {
  const program = createProgram(options)
  try {
    await program.parseAsync([...argv], { from: 'user' })
    return EXIT.ok
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode
    // Not expected: every action reports its own failures. Still one line, still exit 1.
    const stderr = options.stderr ?? process.stderr
    stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`)
    return EXIT.failed
  }
}
