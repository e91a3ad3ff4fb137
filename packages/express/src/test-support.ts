/**
 * Helpers for this package's tests (excluded from the build): a meter over the memory store, a
 * store that is down, a real listening server, and the ledger-replay check (a copy of core's,
 * which is not part of its public entry).
 */
import { once } from 'node:events'
import { createServer, type RequestListener } from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  type Balance,
  createMeter,
  type LedgerEntry,
  type LedgerEntryType,
  type Meter,
  memoryStore,
  type Store,
  StoreUnavailableError,
} from '@tollgate/core'
import { expect, vi } from 'vitest'

/** A meter over a fresh memory store, without the balance cache so every read is exact. */
export async function meterWith(grants: Record<string, number> = {}, overage?: 'overdraft') {
  const meter = createMeter({ store: memoryStore(), cache: false, ...(overage ? { overage } : {}) })
  for (const [account, amount] of Object.entries(grants)) await meter.grant(account, amount)
  return meter
}

/** A store whose every operation fails as a ledger that cannot be reached does. */
export function downStore(): Store {
  const inner = memoryStore()
  return {
    ...inner,
    kind: 'down',
    execute: () => {
      throw new StoreUnavailableError('ledger unreachable')
    },
  }
}

/** Listens on an ephemeral port; `close()` also drops the connections still open. */
export async function listen(handler: RequestListener) {
  const server = createServer(handler)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections()
      server.close()
      await once(server, 'close')
    },
  }
}

/** The whole ledger of an account, oldest first. */
export async function fullLedger(meter: Meter, account: string): Promise<LedgerEntry[]> {
  const out: LedgerEntry[] = []
  let cursor: string | undefined
  for (;;) {
    const page = await meter.ledger(
      account,
      cursor === undefined ? { limit: 1000 } : { limit: 1000, cursor },
    )
    out.push(...page.entries)
    if (page.nextCursor === null) break
    cursor = page.nextCursor
  }
  return out.reverse()
}

/** The ledger's entry types, oldest first. */
export async function entryTypes(meter: Meter, account: string): Promise<LedgerEntryType[]> {
  return (await fullLedger(meter, account)).map((e) => e.type)
}

/**
 * Waits until the account's last entry is `type` (the settlement runs after the response has
 * gone, so a test sees the response first), then checks nothing else is pending.
 */
export async function settledAs(meter: Meter, account: string, type: LedgerEntryType) {
  await vi.waitFor(async () => expect((await entryTypes(meter, account)).at(-1)).toBe(type), {
    timeout: 3_000,
    interval: 10,
  })
  const balance = await expectLedgerReplays(meter, account)
  expect(balance.held).toBe(0)
  return balance
}

/** Replays the ledger and checks it reproduces the balance exactly; returns the balance. */
export async function expectLedgerReplays(meter: Meter, account: string): Promise<Balance> {
  const balance = await meter.balance(account, { fresh: true })
  let net = 0
  let held = 0
  let debt = 0
  for (const e of await fullLedger(meter, account)) {
    expect(e.account).toBe(account)
    net += e.delta
    held += e.heldDelta
    debt += e.debtDelta
    expect(e.balanceAfter).toBe(net)
  }
  expect({ net, held, debt }).toEqual({
    net: balance.total - balance.debt,
    held: balance.held,
    debt: balance.debt,
  })
  expect(balance.available).toBe(balance.total - balance.held)
  return balance
}

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
