/** `tollgate webhooks add | list | remove | deliveries | retry`: the tenant's webhook endpoints. */
import { type Command, Option } from 'commander'
import { parsePositive } from '../args.js'
import type { WebhookDeliveryInfo, WebhookInfo } from '../client.js'
import { type CommandKit, present } from '../command-kit.js'
import { formatTable, formatTime } from '../format.js'

/**
 * Adds `webhooks` and its subcommands to `program`.
 * @example addWebhooksCommands(program, kit)
 */
export function addWebhooksCommands(program: Command, kit: CommandKit): void {
  const { out, note } = kit
  const webhooks = program
    .command('webhooks')
    .description('manage webhook endpoints and see their deliveries')
    .addHelpText(
      'after',
      '\nMessages are signed per Standard Webhooks; the secret is shown once, when the endpoint is added.',
    )

  kit
    .clientCommand(webhooks, 'add')
    .description('add an endpoint; prints its signing secret (once) on stdout')
    .argument('<url>', 'where deliveries are POSTed (https)')
    .option(
      '--events <types>',
      'comma-separated event types (low,depleted,recovered,granted,…); default every type',
    )
    .action(
      kit.clientAction({
        call: (client, [url]: [string], opts: { events?: string }) =>
          client.addWebhook({
            url,
            ...present({ events: opts.events?.split(',').map((t) => t.trim()) }),
          }),
        text: (created) => {
          // The secret alone on stdout, so `SECRET=$(tollgate webhooks add …)` works.
          out(created.secret)
          note(
            `added webhook ${created.id} → ${created.url} (${created.events.join(', ')}): the secret is shown this once, store it now`,
          )
        },
      }),
    )

  kit
    .clientCommand(webhooks, 'list')
    .description('list endpoints (never their secrets)')
    .action(
      kit.clientAction({
        call: async (client) => ({ webhooks: await client.listWebhooks() }),
        text: ({ webhooks: list }) =>
          list.length === 0 ? note('no webhooks') : out(webhooksTable(list)),
      }),
    )

  kit
    .clientCommand(webhooks, 'remove')
    .description('remove an endpoint and its deliveries')
    .argument('<id>', 'the endpoint’s id (wh_…)')
    .action(
      kit.clientAction({
        call: (client, [id]: [string]) => client.removeWebhook(id),
        text: (removed) => out(`removed webhook ${removed.id}`),
      }),
    )

  kit
    .clientCommand(webhooks, 'deliveries')
    .description('an endpoint’s deliveries, newest event first')
    .argument('<id>', 'the endpoint’s id (wh_…)')
    .addOption(
      new Option('--status <status>', 'only these').choices(['pending', 'delivered', 'failed']),
    )
    .addOption(
      new Option('--limit <n>', 'deliveries per page, 1–1000').default(20).argParser(parsePositive),
    )
    .option('--before <seq>', 'continue from a previous page (its nextBefore)', parsePositive)
    .action(
      kit.clientAction({
        call: (client, [id]: [string], opts: { status?: string; limit: number; before?: number }) =>
          client.webhookDeliveries(id, {
            limit: opts.limit,
            ...present({ status: opts.status, before: opts.before }),
          }),
        text: ({ deliveries, nextBefore }) => {
          if (deliveries.length === 0) note('no deliveries')
          else out(deliveriesTable(deliveries))
          if (nextBefore !== null) note(`more: --before ${nextBefore}`)
        },
      }),
    )

  kit
    .clientCommand(webhooks, 'retry')
    .description('deliver again now (a failed delivery, or a delivered one once more)')
    .argument('<id>', 'the endpoint’s id (wh_…)')
    .argument('<delivery>', 'the delivery’s id (whd_…)')
    .action(
      kit.clientAction({
        call: (client, [id, delivery]: [string, string]) =>
          client.retryWebhookDelivery(id, delivery),
        text: (d) => out(`delivery ${d.id} is due again`),
      }),
    )
}

function webhooksTable(list: readonly WebhookInfo[]): string {
  return formatTable(
    [{ header: 'ID' }, { header: 'URL' }, { header: 'EVENTS' }, { header: 'CREATED' }],
    list.map((w) => [w.id, w.url, w.events.join(','), formatTime(w.createdAt)]),
  )
}

function deliveriesTable(list: readonly WebhookDeliveryInfo[]): string {
  return formatTable(
    [
      { header: 'ID' },
      { header: 'EVENT' },
      { header: 'ACCOUNT' },
      { header: 'STATUS' },
      { header: 'ATTEMPTS' },
      { header: 'LAST' },
      { header: 'NEXT' },
    ],
    list.map((d) => [
      d.id,
      d.type,
      d.account,
      d.status,
      String(d.attempts),
      d.lastError ?? (d.lastStatus === null ? '' : String(d.lastStatus)),
      d.status === 'pending' ? formatTime(d.nextAt) : '',
    ]),
  )
}
