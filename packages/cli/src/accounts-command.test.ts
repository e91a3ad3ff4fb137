/**
 * `tollgate accounts` run in process against a real server (memory store) on a free port, with
 * a tenant of its own so other tests' accounts do not show.
 */
import type { AccountsPage } from '@tollgate/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type RunResult, runIn, startTestServer } from './test-support.js'

let srv: Awaited<ReturnType<typeof startTestServer>>
beforeAll(async () => {
  srv = await startTestServer()
  const run = (args: string[]) => runIn(args, srv.env)
  for (const [account, amount] of [
    ['user-1', '100'],
    ['user-2', '10'],
    ['user-3', '1000'],
    ['org-1', '50'],
  ] as const) {
    expect((await run(['grant', account, amount])).code).toBe(0)
  }
  expect((await run(['settings', 'set', 'user-2', '--low-balance-threshold', '20'])).code).toBe(0)
})
afterAll(async () => {
  await srv?.close()
})

const tenant = (args: string[]) => runIn(args, srv.env)
const json = (r: RunResult): AccountsPage => {
  expect(r).toMatchObject({ code: 0, stderr: '' })
  return JSON.parse(r.stdout) as AccountsPage
}
const names = (page: AccountsPage) => page.accounts.map((a) => a.account)

describe('tollgate accounts', () => {
  it('prints a table by account', async () => {
    const r = await tenant(['accounts'])
    expect(r.code).toBe(0)
    expect(r.stderr).toBe('')
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(/^ACCOUNT\s+AVAILABLE\s+HELD\s+TOTAL\s+DEBT\s+LOW\s+UPDATED$/)
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 4))).toEqual([
      ['org-1', '50', '0', '50'],
      ['user-1', '100', '0', '100'],
      ['user-2', '10', '0', '10'],
      ['user-3', '1,000', '0', '1,000'],
    ])
    expect(lines[3]).toMatch(/\slow\s/)
  })

  it('filters and sorts; --json prints the page', async () => {
    expect(names(json(await tenant(['accounts', '--prefix', 'user-', '--json'])))).toEqual([
      'user-1',
      'user-2',
      'user-3',
    ])
    expect(names(json(await tenant(['accounts', '--low', '--json'])))).toEqual(['user-2'])
    expect(names(json(await tenant(['accounts', '--in-debt', '--json'])))).toEqual([])
    expect(names(json(await tenant(['accounts', '--has-holds', '--json'])))).toEqual([])
    expect(names(json(await tenant(['accounts', '--sort', 'balance', '--json'])))).toEqual([
      'user-3',
      'user-1',
      'org-1',
      'user-2',
    ])
    const asc = json(await tenant(['accounts', '--sort', 'balance', '--order', 'asc', '--json']))
    expect(names(asc)).toEqual(['user-2', 'org-1', 'user-1', 'user-3'])
    expect(asc.accounts[0]).toMatchObject({ total: 10, held: 0, available: 10, low: true })
  })

  it('pages with --limit and --cursor; --all reads every page', async () => {
    const first = json(await tenant(['accounts', '--limit', '3', '--json']))
    expect(names(first)).toEqual(['org-1', 'user-1', 'user-2'])
    expect(first.nextCursor).toEqual(expect.any(String))
    const rest = json(await tenant(['accounts', '--cursor', first.nextCursor!, '--json']))
    expect(names(rest)).toEqual(['user-3'])
    expect(rest.nextCursor).toBeNull()
    const more = await tenant(['accounts', '--limit', '1'])
    expect(more.stderr).toMatch(/^more: add --cursor \S+\n$/)
    const all = json(await tenant(['accounts', '--all', '--json']))
    expect(names(all)).toEqual(['org-1', 'user-1', 'user-2', 'user-3'])
    expect(all.nextCursor).toBeNull()
  })

  it.each([
    ['--limit over 1000', ['accounts', '--limit', '5000']],
    ['--limit 0', ['accounts', '--limit', '0']],
    ['bad --sort', ['accounts', '--sort', 'name']],
    ['bad --order', ['accounts', '--order', 'up']],
    ['--all with --limit', ['accounts', '--all', '--limit', '5']],
  ])('%s is a usage error before any request', async (_name, args) => {
    // Port 9: had a request been sent, the run would fail to connect with exit 1, not 2.
    const r = await runIn(args, { TOLLGATE_URL: 'http://127.0.0.1:9', TOLLGATE_API_KEY: 'x' })
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/^error: /)
  })

  it('a bad cursor is the server’s 400, exit 1', async () => {
    const r = await tenant(['accounts', '--cursor', 'bogus'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/cursor/)
  })
})
