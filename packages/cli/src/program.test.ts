/**
 * Every command run in process against a real server (memory store) on a free port.
 */
import type { Balance, CycleResult, LedgerPage, UsageReport } from '@tollgate/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createProgram } from './program.js'
import { buffer, type RunResult, runIn, startTestServer } from './test-support.js'

let srv: Awaited<ReturnType<typeof startTestServer>>
beforeAll(async () => {
  srv = await startTestServer()
})
afterAll(async () => {
  await srv?.close()
})

const CODE = /^TG-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-.$/
/** A port nothing listens on: a run that got there would fail with exit 1, not 2. */
const NOWHERE = 'http://127.0.0.1:9'

const tenant = (args: string[]) => runIn(args, srv.env)
const admin = (args: string[]) => runIn(args, srv.adminEnv)
const json = <T>(r: RunResult): T => {
  expect(r).toMatchObject({ code: 0, stderr: '' })
  return JSON.parse(r.stdout) as T
}

describe('help and version', () => {
  const paths = [
    [],
    ['serve'],
    ['keys'],
    ['keys', 'create'],
    ['keys', 'list'],
    ['keys', 'revoke'],
    ['grant'],
    ['debit'],
    ['balance'],
    ['ledger'],
    ['accounts'],
    ['codes'],
    ['codes', 'create'],
    ['redeem'],
    ['cycle'],
    ['cycle', 'start'],
    ['cycle', 'stop'],
    ['usage'],
    ['webhooks'],
    ['webhooks', 'add'],
    ['webhooks', 'list'],
    ['webhooks', 'remove'],
    ['webhooks', 'deliveries'],
    ['webhooks', 'retry'],
  ]
  it.each(paths.map((p) => [p.join(' ') || '(root)', p]))('%s --help', async (_name, path) => {
    const r = await runIn([...path, '--help'])
    expect(r.code).toBe(0)
    expect(r.stderr).toBe('')
    expect(r.stdout).toContain(`Usage: tollgate${path.length ? ` ${path.join(' ')}` : ''}`)
  })

  it('client commands document --url and --api-key; serve its own options', async () => {
    expect((await runIn(['ledger', '--help'])).stdout).toMatch(/--url <url>[\s\S]*--api-key <key>/)
    const serve = (await runIn(['serve', '--help'])).stdout
    for (const flag of ['--port', '--host', '--data-dir', '--database-url', '--demo']) {
      expect(serve).toContain(flag)
    }
  })

  it('--version prints the package version', async () => {
    const r = await runIn(['--version'])
    expect(r).toMatchObject({ code: 0, stdout: '0.1.0\n' })
  })

  it('a command group without a subcommand shows its help on stderr, exit 2', async () => {
    const r = await runIn(['keys'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('Usage: tollgate keys')
  })
})

describe('bad arguments: exit 2 before any request', () => {
  const cases: [string, string[]][] = [
    ['amount "abc"', ['debit', 'alice', 'abc']],
    ['negative amount', ['grant', 'alice', '-5']],
    ['fractional amount', ['grant', 'alice', '1.5']],
    ['zero grant', ['grant', 'alice', '0']],
    ['missing argument', ['grant', 'alice']],
    ['unknown option', ['balance', 'alice', '--frobnicate']],
    ['unknown command', ['frobnicate']],
    ['bad --every', ['cycle', 'start', 'alice', '--amount', '5', '--every', 'fortnight']],
    ['bad --expires-at', ['grant', 'alice', '5', '--expires-at', 'tomorrow-ish']],
    [
      'both expiries',
      ['grant', 'alice', '5', '--validity-days', '3', '--expires-at', '2030-01-01'],
    ],
    ['bad --types', ['ledger', 'alice', '--types', 'grant,bogus']],
    ['--limit over 1000', ['ledger', 'alice', '--limit', '5000']],
    ['codes without --count', ['codes', 'create', '--credits', '5']],
    ['bad --prefix', ['codes', 'create', '--credits', '5', '--count', '2', '--prefix', 'no-dash']],
    ['bad --metadata', ['debit', 'alice', '5', '--metadata', '[1]']],
    ['settings set without a setting', ['settings', 'set']],
    ['negative setting', ['settings', 'set', '--low-balance-threshold', '-1']],
    ['setting not a number', ['settings', 'set', 'alice', '--overdraft-limit', 'lots']],
    ['usage without an account or --all', ['usage']],
    ['usage with an account and --all', ['usage', 'alice', '--all']],
    ['usage with a bad --interval', ['usage', 'alice', '--interval', 'week']],
    ['usage with a bad --from', ['usage', 'alice', '--from', 'soon']],
    ['usage with a bar too wide', ['usage', 'alice', '--width', '500']],
  ]
  it.each(cases)('%s', async (_name, args) => {
    // NOWHERE: had a request been sent, the run would fail to connect with exit 1.
    const r = await runIn(args, { TOLLGATE_URL: NOWHERE, TOLLGATE_API_KEY: srv.tenantKey })
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/^error: /)
  })

  it('says which argument is wrong, on one line (plus a hint)', async () => {
    const r = await runIn(['debit', 'alice', 'abc'], { TOLLGATE_URL: NOWHERE })
    expect(r.stderr.split('\n')[0]).toBe(
      "error: command-argument value 'abc' is invalid for argument 'amount'. must be a whole number of credits",
    )
  })

  it('no API key is a usage error', async () => {
    const r = await runIn(['balance', 'alice'], { TOLLGATE_URL: srv.url })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^error: no API key: pass --api-key or set TOLLGATE_API_KEY/)
  })

  it('a --url that is not http(s) is a usage error', async () => {
    const r = await runIn(['balance', 'alice', '--url', 'ftp://x', '--api-key', srv.tenantKey])
    expect(r.code).toBe(2)
  })
})

