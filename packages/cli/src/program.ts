/**
 * The `tollgate` program: every command, built on commander. `createProgram()` builds it over
 * any {@link CliIo}, so tests run the same commands in process that `bin.ts` runs in a shell.
 *
 * Exit codes: 0 done; 1 the server refused or could not be reached (one `error: code: detail`
 * line on stderr); 2 bad arguments, refused before any request.
 */
import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import type { Balance, CreateCodesResult, CycleData, LedgerEntry } from '@tollgate/core'
import { Command, CommanderError, Option } from 'commander'
import {
  parseAccount,
  parseAmount,
  parseEvery,
  parseIdempotencyKey,
  parseMetadata,
  parseNonNegative,
  parsePort,
  parsePositive,
  parsePrefix,
  parseTime,
  parseTypes,
} from './args.js'
import {
  type ApiKeyInfo,
  type CodesBody,
  ConnectionError,
  createClient,
  DEFAULT_URL,
  ServerError,
  type TollgateClient,
} from './client.js'
import { formatCredits, formatDelta, formatJson, formatTable, formatTime } from './format.js'
import { type CliIo, processIo } from './io.js'
import {
  DEFAULT_DATA_DIR,
  DEFAULT_HOST,
  DEFAULT_PORT,
  LOG_LEVELS,
  type LogLevel,
  serve,
} from './serve.js'

/** Exit codes of the CLI. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const

/** Options of {@link createProgram}: the process's streams and environment unless given. */
export interface ProgramOptions extends Partial<CliIo> {
  /** How printed instructions (`serve --demo`) call the CLI. @default 'tollgate' */
  command?: string
}

/** Codes per `POST /v1/codes` when `codes create` does not say. */
export const DEFAULT_CODES_CHUNK = 100

const VERSION = (createRequire(import.meta.url)('../package.json') as { version: string }).version

/** A mistake in how the CLI was called, found by an action (exit 2). */
class UsageError extends Error {}

