/** `tollgate cycle start | stop`: an account's recurring grants. */
import type { CycleData } from '@tollgate/core'
import { type Command, Option } from 'commander'
import { parseEvery, parseNonNegative, parsePositive } from '../args.js'
import {
  accountArgument,
  availableLine,
  type CommandKit,
  idempotencyOption,
  present,
  priorityOption,
} from '../command-kit.js'
import { formatCredits, formatTime } from '../format.js'

interface CycleStartFlags {
  amount: number
  every: CycleData['every']
  rolloverMax?: number
  priority?: number
  promotional?: boolean
  idempotencyKey?: string
}

/**
 * Adds `cycle start` and `cycle stop` to `program`.
 * @example addCycleCommands(program, kit)
 */
export function addCycleCommands(program: Command, kit: CommandKit): void {
  const { out } = kit
  const cycle = program.command('cycle').description('recurring grants')

  kit
    .clientCommand(cycle, 'start')
    .description('grant an amount at every period start (replaces an active cycle)')
    .addArgument(accountArgument())
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
    .addOption(priorityOption())
    .option('--promotional', 'grant promotional credits')
    .addOption(idempotencyOption())
    .action(
      kit.clientAction({
        call: (client, [account]: [string], opts: CycleStartFlags) =>
          client.startCycle(
            account,
            {
              amount: opts.amount,
              every: opts.every,
              ...present({
                rollover: opts.rolloverMax !== undefined ? { max: opts.rolloverMax } : undefined,
                priority: opts.priority,
                category: opts.promotional ? ('promotional' as const) : undefined,
              }),
            },
            present({ idempotencyKey: opts.idempotencyKey }),
          ),
        text: (r, [account]) => {
          const c = r.cycle
          const rollover = c.rollover ? `, rolling over up to ${formatCredits(c.rollover.max)}` : ''
          out(
            `${account}: ${formatCredits(c.amount)} credits every ${everyText(c.every)}${rollover} (cycle ${c.id})${r.replaced ? `, replacing cycle ${r.replaced}` : ''}`,
          )
          out(`current period ${formatTime(c.periodStart)} to ${formatTime(c.periodEnd)}`)
          out(availableLine(r.balance))
        },
      }),
    )

  kit
    .clientCommand(cycle, 'stop')
    .description('stop future refills; this period’s credits stay until they expire')
    .addArgument(accountArgument())
    .addOption(idempotencyOption())
    .action(
      kit.clientAction({
        call: (client, [account]: [string], opts: { idempotencyKey?: string }) =>
          client.stopCycle(account, present({ idempotencyKey: opts.idempotencyKey })),
        text: (r, [account]) => {
          out(
            `stopped ${account}'s cycle ${r.cycle.id}: no refill after ${formatTime(r.cycle.periodEnd)}`,
          )
          out(availableLine(r.balance))
        },
      }),
    )
}

function everyText(every: CycleData['every']): string {
  return typeof every === 'string' ? every : `${every.days} days`
}