describe('a bad API key: exit 2 naming the setting, before any request', () => {
  // Each would fail in the HTTP layer (a header cannot carry it) or be refused by the server.
  const bad: [string, () => string, string][] = [
    [
      'a trailing newline',
      () => `${srv.tenantKey}\n`,
      'must be printable ASCII without spaces or line breaks',
    ],
    [
      'tg_sk_abc and a newline',
      () => 'tg_sk_abc\n',
      'must be printable ASCII without spaces or line breaks',
    ],
    [
      'a space',
      () => `tg_sk_abc ${srv.tenantKey}`,
      'must be printable ASCII without spaces or line breaks',
    ],
    [
      'not tg_sk_<id>_<secret>',
      () => 'tg_sk_abc',
      'is not a Tollgate API key (tg_sk_<id>_<secret>)',
    ],
    [
      'no tg_sk_ prefix',
      () => 'sk_live_123456789abcdefghijk',
      'is not a Tollgate API key (tg_sk_<id>_<secret>)',
    ],
  ]

  it.each(bad)('TOLLGATE_API_KEY with %s', async (_name, key, why) => {
    // NOWHERE: had a request been sent, the run would fail to connect with exit 1.
    const r = await runIn(['balance', 'alice'], { TOLLGATE_URL: NOWHERE, TOLLGATE_API_KEY: key() })
    expect(r).toEqual({
      code: 2,
      stdout: '',
      stderr: `error: invalid_input: apiKey: TOLLGATE_API_KEY ${why}\n`,
    })
  })

  it.each(bad)('--api-key with %s', async (_name, key, why) => {
    const r = await runIn(['grant', 'alice', '5', '--api-key', key()], {
      TOLLGATE_URL: NOWHERE,
      TOLLGATE_API_KEY: srv.tenantKey,
    })
    expect(r).toEqual({
      code: 2,
      stdout: '',
      stderr: `error: invalid_input: apiKey: --api-key ${why}\n`,
    })
  })

  it('a good --api-key wins over a bad TOLLGATE_API_KEY', async () => {
    const r = await runIn(['balance', 'alice', '--json', '--api-key', srv.tenantKey], {
      TOLLGATE_URL: srv.url,
      TOLLGATE_API_KEY: 'tg_sk_abc\n',
    })
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({ account: 'alice' })
  })

  it('the key is not echoed: it is a secret', async () => {
    const secret = 'tg_sk_abc_hunter2hunter2'
    const r = await runIn(['balance', 'alice'], { TOLLGATE_URL: NOWHERE, TOLLGATE_API_KEY: secret })
    expect(r.code).toBe(2)
    expect(r.stderr).not.toContain('hunter2')
  })
})

