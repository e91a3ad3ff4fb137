/**
 * The command kit: what every `tollgate` command shares, so a command file says only what is
 * its own (its options, its request, its text). Failures become one `error: …` line and an
 * exit code; commands that talk to a server get one client, made from `--url`/`--api-key`/
 * `--tenant` and the environment, and print the answer as JSON with `--json`, as text without.
 */
import type { Balance } from '@tollgate/core'
import { InvalidInputError, isTollgateError } from '@tollgate/core'
import { parseApiKey } from '@tollgate/server'
import { Argument, type Command, CommanderError, Option } from 'commander'
import {
  HEADER_TEXT,
  parseAccount,
  parseIdempotencyKey,
  parseMetadata,
  parseNonNegative,
} from './args.js'
import { createClient, DEFAULT_URL, type TollgateClient } from './client.js'
import { formatCredits, formatJson } from './format.js'
import type { CliIo } from './io.js'

/** Exit codes of the CLI. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const

/** A mistake in how the CLI was called, found by an action (exit 2). */
export class UsageError extends Error {}

/** The options every command that talks to a server has. */
export interface ClientFlags {
  url?: string
  apiKey?: string
  tenant?: string
  json?: boolean
}

/**
 * The action of a command that talks to a server. Commander calls it with the command's
 * arguments `A`, then its options `O`; the kit makes the client, calls {@link ClientAction.call}, and prints
 * the answer: itself as JSON under `--json`, else through {@link ClientAction.text}.
 */
export interface ClientAction<A extends unknown[], O, T> {
  /** Checks that need no server, run before the client is made (a usage error exits 2). */
  check?: (opts: O, args: A) => void
  /** The request(s); the answer is what `--json` prints. */
  call: (client: TollgateClient, args: A, opts: O) => Promise<T>
  /** The answer for people, written with the kit's `out` and `note`. */
  text: (answer: T, args: A, opts: O) => void
}

/** What {@link createCommandKit} returns: the shared parts of every command. */
export interface CommandKit {
  readonly io: CliIo
  /** Writes `text` to stdout, newline-terminated. */
  out(text: string): void
  /** Writes a line to stderr: notes, hints and progress, never the command's result. */
  note(text: string): void
  /**
   * Wraps an action: a failure becomes one `error: …` line on stderr and a `CommanderError`
   * whose `exitCode` is 2 for usage mistakes, 1 for anything else.
   */
  action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void>
  /** An action for a command made by {@link CommandKit.clientCommand}; see {@link ClientAction}. */
  clientAction<A extends unknown[], O, T>(
    spec: ClientAction<A, O, T>,
  ): (...params: unknown[]) => Promise<void>
  /** Runs `fn` with a client from `cmd`'s options and the environment; closes it after. */
  withClient(cmd: Command, fn: (client: TollgateClient) => Promise<void>): Promise<void>
  /**
   * A subcommand of `parent` that talks to a server. `actAs: false` for the `keys` commands,
   * whose own `--tenant` names a key's tenant, not the tenant acted on.
   */
  clientCommand(parent: Command, name: string, options?: { actAs?: boolean }): Command
  /**
   * Adds `--json`, `--url`, `--api-key` (and `--tenant`) to every client command. Called once
   * every command is defined, so these come after each command's own options in its help.
   */
  addClientOptions(): void
}

/**
 * The kit of one program, writing to `io`.
 * @example
 * const kit = createCommandKit(processIo())
 * kit.clientCommand(program, 'balance')
 *   .addArgument(accountArgument())
 *   .action(
 *     kit.clientAction({
 *       call: (client, [account]: [string]) => client.balance(account),
 *       text: (balance) => kit.out(balanceText(balance)),
 *     }),
 *   )
 * kit.addClientOptions()
 */
export function createCommandKit(io: CliIo): CommandKit {
  const out = (text: string) => {
    io.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
  }
  const note = (text: string) => {
    io.stderr.write(`${text}\n`)
  }
  /** Client commands and whether their `--tenant` picks the tenant acted on. */
  const clientCommands = new Map<Command, boolean>()

  const action =
    <A extends unknown[]>(fn: (...args: A) => Promise<void>) =>
    async (...args: A): Promise<void> => {
      try {
        await fn(...args)
      } catch (err) {
        if (err instanceof CommanderError) throw err
        const { usage, message } = describeFailure(err)
        note(`error: ${message}`)
        throw new CommanderError(
          usage ? EXIT.usage : EXIT.failed,
          usage ? 'tollgate.usage' : 'tollgate.failed',
          message,
        )
      }
    }

  const withClient = async (cmd: Command, fn: (client: TollgateClient) => Promise<void>) => {
    const client = connect(cmd.opts<ClientFlags>(), clientCommands.get(cmd) === true, io.env)
    try {
      await fn(client)
    } finally {
      await client.close()
    }
  }

  return {
    io,
    out,
    note,
    action,
    withClient,
    clientAction: <A extends unknown[], O, T>(spec: ClientAction<A, O, T>) =>
      // Commander passes the arguments, then the options, then the command itself.
      action(async (...params: unknown[]) => {
        const cmd = params.at(-1) as Command
        const opts = params.at(-2) as O & ClientFlags
        const args = params.slice(0, -2) as A
        spec.check?.(opts, args)
        await withClient(cmd, async (client) => {
          const answer = await spec.call(client, args, opts)
          if (opts.json) out(formatJson(answer))
          else spec.text(answer, args, opts)
        })
      }),
    clientCommand: (parent, name, options = {}) => {
      const cmd = parent.command(name)
      clientCommands.set(cmd, options.actAs ?? true)
      return cmd
    },
    addClientOptions: () => {
      for (const [cmd, actAs] of clientCommands) {
        cmd
          .addOption(jsonOption())
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
      }
    },
  }
}

