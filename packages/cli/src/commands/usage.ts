/**
 * `tollgate usage`: an account's (or with `--all`, the tenant's) credits spent per UTC hour,
 * day or month as a bar chart in the terminal, with the window's totals; `--group-by` adds the
 * spend per value of a metadata key. The figures are the server's (docs/usage.md).
 */
import type { UsageInterval, UsagePeriod, UsageReport } from '@tollgate/core'
import { Argument, type Command, InvalidArgumentError, Option } from 'commander'
import { parseAccount, parseTime } from '../args.js'
import { type CommandKit, present, UsageError } from '../command-kit.js'
import { formatCredits, formatTable } from '../format.js'

interface UsageFlags {
  all?: boolean
  interval: UsageInterval
  from?: number
  to?: number
  groupBy?: string
  width: number
}

/** Widest bar: a terminal line holds the label, the bar and the figure. */
const MAX_WIDTH = 200
const MIN_WIDTH = 4
/** Eighths of a cell, for bars finer than a whole block. */
const EIGHTHS = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉']

function parseWidth(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < MIN_WIDTH || n > MAX_WIDTH) {
    throw new InvalidArgumentError(`must be a whole number of columns, ${MIN_WIDTH}–${MAX_WIDTH}`)
  }
  return n
}

/**
 * A bar of `value` out of `max` in `width` cells, in eighths of a cell; any non-zero value
 * shows at least a sliver, so a small spend is not mistaken for none.
 * @example bar(3, 8, 2) // '▊'
 */
export function bar(value: number, max: number, width: number): string {
  if (value <= 0 || max <= 0) return ''
  const eighths = Math.max(1, Math.round((Math.min(value, max) / max) * width * 8))
  return '█'.repeat(Math.floor(eighths / 8)) + EIGHTHS[eighths % 8]
}

/** A period's label: its UTC start to the interval's precision. */
function periodLabel(start: number, interval: UsageInterval): string {
  const iso = new Date(start).toISOString()
  if (interval === 'month') return iso.slice(0, 7)
  if (interval === 'day') return iso.slice(0, 10)
  return `${iso.slice(0, 10)} ${iso.slice(11, 13)}:00`
}

function totalOf(periods: readonly UsagePeriod[]) {
  const t = { granted: 0, spent: 0, released: 0, expired: 0 }
  for (const p of periods) {
    t.granted += p.granted
    t.spent += p.spent
    t.released += p.released
    t.expired += p.expired
  }
  return t
}

/**
 * The text form of a usage report: one line per period with a bar of what was spent, then the
 * totals, then (grouped) the spend per value.
 * @example out(usageText(await client.usage('alice', { interval: 'day' }), 40))
 */
export function usageText(r: UsageReport, width: number): string {
  const who = r.account ?? 'all accounts'
  const head = `${who}: credits spent per ${r.interval} (UTC), ${periodLabel(r.from, r.interval)} to ${periodLabel(r.to - 1, r.interval)}`
  const max = Math.max(0, ...r.periods.map((p) => p.spent))
  const labels = r.periods.map((p) => periodLabel(p.start, r.interval))
  const labelWidth = Math.max(...labels.map((l) => l.length))
  const lines = r.periods.map((p, i) => {
    const b = bar(p.spent, max, width)
    return `${labels[i]!.padEnd(labelWidth)}  ${b.padEnd(width)}  ${formatCredits(p.spent)}`.trimEnd()
  })
  const t = totalOf(r.periods)
  const totals = `total: ${formatCredits(t.spent)} spent, ${formatCredits(t.granted)} granted, ${formatCredits(t.released)} released, ${formatCredits(t.expired)} expired`
  const out = [head, '', ...lines, '', totals]
  if (r.groups) {
    const groups = r.groups.map((g) => ({
      name: g.value ?? `(no ${r.groupBy})`,
      ...totalOf(g.periods),
    }))
    if (r.other) groups.push({ name: `(${r.other.count} more)`, ...totalOf(r.other.periods) })
    const top = Math.max(0, ...groups.map((g) => g.spent))
    out.push(
      '',
      formatTable(
        [
          { header: String(r.groupBy).toUpperCase() },
          { header: 'SPENT', align: 'right' },
          { header: '' },
          { header: 'GRANTED', align: 'right' },
        ],
        groups.map((g) => [
          g.name,
          formatCredits(g.spent),
          bar(g.spent, top, Math.min(width, 20)),
          formatCredits(g.granted),
        ]),
      ),
    )
  }
  return out.join('\n')
}

/**
 * Adds `usage` to `program`.
 * @example addUsageCommand(program, kit)
 */
export function addUsageCommand(program: Command, kit: CommandKit): void {
  const { out } = kit
  kit
    .clientCommand(program, 'usage')
    .description('chart credits spent per hour, day or month, for an account or (--all) the tenant')
    .addArgument(new Argument('[account]', 'the account').argParser(parseAccount))
    .option('--all', 'every account of the tenant together')
    .addOption(
      new Option('--interval <interval>', 'period length (UTC)')
        .choices(['hour', 'day', 'month'])
        .default('day'),
    )
    .addOption(
      new Option(
        '--from <time>',
        'start: ISO 8601 or ms since epoch (default: 30 days before --to)',
      ).argParser(parseTime),
    )
    .addOption(new Option('--to <time>', 'end, exclusive (default: now)').argParser(parseTime))
    .option('--group-by <key>', 'break the spend down by this metadata key')
    .addOption(
      new Option('--width <columns>', `bar width, ${MIN_WIDTH}–${MAX_WIDTH}`)
        .default(40)
        .argParser(parseWidth),
    )
    .action(
      kit.clientAction({
        check: (opts: UsageFlags, [account]: [string | undefined]) => {
          if (opts.all && account !== undefined)
            throw new UsageError('give an account or --all, not both')
          if (!opts.all && account === undefined)
            throw new UsageError('give an account, or --all for the tenant')
        },
        call: (client, [account]: [string | undefined], opts: UsageFlags) =>
          client.usage(
            account ?? null,
            present({
              interval: opts.interval,
              from: opts.from,
              to: opts.to,
              groupBy: opts.groupBy,
            }),
          ),
        text: (report, _args, opts: UsageFlags) => out(usageText(report, opts.width)),
      }),
    )
}