describe('header values the request could not carry: exit 2 before any request', () => {
  const cases: [string, string[], Record<string, string>, RegExp][] = [
    [
      '--tenant with a newline',
      ['balance', 'alice', '--tenant', 'acme\n'],
      {},
      /^error: invalid_input: tenant: --tenant must be Latin-1 text without control characters/,
    ],
    [
      'TOLLGATE_TENANT beyond Latin-1',
      ['balance', 'alice'],
      { TOLLGATE_TENANT: '日本' },
      /^error: invalid_input: tenant: TOLLGATE_TENANT must be Latin-1 text/,
    ],
    [
      '--idempotency-key with a newline',
      ['grant', 'alice', '5', '--idempotency-key', 'order-17\n'],
      {},
      /^error: option '--idempotency-key <key>' argument .* is invalid\. must be Latin-1 text without control characters$/s,
    ],
    [
      'codes --idempotency-key beyond Latin-1',
      ['codes', 'create', '--credits', '5', '--count', '2', '--idempotency-key', '批次'],
      {},
      /must be Latin-1 text without control characters/,
    ],
  ]
  it.each(cases)('%s', async (_name, args, env, message) => {
    // NOWHERE: had a request been sent, the run would fail to connect with exit 1.
    const r = await runIn(args, { TOLLGATE_URL: NOWHERE, TOLLGATE_API_KEY: srv.adminKey, ...env })
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr.split('\n(run with')[0]).toMatch(message)
  })

  it('Latin-1 beyond ASCII still goes through', async () => {
    const r = await admin(['grant', 'alice', '5', '--tenant', 'café', '--idempotency-key', 'né'])
    expect(r.code).toBe(0)
    const b = json<Balance>(await admin(['balance', 'alice', '--tenant', 'café', '--json']))
    expect(b.available).toBe(5)
  })
})

