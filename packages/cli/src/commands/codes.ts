/** `tollgate codes create` and `tollgate redeem`: redeem codes, made in chunks and redeemed. */
import { randomUUID } from 'node:crypto'
import { type Command, Option } from 'commander'
import { parsePositive, parsePrefix, parseTime } from '../args.js'
import { createCodesInChunks } from '../codes-in-chunks.js'
import {
  accountArgument,
  availableLine,
  type CommandKit,
  idempotencyOption,
  present,
  replayedNote,
  UsageError,
} from '../command-kit.js'
import { formatCredits, formatTime } from '../format.js'

/** Codes per `POST /v1/codes` when `codes create` does not say. */
export const DEFAULT_CODES_CHUNK = 100

interface CodesCreateFlags {
  credits: number
  count: number
  prefix?: string
  validityDays?: number
  codeExpiresAt?: number
  maxRedemptions?: number
  chunkSize: number
  idempotencyKey?: string
  json?: boolean
}

/**
 * Adds `codes create` and `redeem` to `program`.
 * @example addCodesCommands(program, kit)
 */
export function addCodesCommands(program: Command, kit: CommandKit): void {
  const codes = program.command('codes').description('redeem codes')
  kit
    .clientCommand(codes, 'create')
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
      idempotencyOption(
        'base of the per-request keys: a repeated run creates nothing new (and shows no codes)',
      ),
    )
    .addHelpText(
      'after',
      `
Codes go to stdout as they are created; progress and the summary go to stderr, so
  tollgate codes create --credits 50 --count 1000 > codes.txt
writes only codes to the file. The server stores hashes: a code not saved now is lost.`,
    )
    // Not a clientAction: codes are printed chunk by chunk as they arrive, not as one answer.
    .action(
      kit.action(async (opts: CodesCreateFlags, cmd: Command) => {
        if (opts.chunkSize > 10_000) throw new UsageError('--chunk-size must be at most 10000')
        if (opts.count > 1_000_000) throw new UsageError('--count must be at most 1000000')
        await kit.withClient(cmd, (client) =>
          createCodesInChunks(client, kit.io, {
            base: {
              credits: opts.credits,
              ...present({
                prefix: opts.prefix,
                validityDays: opts.validityDays,
                codeExpiresAt: opts.codeExpiresAt,
                maxRedemptions: opts.maxRedemptions,
              }),
            },
            count: opts.count,
            chunkSize: opts.chunkSize,
            runId: opts.idempotencyKey ?? `cli-codes-${randomUUID()}`,
            json: opts.json === true,
          }),
        )
      }),
    )

  kit
    .clientCommand(program, 'redeem')
    .description('redeem a code for an account')
    .addArgument(accountArgument())
    .argument('<code>', 'the code (case and dashes as printed, or lower case)')
    .addOption(idempotencyOption())
    .action(
      kit.clientAction({
        call: (client, [account, code]: [string, string], opts: { idempotencyKey?: string }) =>
          client.redeem(account, code, present({ idempotencyKey: opts.idempotencyKey })),
        text: (r, [account]) => {
          const expiry = r.expiresAt === null ? 'no expiry' : `expires ${formatTime(r.expiresAt)}`
          kit.out(
            `redeemed ${formatCredits(r.creditsGranted)} credits for ${account} (${expiry})${replayedNote(r.replayed)}`,
          )
          kit.out(availableLine(r.balance))
        },
      }),
    )
}
