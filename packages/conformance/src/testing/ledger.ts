/**
 * Reading an account's ledger and checking it, for tests of stores, adapters and the server.
 */
import type { Balance, LedgerEntry, LedgerEntryType, LedgerQuery, Meter } from '@tollgate/core'
import { replayLedger } from '@tollgate/core/engine'
import { expect, vi } from 'vitest'

/** Pages a ledger read may take before it is taken for a cursor that never ends. */
const MAX_PAGES = 10_000

/**
 * Every entry of an account's ledger, newest first, read page by page.
 * @example
 * const refunds = await readLedger(meter, 'acct', { types: ['release'] })
 */
export async function readLedger(
  meter: Meter,
  account: string,
  query: Omit<LedgerQuery, 'cursor'> = {},
): Promise<LedgerEntry[]> {
  const out: LedgerEntry[] = []
  let cursor: string | undefined
  for (let page = 0; page < MAX_PAGES; page++) {
    const res = await meter.ledger(account, {
      limit: 1000,
      ...query,
      ...(cursor === undefined ? {} : { cursor }),
    })
    out.push(...res.entries)
    if (res.nextCursor === null) return out
    // A cursor that does not move on would page forever.
    if (res.nextCursor === cursor) throw new Error('ledger paging returned the same cursor twice')
    cursor = res.nextCursor
  }
  throw new Error('ledger paging did not end')
}

/**
 * The whole ledger oldest first, the order a replay reads it in.
 * @example
 * expect((await ledgerOldestFirst(meter, 'acct')).at(-1)?.delta).toBe(-4)
 */
export async function ledgerOldestFirst(meter: Meter, account: string): Promise<LedgerEntry[]> {
  return (await readLedger(meter, account)).reverse()
}

/**
 * The entry types of the ledger, oldest first: a compact way to assert what was written.
 * @example
 * expect(await ledgerTypes(meter, 'acct')).toEqual(['grant', 'hold', 'commit'])
 */
export async function ledgerTypes(meter: Meter, account: string): Promise<LedgerEntryType[]> {
  return (await ledgerOldestFirst(meter, account)).map((e) => e.type)
}

/**
 * The ledger invariant of DESIGN section 1, through the engine's `replayLedger`: replaying the
 * entries oldest first reproduces the balance exactly (every entry consistent on the way), and
 * the balance adds up (`available = total − held`, the buckets sum to `total` and `held`).
 *
 * The balance is read first (fresh, so due housekeeping is applied and written), then the
 * ledger, so both describe the same moment. Returns the balance.
 * @example
 * const balance = await expectLedgerReplays(meter, 'acct')
 * expect(balance.held).toBe(0)
 */
export async function expectLedgerReplays(meter: Meter, account: string): Promise<Balance> {
  const balance = await meter.balance(account, { fresh: true })
  const entries = await ledgerOldestFirst(meter, account)
  expect(
    entries.filter((e) => e.account !== account),
    'entries of another account',
  ).toEqual([])
  const { total, held, available, debt } = balance
  expect(replayLedger(entries), 'ledger replay').toEqual({ total, held, available, debt })
  expect(balance.available).toBe(balance.total - balance.held)
  expect(balance.buckets.reduce((s, b) => s + b.remaining, 0)).toBe(balance.total)
  expect(balance.buckets.reduce((s, b) => s + b.held, 0)).toBe(balance.held)
  return balance
}

/**
 * Waits until the account's newest entry is `type` (adapters settle after the response has
 * gone, so a test sees the response first), then checks the ledger replays and nothing is held.
 * @default timeout 3 s
 * @example
 * await request(app).get('/').expect(200)
 * const balance = await settledAs(meter, 'acct', 'commit')
 */
export async function settledAs(
  meter: Meter,
  account: string,
  type: LedgerEntryType,
  { timeout = 3_000 }: { timeout?: number } = {},
): Promise<Balance> {
  await vi.waitFor(async () => expect((await ledgerTypes(meter, account)).at(-1)).toBe(type), {
    timeout,
    interval: 10,
  })
  const balance = await expectLedgerReplays(meter, account)
  expect(balance.held).toBe(0)
  return balance
}
