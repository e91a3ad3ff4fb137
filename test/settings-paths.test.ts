/**
 * One truth for settings (DESIGN §5, issue 14 item 4): the same account reports the same `low`
 * through an in-process meter on the database, a meter on `httpStore()`, the REST API and the
 * CLI, whatever each meter's own `lowBalanceThreshold` option says: the tenant's defaults and
 * the account's own settings live with the ledger, and the CLI sets them.
 */
import { randomBytes } from 'node:crypto'
import { type CliIo, runCli } from '@tollgate/cli'
import { type Balance, createMeter, httpStore, type Meter } from '@tollgate/core'
import { postgresStore } from '@tollgate/postgres'
import { createServer, type TollgateServer } from '@tollgate/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTenantKey, databaseUrl, dropSchemas, gateOnDatabase } from './processes.js'

gateOnDatabase('settings agree through every path')

describe.skipIf(!databaseUrl)('settings agree through every path', () => {
  const suffix = `${process.pid}_${randomBytes(3).toString('hex')}`
  const schema = `settings_paths_${suffix}`
  const tenant = `shop_${suffix}`
  let server: TollgateServer
  let url = ''
  let apiKey = ''
  let local: Meter
  let remote: Meter

  /** Runs the CLI in this process as an operator would, with the tenant key. */
  async function cli(...args: string[]): Promise<string> {
    const out: string[] = []
    const err: string[] = []
    const io: CliIo = {
      stdout: { isTTY: false, write: (s: string) => out.push(s) > 0 },
      stderr: { isTTY: false, write: (s: string) => err.push(s) > 0 },
      env: { TOLLGATE_URL: url, TOLLGATE_API_KEY: apiKey },
    }
    const code = await runCli(args, io)
    expect(code, err.join('')).toBe(0)
    return out.join('')
  }

  /** `low` of the account through the four paths. */
  async function lowEverywhere(account: string): Promise<Record<string, boolean>> {
    const rest = await fetch(`${url}/v1/accounts/${account}/balance`, {
      headers: { authorization: `Bearer ${apiKey}` },
    })
    expect(rest.status).toBe(200)
    const viaCli = JSON.parse(await cli('balance', account, '--json')) as Balance
    return {
      'in-process meter': (await local.balance(account, { fresh: true })).low,
      httpStore: (await remote.balance(account, { fresh: true })).low,
      REST: ((await rest.json()) as Balance).low,
      CLI: viaCli.low,
    }
  }

  beforeAll(async () => {
    server = createServer({
      store: postgresStore({ connectionString: databaseUrl!, schema }),
      logger: false,
      sweepIntervalMs: 0,
    })
    const listening = await server.listen({ port: 0, host: '127.0.0.1' })
    url = listening.url
    apiKey = await createTenantKey(url, listening.adminKey!, tenant)
    // Each meter's own option disagrees with the others and, soon, with the stored settings.
    local = createMeter({
      store: postgresStore({ connectionString: databaseUrl!, schema }),
      tenant,
      lowBalanceThreshold: 5,
    })
    remote = createMeter({ store: httpStore({ url, apiKey }), lowBalanceThreshold: 50 })
  }, 60_000)
  afterAll(async () => {
    await local?.close()
    await remote?.close()
    await server?.close()
    await dropSchemas(schema)
  }, 30_000)

  it('the tenant default stored through the CLI is what all four paths report', async () => {
    expect(await cli('settings', 'set', '--low-balance-threshold', '20')).toMatch(
      /low balance threshold: 20/,
    )
    await local.grant('alice', 10)
    await local.grant('bob', 30)
    const all = (low: boolean) => ({
      'in-process meter': low,
      httpStore: low,
      REST: low,
      CLI: low,
    })
    expect(await lowEverywhere('alice')).toEqual(all(true))
    expect(await lowEverywhere('bob')).toEqual(all(false))

    // The account's own setting, set through the CLI, wins everywhere too.
    await cli('settings', 'set', 'alice', '--low-balance-threshold', '5')
    expect(await lowEverywhere('alice')).toEqual(all(false))
    const shown = JSON.parse(await cli('settings', 'show', 'alice', '--json'))
    expect(shown).toEqual({
      account: 'alice',
      lowBalanceThreshold: 5,
      overdraftLimit: null,
      effective: { lowBalanceThreshold: 5, overdraftLimit: null },
    })
    expect(await remote.settings('bob')).toMatchObject({
      effective: { lowBalanceThreshold: 20 },
    })
    expect(await cli('settings', 'show')).toMatch(/low balance threshold: 20/)
  }, 60_000)
})
