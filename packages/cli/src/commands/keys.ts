/** `tollgate keys create | list | revoke`: the server's API keys (admin keys only). */
import type { Command } from 'commander'
import type { ApiKeyInfo } from '../client.js'
import { type CommandKit, present } from '../command-kit.js'
import { formatTable, formatTime } from '../format.js'

/**
 * Adds `keys` and its subcommands to `program`.
 * @example addKeysCommands(program, kit)
 */
export function addKeysCommands(program: Command, kit: CommandKit): void {
  const { out, note } = kit
  const keys = program
    .command('keys')
    .description('manage API keys (needs an admin key)')
    .addHelpText('after', '\nA key is shown once, when it is created; the server keeps its hash.')

  // `--tenant` of these commands names a key's tenant, not the tenant acted on: no actAs.
  kit
    .clientCommand(keys, 'create', { actAs: false })
    .description('create an API key; prints the key (once) on stdout')
    .requiredOption('--tenant <tenant>', 'the tenant the key acts on')
    .option('--name <name>', 'a label for lists')
    .option('--admin', 'an admin key (manages keys, acts on any tenant)')
    .action(
      kit.clientAction({
        call: (client, _args: [], opts: { tenant: string; name?: string; admin?: boolean }) =>
          client.createKey({
            tenant: opts.tenant,
            ...present({ name: opts.name }),
            role: opts.admin ? 'admin' : 'tenant',
          }),
        text: (created) => {
          // The key alone on stdout, so `KEY=$(tollgate keys create …)` works.
          out(created.key)
          note(
            `created ${created.role} key ${created.id} for tenant "${created.tenant}": it is shown this once, store it now`,
          )
        },
      }),
    )

  kit
    .clientCommand(keys, 'list', { actAs: false })
    .description('list API keys (never the keys themselves)')
    .option('--tenant <tenant>', 'only this tenant’s keys')
    .action(
      kit.clientAction({
        // `--tenant` here filters the list; the global one would pick the tenant acted on.
        call: async (client, _args: [], opts: { tenant?: string }) => ({
          keys: await client.listKeys(opts.tenant),
        }),
        text: ({ keys: list }) => (list.length === 0 ? note('no keys') : out(keysTable(list))),
      }),
    )

  kit
    .clientCommand(keys, 'revoke', { actAs: false })
    .description('revoke an API key: it is refused (401) from then on')
    .argument('<id>', 'the key’s id (the part after tg_sk_, as keys list shows it)')
    .action(
      kit.clientAction({
        call: (client, [id]: [string]) => client.revokeKey(id),
        text: (revoked) => out(`revoked key ${revoked.id} at ${formatTime(revoked.revokedAt)}`),
      }),
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