/** The options every command that talks to a server has. */
type ClientFlags = {
  url?: string
  apiKey?: string
  tenant?: string
  json?: boolean
}

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
  const out = (text: string) => io.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
  const note = (text: string) => io.stderr.write(`${text}\n`)

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
    .description('Run a Tollgate server and manage prepaid credits, keys and codes from a shell.')
    .version(VERSION, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help for a command')

  /** Runs an action; failures become one `error: …` line and a CommanderError with the exit code. */
  const act =
    <A extends unknown[]>(fn: (...args: A) => Promise<void>) =>
    async (...args: A): Promise<void> => {
      try {
        await fn(...args)
      } catch (err) {
        if (err instanceof CommanderError) throw err
        const usage = err instanceof UsageError
        const message = err instanceof Error ? err.message : String(err)
        note(`error: ${message}`)
        throw new CommanderError(
          usage ? EXIT.usage : EXIT.failed,
          usage ? 'tollgate.usage' : 'tollgate.failed',
          message,
        )
      }
    }

  /** A client from the command's options and the environment; closed after `fn`. */
  const withClient = async (cmd: Command, fn: (client: TollgateClient) => Promise<void>) => {
    const flags = cmd.opts<ClientFlags>()
    const url = flags.url ?? io.env.TOLLGATE_URL ?? DEFAULT_URL
    const apiKey = flags.apiKey ?? io.env.TOLLGATE_API_KEY
    // `keys` commands' own --tenant names a key's tenant, not the tenant acted on.
    const tenant = clientCommands.get(cmd) ? (flags.tenant ?? io.env.TOLLGATE_TENANT) : undefined
    if (!/^https?:\/\/[^/]/.test(url)) {
      throw new UsageError(`--url must be an http(s) URL, got "${url}"`)
    }
    if (!apiKey) {
      throw new UsageError(
        'no API key: pass --api-key or set TOLLGATE_API_KEY (tollgate serve prints the admin key on its first start)',
      )
    }
    let client: TollgateClient
    try {
      client = createClient({ url, apiKey, ...(tenant ? { tenant } : {}) })
    } catch (err) {
      throw new UsageError(`--url: ${(err as Error).message}`)
    }
    try {
      await fn(client)
    } finally {
      await client.close()
    }
  }

  const jsonOption = () => new Option('--json', 'print JSON instead of text')
  /**
   * Commands that talk to a server, and whether they take `--tenant` to act on a tenant with
   * an admin key; they get the server options after their own.
   */
  const clientCommands = new Map<Command, boolean>()
  const clientCommand = (cmd: Command, actAs = true): Command => {
    clientCommands.set(cmd, actAs)
    return cmd
  }
  const serverOptions = (cmd: Command, actAs: boolean): Command => {
    cmd
      .addOption(
        new Option('--url <url>', `Tollgate server (env TOLLGATE_URL, default ${DEFAULT_URL})`),
      )
      .addOption(new Option('--api-key <key>', 'a tg_sk_… API key (env TOLLGATE_API_KEY)'))
    if (actAs) {
      cmd.addOption(
        new Option(
          '--tenant <tenant>',
          'act on this tenant, with an admin key (env TOLLGATE_TENANT)',
        ),
      )
    }
    return cmd
  }
  const idempotencyOption = () =>
    new Option(
      '--idempotency-key <key>',
      'repeat-safe: the same key and arguments apply once',
    ).argParser(parseIdempotencyKey)

  // serve ----------------------------------------------------------------------------------
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
      act(
        async (opts: {
          port: number
          host: string
          dataDir: string
          databaseUrl?: string
          demo?: boolean
          logLevel: LogLevel
        }) => {
          const databaseUrl = opts.databaseUrl ?? io.env.TOLLGATE_DATABASE_URL
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
              command: options.command ?? 'tollgate',
            },
            io,
          )
        },
      ),
    )

  // keys -----------------------------------------------------------------------------------
  const keys = program
    .command('keys')
    .description('manage API keys (needs an admin key)')
    .addHelpText('after', '\nA key is shown once, when it is created; the server keeps its hash.')

  clientCommand(keys.command('create'), false)
    .description('create an API key; prints the key (once) on stdout')
    .requiredOption('--tenant <tenant>', 'the tenant the key acts on')
    .option('--name <name>', 'a label for lists')
    .option('--admin', 'an admin key (manages keys, acts on any tenant)')
    .addOption(jsonOption())
    .action(
      act(async (opts: { tenant: string; name?: string; admin?: boolean }, cmd: Command) => {
        const flags = cmd.opts<ClientFlags>()
        await withClient(cmd, async (client) => {
          const created = await client.createKey({
            tenant: opts.tenant,
            ...(opts.name !== undefined ? { name: opts.name } : {}),
            role: opts.admin ? 'admin' : 'tenant',
          })
          if (flags.json) return void out(formatJson(created))
          // The key alone on stdout, so `KEY=$(tollgate keys create …)` works.
          out(created.key)
          note(
            `created ${created.role} key ${created.id} for tenant "${created.tenant}": it is shown this once, store it now`,
          )
        })
      }),
    )

  clientCommand(keys.command('list'), false)
    .description('list API keys (never the keys themselves)')
    .option('--tenant <tenant>', 'only this tenant’s keys')
    .addOption(jsonOption())
    .action(
      act(async (opts: { tenant?: string }, cmd: Command) => {
        const flags = cmd.opts<ClientFlags>()
        await withClient(cmd, async (client) => {
          // `--tenant` here filters the list; the global one would pick the tenant acted on.
          const list = await client.listKeys(opts.tenant)
          if (flags.json) return void out(formatJson({ keys: list }))
          if (list.length === 0) return void note('no keys')
          out(keysTable(list))
        })
      }),
    )

  clientCommand(keys.command('revoke'), false)
    .description('revoke an API key: it is refused (401) from then on')
    .argument('<id>', 'the key’s id (the part after tg_sk_, as keys list shows it)')
    .addOption(jsonOption())
    .action(
      act(async (id: string, _opts: unknown, cmd: Command) => {
        const flags = cmd.opts<ClientFlags>()
        await withClient(cmd, async (client) => {
          const revoked = await client.revokeKey(id)
          if (flags.json) return void out(formatJson(revoked))
          out(`revoked key ${revoked.id} at ${formatTime(revoked.revokedAt)}`)
        })
      }),
    )

  // grant / debit / balance / ledger -------------------------------------------------------
  clientCommand(program.command('grant'))
    .description('grant credits to an account')
    .argument('<account>', 'the account', parseAccount)
    .argument('<amount>', 'credits to grant', parsePositive)
    .addOption(
      new Option('--validity-days <days>', 'expire this many days from now').argParser(
        parsePositive,
      ),
    )
    .addOption(
      new Option('--expires-at <time>', 'expire at this ISO 8601 time')
        .argParser(parseTime)
        .conflicts('validityDays'),
    )
    .addOption(
      new Option('--priority <p>', 'lower burns first (default 50)').argParser(parseNonNegative),
    )
    .option('--promotional', 'a promotional grant (burns before paid ones at equal priority)')
    .addOption(
      new Option('--metadata <json>', 'a JSON object kept with the grant').argParser(parseMetadata),
    )
    .addOption(idempotencyOption())
    .addOption(jsonOption())
    .action(
      act(
        async (
          account: string,
          amount: number,
          opts: {
            validityDays?: number
            expiresAt?: number
            priority?: number
            promotional?: boolean
            metadata?: Record<string, unknown>
            idempotencyKey?: string
          },
          cmd: Command,
        ) => {
          const flags = cmd.opts<ClientFlags>()
          await withClient(cmd, async (client) => {
            const grant = await client.grant(
              account,
              {
                amount,
                ...(opts.validityDays !== undefined ? { validityDays: opts.validityDays } : {}),
                ...(opts.expiresAt !== undefined ? { expiresAt: opts.expiresAt } : {}),
                ...(opts.priority !== undefined ? { priority: opts.priority } : {}),
                ...(opts.promotional ? { category: 'promotional' as const } : {}),
                ...(opts.metadata ? { metadata: opts.metadata } : {}),
              },
              idempotency(opts),
            )
            if (flags.json) return void out(formatJson(grant))
            const expiry =
              grant.expiresAt === null ? 'no expiry' : `expires ${formatTime(grant.expiresAt)}`
            const repaid =
              grant.repaidDebt > 0 ? `, ${formatCredits(grant.repaidDebt)} repaid debt` : ''
            out(
              `granted ${formatCredits(grant.amount)} credits to ${account} (${grant.category}, ${expiry}${repaid}, grant ${grant.id})${replayedNote(grant.replayed)}`,
            )
            out(availableLine(grant.balance))
          })
        },
      ),
    )

  clientCommand(program.command('debit'))
    .description('spend credits from an account at once (all or nothing)')
    .argument('<account>', 'the account', parseAccount)
    .argument('<amount>', 'credits to spend', parseAmount)
    .addOption(
      new Option('--metadata <json>', 'a JSON object kept in the ledger').argParser(parseMetadata),
    )
    .addOption(idempotencyOption())
    .addOption(jsonOption())
    .action(
      act(
        async (
          account: string,
          amount: number,
          opts: { metadata?: Record<string, unknown>; idempotencyKey?: string },
          cmd: Command,
        ) => {
          const flags = cmd.opts<ClientFlags>()
          await withClient(cmd, async (client) => {
            const debit = await client.debit(
              account,
              { amount, ...(opts.metadata ? { metadata: opts.metadata } : {}) },
              idempotency(opts),
            )
            if (flags.json) return void out(formatJson(debit))
            out(
              `debited ${formatCredits(debit.amount)} credits from ${account}${replayedNote(debit.replayed)}`,
            )
            out(availableLine(debit.balance))
          })
        },
      ),
    )

  clientCommand(program.command('balance'))
    .description('show an account’s balance and its buckets in burn order')
    .argument('<account>', 'the account', parseAccount)
    .addOption(jsonOption())
    .action(
      act(async (account: string, _opts: unknown, cmd: Command) => {
        const flags = cmd.opts<ClientFlags>()
        await withClient(cmd, async (client) => {
          const balance = await client.balance(account)
          if (flags.json) return void out(formatJson(balance))
          out(balanceText(balance))
        })
      }),
    )

  clientCommand(program.command('ledger'))
    .description('show an account’s ledger, newest first')
    .argument('<account>', 'the account', parseAccount)
    .addOption(
      new Option('--limit <n>', 'entries per page, 1–1000').default(20).argParser(parsePositive),
    )
    .option('--cursor <cursor>', 'continue from a previous page')
    .addOption(
      new Option('--types <types>', 'only these types, e.g. grant,debit').argParser(parseTypes),
    )
    .addOption(new Option('--from <time>', 'entries at or after this time').argParser(parseTime))
    .addOption(new Option('--to <time>', 'entries before this time').argParser(parseTime))
    .addOption(jsonOption())
    .action(
      act(
        async (
          account: string,
          opts: {
            limit: number
            cursor?: string
            types?: LedgerEntry['type'][]
            from?: number
            to?: number
          },
          cmd: Command,
        ) => {
          const flags = cmd.opts<ClientFlags>()
          if (opts.limit > 1000) throw new UsageError('--limit must be at most 1000')
          await withClient(cmd, async (client) => {
            const page = await client.ledger(account, {
              limit: opts.limit,
              ...(opts.cursor !== undefined ? { cursor: opts.cursor } : {}),
              ...(opts.types !== undefined ? { types: opts.types } : {}),
              ...(opts.from !== undefined ? { from: opts.from } : {}),
              ...(opts.to !== undefined ? { to: opts.to } : {}),
            })
            if (flags.json) return void out(formatJson(page))
            if (page.entries.length === 0) note(`no ledger entries for ${account}`)
            else out(ledgerTable(page.entries))
            if (page.nextCursor) note(`more: add --cursor ${page.nextCursor}`)
          })
        },
      ),
    )

  // codes / redeem -------------------------------------------------------------------------
  const codes = program.command('codes').description('redeem codes')
  clientCommand(codes.command('create'))
    .description('create redeem codes; prints them once, one per line, on stdout')
    .addOption(
      new Option('--credits <n>', 'credits each code grants')
        .makeOptionMandatory()
        .argParser(parsePositive),
    )
    .addOption(
      new Option('--count <n>', 'how many codes').makeOptionMandatory().argParser(parsePositive),
    )
    .addOption(
      new Option('--prefix <prefix>', 'code prefix, 1–10 letters/digits (default TG)').argParser(
        parsePrefix,
      ),
    )
    .addOption(
      new Option(
        '--validity-days <days>',
        'redeemed credits expire after this many days',
      ).argParser(parsePositive),
    )
    .addOption(
      new Option('--code-expires-at <time>', 'codes cannot be redeemed after this time').argParser(
        parseTime,
      ),
    )
    .addOption(
      new Option(
        '--max-redemptions <n>',
        'accounts that may redeem each code (default 1)',
      ).argParser(parsePositive),
    )
    .addOption(
      new Option('--chunk-size <n>', 'codes per request, 1–10000')
        .default(DEFAULT_CODES_CHUNK)
        .argParser(parsePositive),
    )
    .addOption(
      new Option(
        '--idempotency-key <key>',
        'base of the per-request keys: a repeated run creates nothing new (and shows no codes)',
      ).argParser(parseIdempotencyKey),
    )
    .addOption(jsonOption())
    .addHelpText(
      'after',
      `
Codes go to stdout as they are created; progress and the summary go to stderr, so
  tollgate codes create --credits 50 --count 1000 > codes.txt
writes only codes to the file. The server stores hashes: a code not saved now is lost.`,
    )
    .action(
      act(
        async (
          opts: {
            credits: number
            count: number
            prefix?: string
            validityDays?: number
            codeExpiresAt?: number
            maxRedemptions?: number
            chunkSize: number
            idempotencyKey?: string
          },
          cmd: Command,
        ) => {
          const flags = cmd.opts<ClientFlags>()
          if (opts.chunkSize > 10_000) throw new UsageError('--chunk-size must be at most 10000')
          if (opts.count > 1_000_000) throw new UsageError('--count must be at most 1000000')
          const base: Omit<CodesBody, 'count'> = {
            credits: opts.credits,
            ...(opts.prefix !== undefined ? { prefix: opts.prefix } : {}),
            ...(opts.validityDays !== undefined ? { validityDays: opts.validityDays } : {}),
            ...(opts.codeExpiresAt !== undefined ? { codeExpiresAt: opts.codeExpiresAt } : {}),
            ...(opts.maxRedemptions !== undefined ? { maxRedemptions: opts.maxRedemptions } : {}),
          }
          await withClient(cmd, (client) =>
            createCodesInChunks(client, io, {
              base,
              count: opts.count,
              chunkSize: opts.chunkSize,
              runId: opts.idempotencyKey ?? `cli-codes-${randomUUID()}`,
              json: flags.json === true,
            }),
          )
        },
      ),
    )

  clientCommand(program.command('redeem'))
    .description('redeem a code for an account')
    .argument('<account>', 'the account', parseAccount)
    .argument('<code>', 'the code (case and dashes as printed, or lower case)')
    .addOption(idempotencyOption())
    .addOption(jsonOption())
    .action(
      act(
        async (account: string, code: string, opts: { idempotencyKey?: string }, cmd: Command) => {
          const flags = cmd.opts<ClientFlags>()
          await withClient(cmd, async (client) => {
            const r = await client.redeem(account, code, idempotency(opts))
            if (flags.json) return void out(formatJson(r))
            const expiry = r.expiresAt === null ? 'no expiry' : `expires ${formatTime(r.expiresAt)}`
            out(
              `redeemed ${formatCredits(r.creditsGranted)} credits for ${account} (${expiry})${replayedNote(r.replayed)}`,
            )
            out(availableLine(r.balance))
          })
        },
      ),
    )

  // cycle ----------------------------------------------------------------------------------
  const cycle = program.command('cycle').description('recurring grants')
  clientCommand(cycle.command('start'))
    .description('grant an amount at every period start (replaces an active cycle)')
    .argument('<account>', 'the account', parseAccount)
    .addOption(
      new Option('--amount <n>', 'credits per period')
        .makeOptionMandatory()
        .argParser(parsePositive),
    )
    .addOption(
      new Option('--every <period>', 'day, week, month or a number of days')
        .makeOptionMandatory()
        .argParser(parseEvery),
    )
    .addOption(
      new Option(
        '--rollover-max <n>',
        'carry unspent credits into the next period, up to n',
      ).argParser(parseNonNegative),
    )
    .addOption(
      new Option('--priority <p>', 'lower burns first (default 50)').argParser(parseNonNegative),
    )
    .option('--promotional', 'grant promotional credits')
    .addOption(idempotencyOption())
    .addOption(jsonOption())
    .action(
      act(
        async (
          account: string,
          opts: {
            amount: number
            every: CycleData['every']
            rolloverMax?: number
            priority?: number
            promotional?: boolean
            idempotencyKey?: string
          },
          cmd: Command,
        ) => {
          const flags = cmd.opts<ClientFlags>()
          await withClient(cmd, async (client) => {
            const r = await client.startCycle(
              account,
              {
                amount: opts.amount,
                every: opts.every,
                ...(opts.rolloverMax !== undefined ? { rollover: { max: opts.rolloverMax } } : {}),
                ...(opts.priority !== undefined ? { priority: opts.priority } : {}),
                ...(opts.promotional ? { category: 'promotional' as const } : {}),
              },
              idempotency(opts),
            )
            if (flags.json) return void out(formatJson(r))
            const c = r.cycle
            const rollover = c.rollover
              ? `, rolling over up to ${formatCredits(c.rollover.max)}`
              : ''
            out(
              `${account}: ${formatCredits(c.amount)} credits every ${everyText(c.every)}${rollover} (cycle ${c.id})${r.replaced ? `, replacing cycle ${r.replaced}` : ''}`,
            )
            out(`current period ${formatTime(c.periodStart)} to ${formatTime(c.periodEnd)}`)
            out(availableLine(r.balance))
          })
        },
      ),
    )

  clientCommand(cycle.command('stop'))
    .description('stop future refills; this period’s credits stay until they expire')
    .argument('<account>', 'the account', parseAccount)
    .addOption(idempotencyOption())
    .addOption(jsonOption())
    .action(
      act(async (account: string, opts: { idempotencyKey?: string }, cmd: Command) => {
        const flags = cmd.opts<ClientFlags>()
        await withClient(cmd, async (client) => {
          const r = await client.stopCycle(account, idempotency(opts))
          if (flags.json) return void out(formatJson(r))
          out(
            `stopped ${account}'s cycle ${r.cycle.id}: no refill after ${formatTime(r.cycle.periodEnd)}`,
          )
          out(availableLine(r.balance))
        })
      }),
    )

  for (const [cmd, actAs] of clientCommands) serverOptions(cmd, actAs)
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