describe('credits', () => {
  it('grant, then balance as text and as JSON', async () => {
    const g = await tenant(['grant', 'carol', '1000', '--validity-days', '30'])
    expect(g.code).toBe(0)
    expect(g.stdout).toMatch(
      /^granted 1,000 credits to carol \(paid, expires \S+, grant \S+\)\ncarol: 1,000 available\n$/,
    )
    await tenant(['grant', 'carol', '50', '--promotional', '--priority', '10'])

    const text = await tenant(['balance', 'carol'])
    expect(text.code).toBe(0)
    const lines = text.stdout.trimEnd().split('\n')
    expect(lines[0]).toBe('carol: 1,050 available, 0 held, 1,050 total')
    expect(lines[2]).toMatch(/^BUCKET\s+CATEGORY\s+PRIORITY\s+REMAINING\s+HELD\s+EXPIRES$/)
    // Burn order: the promotional priority-10 bucket first.
    expect(lines[3]).toMatch(/^grt_\S+\s+promotional\s+10\s+50\s+0\s+never$/)
    expect(lines[4]).toMatch(/^grt_\S+\s+paid\s+50\s+1,000\s+0\s+\d{4}-\d\d-\d\dT/)

    const b = json<Balance>(await tenant(['balance', 'carol', '--json']))
    expect(b).toMatchObject({ account: 'carol', total: 1050, available: 1050, held: 0 })
    expect(b.buckets).toHaveLength(2)
  })

  it('a refused debit: one error line, exit 1, nothing spent', async () => {
    await tenant(['grant', 'dave', '2'])
    const r = await tenant(['debit', 'dave', '5'])
    expect(r).toEqual({
      code: 1,
      stdout: '',
      stderr: 'error: insufficient_credits: account needs 5 credits but has 2 available\n',
    })
    expect(json<Balance>(await tenant(['balance', 'dave', '--json'])).available).toBe(2)
    const ok = await tenant(['debit', 'dave', '2', '--json'])
    expect(json<{ amount: number; balance: Balance }>(ok)).toMatchObject({
      amount: 2,
      balance: { available: 0 },
    })
  })

  it('an idempotency key makes a repeated grant a replay', async () => {
    const args = ['grant', 'erin', '100', '--idempotency-key', 'order-17']
    expect((await tenant(args)).stdout).not.toContain('replayed')
    const again = await tenant(args)
    expect(again.code).toBe(0)
    expect(again.stdout).toContain('[replayed')
    expect(json<Balance>(await tenant(['balance', 'erin', '--json'])).total).toBe(100)
    const conflict = await tenant(['grant', 'erin', '101', '--idempotency-key', 'order-17'])
    expect(conflict.code).toBe(1)
    expect(conflict.stderr).toMatch(/^error: idempotency_conflict: /)
  })

  it('the ledger as a table, newest first, and as JSON with a cursor', async () => {
    await tenant(['grant', 'frank', '1000', '--metadata', '{"order":"o-1"}'])
    await tenant(['debit', 'frank', '30'])
    await tenant(['debit', 'frank', '20'])
    const table = await tenant(['ledger', 'frank'])
    expect(table.code).toBe(0)
    const lines = table.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(/^AT\s+TYPE\s+DELTA\s+HELD\s+BALANCE\s+REF\s+REASON$/)
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(1, 4))).toEqual([
      ['debit', '-20', '950'],
      ['debit', '-30', '970'],
      ['grant', '+1,000', '1,000'],
    ])

    const page = json<LedgerPage>(await tenant(['ledger', 'frank', '--json', '--limit', '2']))
    expect(page.entries.map((e) => e.type)).toEqual(['debit', 'debit'])
    expect(page.nextCursor).toEqual(expect.any(String))
    const rest = json<LedgerPage>(
      await tenant(['ledger', 'frank', '--json', '--cursor', page.nextCursor!]),
    )
    expect(rest.entries.map((e) => [e.type, e.metadata])).toEqual([['grant', { order: 'o-1' }]])

    const more = await tenant(['ledger', 'frank', '--limit', '1'])
    expect(more.stderr).toMatch(/^more: add --cursor \S+\n$/)
    const grants = json<LedgerPage>(await tenant(['ledger', 'frank', '--types', 'grant', '--json']))
    expect(grants.entries).toHaveLength(1)
  })

  it('usage as a bar chart of spend per period with totals, grouped, tenant-wide and as JSON', async () => {
    const now = Date.now()
    const hour = now - (now % 3_600_000)
    await tenant(['grant', 'ivy', '1000'])
    await tenant(['debit', 'ivy', '80', '--metadata', '{"feature":"chat"}'])
    await tenant(['debit', 'ivy', '20', '--metadata', '{"feature":"search"}'])
    const from = String(hour - 3 * 3_600_000)
    const to = new Date(hour + 3_600_000).toISOString()
    const chart = await tenant([
      'usage',
      'ivy',
      '--interval',
      'hour',
      '--from',
      from,
      '--to',
      to,
      '--width',
      '10',
    ])
    expect(chart).toMatchObject({ code: 0, stderr: '' })
    const lines = chart.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(/^ivy: credits spent per hour \(UTC\), /)
    // Four hours, zeros included; the last one full width.
    const bars = lines.filter((l) => /^\d{4}-\d\d-\d\d \d\d:00/.test(l))
    expect(bars).toHaveLength(4)
    expect(bars.slice(0, 3).every((l) => l.endsWith(' 0'))).toBe(true)
    expect(bars[3]).toMatch(/ █{10} {2}100$/)
    expect(chart.stdout).toContain('total: 100 spent, 1,000 granted, 0 released, 0 expired')

    const grouped = await tenant(['usage', 'ivy', '--group-by', 'feature'])
    expect(grouped.stdout).toMatch(/FEATURE\s+SPENT\s+GRANTED/)
    expect(grouped.stdout).toMatch(/chat\s+80\s+█{20}\s+0\n/)
    expect(grouped.stdout).toMatch(/\(no feature\)\s+0\s+1,000/)

    await tenant(['grant', 'jill', '5'])
    const all = json<UsageReport>(await tenant(['usage', '--all', '--interval', 'month', '--json']))
    expect(all.account).toBeNull()
    expect(all.periods.at(-1)?.granted).toBeGreaterThanOrEqual(1_005)
    const bad = await tenant(['usage', 'ivy', '--from', String(now), '--to', String(now - 1)])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/^error: invalid_input: .*from/)
  })

  it('cycle start and stop', async () => {
    const started = await tenant([
      'cycle',
      'start',
      'gina',
      '--amount',
      '100',
      '--every',
      'month',
      '--rollover-max',
      '50',
    ])
    expect(started.code).toBe(0)
    expect(started.stdout).toMatch(
      /^gina: 100 credits every month, rolling over up to 50 \(cycle \S+\)\n/,
    )
    expect(started.stdout).toContain('gina: 100 available')
    const weekly = json<CycleResult>(
      await tenant(['cycle', 'start', 'gina', '--amount', '7', '--every', '7', '--json']),
    )
    expect(weekly.cycle).toMatchObject({ amount: 7, every: { days: 7 }, active: true })
    expect(weekly.replaced).toEqual(expect.any(String))
    const stopped = await tenant(['cycle', 'stop', 'gina'])
    expect(stopped.code).toBe(0)
    expect(stopped.stdout).toMatch(/^stopped gina's cycle \S+: no refill after /)
    const again = await tenant(['cycle', 'stop', 'gina'])
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/^error: not_found: /)
  })
})

