/**
 * Helpers for this package's tests (excluded from the build): the ledger replay check of
 * core's tests and a store that is down.
 */
import {
  type Balance,
  type LedgerEntry,
  type Meter,
  memoryStore,
  type Store,
  StoreUnavailableError,
} from '@tollgate/core'
import { expect } from 'vitest'

/** A store whose every operation fails as if the database were down. */
export function failingStore(): Store {
  return {
    ...memoryStore(),
    kind: 'failing',
    execute: () => {
      throw new StoreUnavailableError('down')
    },
  }
}

/** The whole ledger of an account, oldest first. */
async function fullLedger(meter: Meter, account: string): Promise<LedgerEntry[]> {
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
  return balance
}

/** A promise with its resolver, for "the handler has started" signals. */
export function deferred<T = void>() {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => {
    resolve = r
  })
  return { promise, resolve }
}