function idempotency(opts: { idempotencyKey?: string }): { idempotencyKey?: string } {
  return opts.idempotencyKey !== undefined ? { idempotencyKey: opts.idempotencyKey } : {}
}

function replayedNote(replayed: boolean | undefined): string {
  return replayed ? ' [replayed: this idempotency key was used before, nothing changed]' : ''
}

function availableLine(b: Balance | null | undefined): string {
  if (!b) return ''
  return `${b.account}: ${formatCredits(b.available)} available${b.held > 0 ? `, ${formatCredits(b.held)} held` : ''}${b.debt > 0 ? `, ${formatCredits(b.debt)} debt` : ''}`
}

function everyText(every: CycleData['every']): string {
  return typeof every === 'string' ? every : `${every.days} days`
}

/** The human form of a balance: totals, then the buckets in burn order. */
export function balanceText(b: Balance): string {
  const parts = [
    `${formatCredits(b.available)} available`,
    `${formatCredits(b.held)} held`,
    `${formatCredits(b.total)} total`,
  ]
  if (b.debt > 0) parts.push(`${formatCredits(b.debt)} debt`)
  if (b.low) parts.push('low')
  const head = `${b.account}: ${parts.join(', ')}`
  if (b.buckets.length === 0) return head
  const rows = b.buckets.map((k) => [
    k.id,
    k.category,
    String(k.priority),
    formatCredits(k.remaining),
    formatCredits(k.held),
    formatTime(k.expiresAt, 'never'),
  ])
  return `${head}\n\n${formatTable(
    [
      { header: 'BUCKET' },
      { header: 'CATEGORY' },
      { header: 'PRIORITY', align: 'right' },
      { header: 'REMAINING', align: 'right' },
      { header: 'HELD', align: 'right' },
      { header: 'EXPIRES' },
    ],
    rows,
  )}`
}

