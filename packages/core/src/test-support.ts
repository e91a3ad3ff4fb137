/**
 * Helpers for core's own tests (excluded from the build). Stores' tests use the richer
 * `expectLedgerReplays` of `@tollgate/conformance`, which depends on this package.
 */
import { expect } from 'vitest'
import type { Meter } from './meter.js'
import type { Balance, LedgerEntry } from './types.js'

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
