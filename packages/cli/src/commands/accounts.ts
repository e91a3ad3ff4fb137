/** `tollgate accounts`: the tenant's accounts, for an operator. */
import type { AccountSummary, AccountsPage } from '@tollgate/core'
import { type Command, Option } from 'commander'
import { parsePositive } from '../args.js'
import type { AccountsParams, TollgateClient } from '../client.js'
import { type CommandKit, present, UsageError } from '../command-kit.js'
import { formatCredits, formatTable, formatTime } from '../format.js'

/** The options as commander parses them: the query, and `--all`. */
type AccountsFlags = AccountsParams & { all?: boolean }

/** Accounts `--all` reads at most: a tenant past it is paged with --cursor instead. */
export const MAX_ALL_ACCOUNTS = 100_000
/** Rows per page without --limit; `--all` reads pages of the largest size the server allows. */
const DEFAULT_LIMIT = 50
const ALL_PAGE = 1000

/**
 * Every page from the cursor on, up to {@link MAX_ALL_ACCOUNTS} accounts; `nextCursor` is where
 * it stopped (null when it read to the end).
 */
async function readAll(client: TollgateClient, query: AccountsParams): Promise<AccountsPage> {
  const accounts: AccountSummary[] = []
  let cursor = query.cursor
  for (;;) {
    const page = await client.accounts({
      ...query,
      limit: ALL_PAGE,
      ...present({ cursor }),
    })
    accounts.push(...page.accounts)
    if (page.nextCursor === null || accounts.length >= MAX_ALL_ACCOUNTS) {
      return { accounts, nextCursor: page.nextCursor }
    }
    cursor = page.nextCursor
  }
}

/**
 * Adds `accounts` to `program`.
 * @example addAccountsCommands(program, kit)
 */
export function addAccountsCommands(program: Command, kit: CommandKit): void {
  const { out, note } = kit

  kit
    .clientCommand(program, 'accounts')
    .description('list the tenant’s accounts (balances as of each account’s last change)')
    .option('--prefix <prefix>', 'only accounts whose id starts with this')
    .option('--low', 'only accounts at or below their low-balance threshold')
    .option('--in-debt', 'only accounts with debt')
    .option('--has-holds', 'only accounts with credits held')
    .addOption(
      new Option('--sort <by>', 'account (id), balance (available) or activity (last change)')
        .choices(['account', 'balance', 'activity'])
        .default('account'),
    )
    .addOption(
      new Option('--order <order>', 'default asc by account, desc by balance or activity').choices([
        'asc',
        'desc',
      ]),
    )
    .addOption(
      new Option('--limit <n>', `accounts per page, 1–1000 (default ${DEFAULT_LIMIT})`).argParser(
        parsePositive,
      ),
    )
    .option('--cursor <cursor>', 'continue from a previous page')
    .addOption(
      new Option(
        '--all',
        `every page (at most ${MAX_ALL_ACCOUNTS.toLocaleString('en-US')})`,
      ).conflicts('limit'),
    )
    .action(
      kit.clientAction({
        check: (opts: AccountsFlags) => {
          if (opts.limit !== undefined && opts.limit > 1000) {
            throw new UsageError('--limit must be at most 1000')
          }
        },
        call: (client, _args: [], opts: AccountsFlags) => {
          const query = {
            ...present({
              cursor: opts.cursor,
              prefix: opts.prefix,
              sort: opts.sort,
              order: opts.order,
            }),
            // A flag given filters for true; left out, it does not filter.
            ...(opts.low ? { low: true } : {}),
            ...(opts.inDebt ? { inDebt: true } : {}),
            ...(opts.hasHolds ? { hasHolds: true } : {}),
          }
          return opts.all
            ? readAll(client, query)
            : client.accounts({ ...query, limit: opts.limit ?? DEFAULT_LIMIT })
        },
        text: (page) => {
          if (page.accounts.length === 0) note('no accounts')
          else out(accountsTable(page.accounts))
          if (page.nextCursor) note(`more: add --cursor ${page.nextCursor}`)
        },
      }),
    )
}

/**
 * The human form of an accounts page: one row per account.
 * @example out(accountsTable((await client.accounts()).accounts))
 */
export function accountsTable(accounts: readonly AccountSummary[]): string {
  const rows = accounts.map((a) => [
    a.account,
    formatCredits(a.available),
    formatCredits(a.held),
    formatCredits(a.total),
    a.debt === 0 ? '' : formatCredits(a.debt),
    a.low ? 'low' : '',
    formatTime(a.updatedAt),
  ])
  return formatTable(
    [
      { header: 'ACCOUNT' },
      { header: 'AVAILABLE', align: 'right' },
      { header: 'HELD', align: 'right' },
      { header: 'TOTAL', align: 'right' },
      { header: 'DEBT', align: 'right' },
      { header: 'LOW' },
      { header: 'UPDATED' },
    ],
    rows,
  )
}