/** The human form of ledger entries: one row each, with the balance after it. */
export function ledgerTable(entries: readonly LedgerEntry[]): string {
  const rows = entries.map((e) => [
    formatTime(e.at),
    e.type,
    formatDelta(e.delta),
    e.heldDelta === 0 ? '' : formatDelta(e.heldDelta),
    formatCredits(e.balanceAfter),
    e.holdId ?? e.grantId ?? e.redemptionId ?? e.cycleId ?? '',
    e.reason ?? '',
  ])
  return formatTable(
    [
      { header: 'AT' },
      { header: 'TYPE' },
      { header: 'DELTA', align: 'right' },
      { header: 'HELD', align: 'right' },
      { header: 'BALANCE', align: 'right' },
      { header: 'REF' },
      { header: 'REASON' },
    ],
    rows,
  )
}

function keysTable(list: readonly ApiKeyInfo[]): string {
  return formatTable(
    [
      { header: 'ID' },
      { header: 'TENANT' },
      { header: 'ROLE' },
      { header: 'NAME' },
      { header: 'CREATED' },
      { header: 'REVOKED' },
    ],
    list.map((k) => [
      k.id,
      k.tenant,
      k.role,
      k.name,
      formatTime(k.createdAt),
      formatTime(k.revokedAt),
    ]),
  )
}