/** How a failure is reported: its one line, and whether it is the caller's mistake (exit 2). */
function describeFailure(err: unknown): { usage: boolean; message: string } {
  if (err instanceof UsageError) return { usage: true, message: err.message }
  // Raised here, before any request (the client reports the server's refusals as its own
  // errors): bad input is a usage mistake; the line leads with the code, as a refusal's does.
  if (isTollgateError(err)) {
    return { usage: err.code === 'invalid_input', message: `${err.code}: ${err.message}` }
  }
  return { usage: false, message: err instanceof Error ? err.message : String(err) }
}

/**
 * A client from the flags and the environment, every setting checked first: a setting the
 * request could not carry (a key with a trailing newline, say) fails here as a usage error
 * naming it, not later as an unreachable server.
 */
function connect(
  flags: ClientFlags,
  actAs: boolean,
  env: Record<string, string | undefined>,
): TollgateClient {
  const url = flags.url ?? env.TOLLGATE_URL ?? DEFAULT_URL
  const apiKey = flags.apiKey ?? env.TOLLGATE_API_KEY
  const tenant = actAs ? (flags.tenant ?? env.TOLLGATE_TENANT) : undefined
  if (!/^https?:\/\/[^/]/.test(url)) {
    throw new UsageError(`--url must be an http(s) URL, got "${url}"`)
  }
  if (!apiKey) {
    throw new UsageError(
      'no API key: pass --api-key or set TOLLGATE_API_KEY (tollgate serve prints the admin key on its first start)',
    )
  }
  checkApiKey(apiKey, flags.apiKey !== undefined ? '--api-key' : 'TOLLGATE_API_KEY')
  if (tenant) checkTenant(tenant, flags.tenant !== undefined ? '--tenant' : 'TOLLGATE_TENANT')
  try {
    return createClient({ url, apiKey, ...(tenant ? { tenant } : {}) })
  } catch (err) {
    throw new UsageError(`--url: ${(err as Error).message}`)
  }
}

/**
 * Refuses a key that cannot travel in the `Authorization` header (the rule `httpStore` applies)
 * or is not shaped like a server's key (`tg_sk_<id>_<secret>`, which the server would refuse).
 * The key itself is never echoed: it is a secret.
 */
function checkApiKey(apiKey: string, source: string): void {
  if (!/^[\x21-\x7e]+$/.test(apiKey)) {
    throw new InvalidInputError(
      'apiKey',
      `${source} must be printable ASCII without spaces or line breaks`,
    )
  }
  if (parseApiKey(apiKey) === null) {
    throw new InvalidInputError(
      'apiKey',
      `${source} is not a Tollgate API key (tg_sk_<id>_<secret>)`,
    )
  }
}

/** Refuses a tenant the `Tollgate-Tenant` header cannot carry (Latin-1, as `httpStore`). */
function checkTenant(tenant: string, source: string): void {
  if (!HEADER_TEXT.test(tenant)) {
    throw new InvalidInputError(
      'tenant',
      `${source} must be Latin-1 text without control characters to travel in the Tollgate-Tenant header`,
    )
  }
}

/**
 * `value` without its undefined fields: an optional flag becomes a body field only when given.
 * @example present({ priority: opts.priority, cursor: opts.cursor }) // {} when neither was given
 */
export function present<T extends Record<string, unknown>>(
  value: T,
): { [K in keyof T]?: Exclude<T[K], undefined> } {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = v
  return out as { [K in keyof T]?: Exclude<T[K], undefined> }
}

/** `--json`: every client command has it (added by `addClientOptions`). */
function jsonOption(): Option {
  return new Option('--json', 'print JSON instead of text')
}

/** `--idempotency-key`, with the description of a single mutation unless told. */
export function idempotencyOption(
  description = 'repeat-safe: the same key and arguments apply once',
): Option {
  return new Option('--idempotency-key <key>', description).argParser(parseIdempotencyKey)
}

/** The `<account>` argument. */
export function accountArgument(): Argument {
  return new Argument('<account>', 'the account').argParser(parseAccount)
}

/** `--priority` of a grant. */
export function priorityOption(): Option {
  return new Option('--priority <p>', 'lower burns first (default 50)').argParser(parseNonNegative)
}

/** `--metadata`, a JSON object. */
export function metadataOption(description: string): Option {
  return new Option('--metadata <json>', description).argParser(parseMetadata)
}

/** The note after a mutation's line when the server replayed it. */
export function replayedNote(replayed: boolean | undefined): string {
  return replayed ? ' [replayed: this idempotency key was used before, nothing changed]' : ''
}

/** `alice: 950 available, 50 held`: the line after a mutation; empty without a balance. */
export function availableLine(b: Balance | null | undefined): string {
  if (!b) return ''
  return `${b.account}: ${formatCredits(b.available)} available${b.held > 0 ? `, ${formatCredits(b.held)} held` : ''}${b.debt > 0 ? `, ${formatCredits(b.debt)} debt` : ''}`
}