describe('codes', () => {
  it('1,000 codes: only codes on stdout, progress on stderr; each redeems once', async () => {
    const r = await tenant(['codes', 'create', '--credits', '25', '--count', '1000'])
    expect(r.code).toBe(0)
    const codes = r.stdout.trimEnd().split('\n')
    expect(codes).toHaveLength(1000)
    expect(new Set(codes).size).toBe(1000)
    for (const c of codes) expect(c).toMatch(CODE)
    const progress = r.stderr.trimEnd().split('\n')
    expect(progress[0]).toBe('codes: 0/1,000')
    expect(progress).toContain('codes: 500/1,000')
    expect(progress).toContain('codes: 1,000/1,000')
    expect(progress.at(-1)).toBe('created 1,000 codes of 25 credits each (10 batches)')

    // Typed in lower case, as a user might.
    const redeemed = await tenant(['redeem', 'hank', codes[0]!.toLowerCase()])
    expect(redeemed.code).toBe(0)
    expect(redeemed.stdout).toMatch(
      /^redeemed 25 credits for hank \(no expiry\)\nhank: 25 available\n$/,
    )
    const twice = await tenant(['redeem', 'hank', codes[0]!])
    expect(twice.code).toBe(1)
    expect(twice.stderr).toMatch(/^error: code_unavailable: /)
    const typo = await tenant(['redeem', 'hank', 'TG-0000-0000-0000-0'])
    expect(typo.code).toBe(1)
    expect(typo.stderr).toMatch(/^error: invalid_input: /)
  })

  it('on a terminal, progress redraws one line', async () => {
    const stdout = buffer()
    const stderr = buffer(true)
    const program = createProgram({ stdout, stderr, env: srv.env })
    await program.parseAsync(
      [
        'codes',
        'create',
        '--credits',
        '5',
        '--count',
        '30',
        '--chunk-size',
        '10',
        '--prefix',
        'vip',
      ],
      { from: 'user' },
    )
    expect(stdout.text().trimEnd().split('\n')).toHaveLength(30)
    expect(stdout.text()).toMatch(/^VIP-/)
    expect(stderr.text()).toContain('\rcodes: 20/30\rcodes: 30/30\n')
  })

  it('--json: one document with every code; one chunk shows no progress', async () => {
    const r = await tenant(['codes', 'create', '--credits', '5', '--count', '3', '--json'])
    const out = json<{ count: number; credits: number; batchIds: string[]; codes: string[] }>({
      ...r,
      stderr: '',
    })
    expect(out).toMatchObject({ count: 3, credits: 5 })
    expect(out.batchIds).toHaveLength(1)
    expect(out.codes).toHaveLength(3)
    expect(r.stderr).toBe('created 3 codes of 5 credits each (1 batch)\n')
  })

  it('a rerun with the same --idempotency-key creates nothing new', async () => {
    const args = ['codes', 'create', '--credits', '5', '--count', '4', '--chunk-size', '2']
    const first = await tenant([...args, '--idempotency-key', 'batch-7'])
    expect(first.stdout.trimEnd().split('\n')).toHaveLength(4)
    const again = await tenant([...args, '--idempotency-key', 'batch-7'])
    expect(again.code).toBe(0)
    expect(again.stdout).toBe('')
    expect(again.stderr).toContain('warning: 4 of them were created by an earlier run')
  })
})