interface ChunkPlan {
  base: Omit<CodesBody, 'count'>
  count: number
  chunkSize: number
  /** Chunk `i` is sent with `Idempotency-Key: <runId>:<i>`, so a retried chunk is created once. */
  runId: string
  json: boolean
}

/**
 * `codes create` in chunks: one `POST /v1/codes` per chunk, each under its own idempotency key
 * derived from the run id, retried on connection errors and 5xx. Codes are printed as their
 * chunk arrives (a failure later loses nothing already shown); progress goes to stderr.
 */
async function createCodesInChunks(
  client: TollgateClient,
  io: CliIo,
  plan: ChunkPlan,
): Promise<void> {
  const chunks = Math.ceil(plan.count / plan.chunkSize)
  const showProgress = chunks > 1
  const all: string[] = []
  const batchIds: string[] = []
  let created = 0
  let lost = 0
  let first: CreateCodesResult | undefined
  const progress = (done: boolean) => {
    if (!showProgress) return
    const text = `codes: ${formatCredits(created)}/${formatCredits(plan.count)}`
    if (io.stderr.isTTY) io.stderr.write(`\r${text}${done ? '\n' : ''}`)
    else io.stderr.write(`${text}\n`)
  }
  progress(false)
  for (let i = 0; i < chunks; i++) {
    const count = Math.min(plan.chunkSize, plan.count - i * plan.chunkSize)
    let answer: { body: CreateCodesResult; replayed: boolean }
    try {
      answer = await withRetries(() =>
        client.createCodes({ ...plan.base, count }, { idempotencyKey: `${plan.runId}:${i}` }),
      )
    } catch (err) {
      if (showProgress && io.stderr.isTTY) io.stderr.write('\n')
      if (created > 0) {
        const where = plan.json ? 'are lost (no JSON was printed)' : 'were printed above'
        io.stderr.write(
          `${formatCredits(created)} of ${formatCredits(plan.count)} codes were created and ${where}; rerun with --idempotency-key ${plan.runId} to retry the rest without duplicates\n`,
        )
      }
      throw err
    }
    const r = answer.body
    first ??= r
    batchIds.push(r.batchId)
    if (r.codes.length < count) lost += count - r.codes.length
    created += count
    if (plan.json) all.push(...r.codes)
    else if (r.codes.length > 0) io.stdout.write(`${r.codes.join('\n')}\n`)
    progress(i === chunks - 1)
  }
  if (plan.json) {
    io.stdout.write(
      formatJson({
        count: plan.count,
        credits: plan.base.credits,
        codeExpiresAt: first?.codeExpiresAt ?? null,
        batchIds,
        codes: all,
      }),
    )
  }
  io.stderr.write(
    `created ${formatCredits(plan.count)} codes of ${formatCredits(plan.base.credits)} credits each (${batchIds.length} ${batchIds.length === 1 ? 'batch' : 'batches'})\n`,
  )
  if (lost > 0) {
    io.stderr.write(
      `warning: ${formatCredits(lost)} of them were created by an earlier run with the same idempotency key; their codes were shown then and cannot be shown again\n`,
    )
  }
}

/** Retries `fn` on connection errors and 5xx answers: 3 tries, 200 ms then 400 ms apart. */
async function withRetries<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn()
    } catch (err) {
      const transient =
        err instanceof ConnectionError || (err instanceof ServerError && err.status >= 500)
      if (!transient || attempt >= 3) throw err
      // Not unref'd: this wait is the command's work, and nothing else keeps the process alive.
      await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** (attempt - 1)))
    }
  }
}
