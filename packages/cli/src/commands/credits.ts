/** `tollgate grant | debit | balance | ledger`: an account's credits and its ledger. */
import type { Balance, LedgerEntry } from '@tollgate/core'
import { type Command, Option } from 'commander'
import { parseAmount, parsePositive, parseTime, parseTypes } from '../args.js'
import {
  accountArgument,
  availableLine,
  type CommandKit,
  idempotencyOption,
  metadataOption,
  present,
  priorityOption,
  replayedNote,
  UsageError,
} from '../command-kit.js'
import { formatCredits, formatDelta, formatTable, formatTime } from '../format.js'

interface GrantFlags {
  validityDays?: number
  expiresAt?: number
  priority?: number
  promotional?: boolean
  metadata?: Record<string, unknown>
  idempotencyKey?: string
}

interface LedgerFlags {
  limit: number
  cursor?: string
  types?: LedgerEntry['type'][]
  from?: number
  to?: number
}

/**
 * Adds `grant`, `debit`, `balance` and `ledger` to `program`.
 * @example addCreditsCommands(program, kit)
 */
export function addCreditsCommands(program: Command, kit: CommandKit): void {
  const { out, note } = kit

  kit
    .clientCommand(program, 'grant')
    .description('grant credits to an account')
    .addArgument(accountArgument())
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
    .addOption(priorityOption())
    .option('--promotional', 'a promotional grant (burns before paid ones at equal priority)')
    .addOption(metadataOption('a JSON object kept with the grant'))
    .addOption(idempotencyOption())
    .action(
      kit.clientAction({
        call: (client, [account, amount]: [string, number], opts: GrantFlags) =>
          client.grant(
            account,
            {
              amount,
              ...present({
                validityDays: opts.validityDays,
                expiresAt: opts.expiresAt,
                priority: opts.priority,
                category: opts.promotional ? ('promotional' as const) : undefined,
                metadata: opts.metadata,
              }),
            },
            present({ idempotencyKey: opts.idempotencyKey }),
          ),
        text: (grant, [account]) => {
          const expiry =
            grant.expiresAt === null ? 'no expiry' : `expires ${formatTime(grant.expiresAt)}`
          const repaid =
            grant.repaidDebt > 0 ? `, ${formatCredits(grant.repaidDebt)} repaid debt` : ''
          out(
            `granted ${formatCredits(grant.amount)} credits to ${account} (${grant.category}, ${expiry}${repaid}, grant ${grant.id})${replayedNote(grant.replayed)}`,
          )
          out(availableLine(grant.balance))
        },
      }),
    )

  kit
    .clientCommand(program, 'debit')
    .description('spend credits from an account at once (all or nothing)')
    .addArgument(accountArgument())
    .argument('<amount>', 'credits to spend', parseAmount)
    .addOption(metadataOption('a JSON object kept in the ledger'))
    .addOption(idempotencyOption())
    .action(
      kit.clientAction({
        call: (
          client,
          [account, amount]: [string, number],
          opts: { metadata?: Record<string, unknown>; idempotencyKey?: string },
        ) =>
          client.debit(
            account,
            { amount, ...present({ metadata: opts.metadata }) },
            present({ idempotencyKey: opts.idempotencyKey }),
          ),
        text: (debit, [account]) => {
          out(
            `debited ${formatCredits(debit.amount)} credits from ${account}${replayedNote(debit.replayed)}`,
          )
          out(availableLine(debit.balance))
        },
      }),
    )

  kit
    .clientCommand(program, 'balance')
    .description('show an account’s balance and its buckets in burn order')
    .addArgument(accountArgument())
    .action(
      kit.clientAction({
        call: (client, [account]: [string]) => client.balance(account),
        text: (balance) => out(balanceText(balance)),
      }),
    )

  kit
    .clientCommand(program, 'ledger')
    .description('show an account’s ledger, newest first')
    .addArgument(accountArgument())
    .addOption(
      new Option('--limit <n>', 'entries per page, 1–1000').default(20).argParser(parsePositive),
    )
    .option('--cursor <cursor>', 'continue from a previous page')
    .addOption(
      new Option('--types <types>', 'only these types, e.g. grant,debit').argParser(parseTypes),
    )
    .addOption(new Option('--from <time>', 'entries at or after this time').argParser(parseTime))
    .addOption(new Option('--to <time>', 'entries before this time').argParser(parseTime))
    .action(
      kit.clientAction({
        check: (opts: LedgerFlags) => {
          if (opts.limit > 1000) throw new UsageError('--limit must be at most 1000')
        },
        call: (client, [account]: [string], opts: LedgerFlags) =>
          client.ledger(account, {
            limit: opts.limit,
            ...present({ cursor: opts.cursor, types: opts.types, from: opts.from, to: opts.to }),
          }),
        text: (page, [account]) => {
          if (page.entries.length === 0) note(`no ledger entries for ${account}`)
          else out(ledgerTable(page.entries))
          if (page.nextCursor) note(`more: add --cursor ${page.nextCursor}`)
        },
      }),
    )
}

/**
 * The human form of a balance: totals, then the buckets in burn order.
 * @example out(balanceText(await client.balance('alice'))) // alice: 950 available, 0 held, …
 */
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

/**
 * The human form of ledger entries: one row each, with the balance after it.
 * @example out(ledgerTable((await client.ledger('alice')).entries))
 */
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