describe('keys and tenants', () => {
  it('create, list, revoke: a revoked key is refused with 401', async () => {
    const created = await admin(['keys', 'create', '--tenant', 'zeta', '--name', 'ci'])
    expect(created.code).toBe(0)
    const key = created.stdout.trim()
    expect(key).toMatch(/^tg_sk_[0-9a-z]+_\S+$/)
    expect(created.stderr).toMatch(/^created tenant key (\S+) for tenant "zeta"/)
    const id = /^tg_sk_([0-9a-z]+)_/.exec(key)![1]!

    const zeta = { TOLLGATE_URL: srv.url, TOLLGATE_API_KEY: key }
    expect((await runIn(['grant', 'ivan', '5'], zeta)).code).toBe(0)

    const list = json<{ keys: { id: string; tenant: string; revokedAt: unknown }[] }>(
      await admin(['keys', 'list', '--tenant', 'zeta', '--json']),
    )
    expect(list.keys).toEqual([expect.objectContaining({ id, tenant: 'zeta', revokedAt: null })])
    const table = await admin(['keys', 'list'])
    expect(table.stdout).toMatch(/^ID\s+TENANT\s+ROLE\s+NAME\s+CREATED\s+REVOKED\n/)
    expect(table.stdout).toMatch(new RegExp(`\\n${id}\\s+zeta\\s+tenant\\s+ci\\s+\\S+\\s+-\\n`))

    const revoked = await admin(['keys', 'revoke', id])
    expect(revoked.code).toBe(0)
    expect(revoked.stdout).toMatch(new RegExp(`^revoked key ${id} at \\d{4}-`))
    const refused = await runIn(['balance', 'ivan'], zeta)
    expect(refused.code).toBe(1)
    expect(refused.stderr.split('\n')[0]).toBe('error: auth: invalid or missing API key')
    const again = await admin(['keys', 'revoke', id])
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/^error: not_found: /)
  })

  it('an admin key with --admin creates admin keys; --tenant acts on a tenant', async () => {
    const made = json<{ role: string; key: string }>(
      await admin(['keys', 'create', '--tenant', 'default', '--admin', '--json']),
    )
    expect(made.role).toBe('admin')
    const env = { TOLLGATE_URL: srv.url, TOLLGATE_API_KEY: made.key }
    await tenant(['grant', 'judy', '42'])
    const acme = json<Balance>(await runIn(['balance', 'judy', '--tenant', 'acme', '--json'], env))
    expect(acme.available).toBe(42)
    // Without --tenant an admin key acts on tenant `default`, where judy has nothing.
    expect(json<Balance>(await runIn(['balance', 'judy', '--json'], env)).available).toBe(0)
    const viaEnv = await runIn(['balance', 'judy', '--json'], { ...env, TOLLGATE_TENANT: 'acme' })
    expect(json<Balance>(viaEnv).available).toBe(42)
  })

  it('a tenant key cannot manage keys', async () => {
    const r = await tenant(['keys', 'list'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/^error: /)
  })
})

