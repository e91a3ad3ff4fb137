/**
 * `tollgate settings show | set`: the tenant's default settings (stored with the ledger, so
 * every meter, the REST API and the CLI report the same `low`) and an account's own.
 */
import type { AccountSettings, Balance } from '@tollgate/core'
import { Argument, type Command, InvalidArgumentError, Option } from 'commander'
import { parseAccount, parseAmount } from '../args.js'
import { availableLine, type CommandKit, UsageError } from '../command-kit.js'
import { formatCredits } from '../format.js'

interface SettingsFlags {
  lowBalanceThreshold?: number | null
  overdraftLimit?: number | null
}

/** A setting's value: credits, or `none` to clear it. */
function parseSetting(value: string): number | null {
  if (value === 'none') return null
  try {
    return parseAmount(value)
  } catch {
    throw new InvalidArgumentError('must be a whole number of credits, or none')
  }
}

function optionalAccount(): Argument {
  return new Argument('[account]', 'an account (default: the tenant)').argParser(parseAccount)
}

function settingText(value: number | null, unset: string): string {
  return value === null ? unset : formatCredits(value)
}

function settingsLines(s: AccountSettings, unset: string): string[] {
  return [
    `low balance threshold: ${settingText(s.lowBalanceThreshold, unset)}`,
    `overdraft limit: ${settingText(s.overdraftLimit, unset)}`,
  ]
}

/**
 * Adds `settings show` and `settings set` to `program`.
 * @example addSettingsCommands(program, kit)
 */
export function addSettingsCommands(program: Command, kit: CommandKit): void {
  const { out } = kit
  const settings = program
    .command('settings')
    .description("the tenant's default settings, or an account's own")

  kit
    .clientCommand(settings, 'show')
    .description("show the tenant's stored defaults, or an account's settings and those in effect")
    .addArgument(optionalAccount())
    .action(
      kit.clientAction({
        call: (client, [account]: [string | undefined]) =>
          account === undefined ? client.tenantSettings() : client.accountSettings(account),
        text: (s, [account]) => {
          if (account === undefined) {
            out('tenant defaults:')
            for (const line of settingsLines(s, "not stored (each meter's option)"))
              out(`  ${line}`)
            return
          }
          const view = s as AccountSettings & { effective: AccountSettings }
          out(`${account}:`)
          for (const line of settingsLines(view, 'default')) out(`  ${line}`)
          out('in effect:')
          for (const line of settingsLines(view.effective, 'off')) out(`  ${line}`)
        },
      }),
    )

  kit
    .clientCommand(settings, 'set')
    .description("store the tenant's defaults, or an account's own settings (none clears one)")
    .addArgument(optionalAccount())
    .addOption(
      new Option('--low-balance-threshold <n>', '`low` is available ≤ n (none: clear)').argParser(
        parseSetting,
      ),
    )
    .addOption(
      new Option(
        '--overdraft-limit <n>',
        'most debt an overdraft commit may create (none: clear)',
      ).argParser(parseSetting),
    )
    .action(
      kit.clientAction({
        check: (opts: SettingsFlags) => {
          if (opts.lowBalanceThreshold === undefined && opts.overdraftLimit === undefined) {
            throw new UsageError('give --low-balance-threshold, --overdraft-limit or both')
          }
        },
        call: async (client, [account]: [string | undefined], opts: SettingsFlags) => {
          const body: Partial<AccountSettings> = {}
          if (opts.lowBalanceThreshold !== undefined)
            body.lowBalanceThreshold = opts.lowBalanceThreshold
          if (opts.overdraftLimit !== undefined) body.overdraftLimit = opts.overdraftLimit
          return account === undefined
            ? client.putTenantSettings(body)
            : client.putAccountSettings(account, body)
        },
        text: (s, [account]) => {
          out(account === undefined ? 'tenant defaults stored:' : `${account}:`)
          const unset = account === undefined ? "not stored (each meter's option)" : 'default'
          for (const line of settingsLines(s, unset)) out(`  ${line}`)
          if ('balance' in s) out(availableLine(s.balance as Balance))
        },
      }),
    )
}