describe('the server unreachable', () => {
  it('one error line naming the URL, exit 1', async () => {
    const env = { TOLLGATE_URL: NOWHERE, TOLLGATE_API_KEY: srv.tenantKey }
    const r = await runIn(['balance', 'alice'], env)
    expect(r).toEqual({
      code: 1,
      stdout: '',
      stderr: `error: cannot reach the Tollgate server at ${NOWHERE} (ECONNREFUSED)\n`,
    })
  })
})

describe('createProgram()', () => {
  it('runs in process; --url and --api-key override the environment', async () => {
    const stdout = buffer()
    const stderr = buffer()
    const program = createProgram({ stdout, stderr, env: { TOLLGATE_URL: NOWHERE } })
    await program.parseAsync(
      ['balance', 'kim', '--json', '--url', srv.url, '--api-key', srv.tenantKey],
      { from: 'user' },
    )
    expect(JSON.parse(stdout.text())).toMatchObject({ account: 'kim', available: 0 })
  })

  it('rejects with the exit code instead of exiting', async () => {
    const program = createProgram({ stdout: buffer(), stderr: buffer(), env: srv.env })
    await expect(program.parseAsync(['debit', 'kim', '5'], { from: 'user' })).rejects.toMatchObject(
      { exitCode: 1, code: 'tollgate.failed' },
    )
    const help = createProgram({ stdout: buffer(), stderr: buffer(), env: {} })
    await expect(help.parseAsync(['--help'], { from: 'user' })).rejects.toMatchObject({
      exitCode: 0,
    })
  })
})

describe('webhooks', () => {
  it('add prints the secret once; list, deliveries and remove show the endpoint and its deliveries', async () => {
    const added = await tenant([
      'webhooks',
      'add',
      'https://hooks.example.com/tollgate',
      '--events',
      'granted,low',
    ])
    expect(added.code).toBe(0)
    const secret = added.stdout.trim()
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/)
    const id =
      /^added webhook (wh_\S+) → https:\/\/hooks\.example\.com\/tollgate \(granted, low\)/.exec(
        added.stderr,
      )![1]!
    const table = await tenant(['webhooks', 'list'])
    expect(table.stdout).toMatch(/^ID\s+URL\s+EVENTS\s+CREATED\n/)
    expect(table.stdout).toContain(`${id}  https://hooks.example.com/tollgate  granted,low`)
    expect(table.stdout).not.toContain(secret)

    await tenant(['grant', 'wendy', '7'])
    type Page = { deliveries: { type: string; account: string; status: string }[] }
    let page: Page = { deliveries: [] }
    for (let i = 0; i < 100 && page.deliveries.length === 0; i++) {
      page = json<Page>(await tenant(['webhooks', 'deliveries', id, '--json']))
      if (page.deliveries.length === 0) await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect(page.deliveries).toEqual([
      expect.objectContaining({ type: 'granted', account: 'wendy' }),
    ])
    const rows = await tenant(['webhooks', 'deliveries', id])
    expect(rows.stdout).toMatch(/^ID\s+EVENT\s+ACCOUNT\s+STATUS\s+ATTEMPTS\s+LAST\s+NEXT\n/)

    const bad = await tenant(['webhooks', 'add', 'http://127.0.0.1:9/x'])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/^error: invalid_input: /)

    const removed = await tenant(['webhooks', 'remove', id])
    expect(removed.stdout.trim()).toBe(`removed webhook ${id}`)
    expect((await tenant(['webhooks', 'remove', id])).code).toBe(1)
    expect((await tenant(['webhooks', 'list'])).stderr).toContain('no webhooks')
  })
})
