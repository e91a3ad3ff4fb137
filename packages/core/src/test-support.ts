/**
 * Helpers for core's own tests (excluded from the build). `@tollgate/conformance/testing` has
 * the same ledger check for every other package; core cannot depend on it (it depends on core),
 * so both call the engine's `replayLedger`, where the rule lives.
 */
import { expect } from 'vitest'
import { replayLedger } from './engine/replay.js'
import type { Meter } from './meter/meter.js'
import { memoryStore } from './store/memory-store.js'
import type { Store } from './store/store.js'
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

/**
 * The ledger rule of DESIGN section 1, through the engine's {@link replayLedger}: replaying the
 * account's ledger reproduces its balance exactly. Returns the balance.
 */
export async function expectLedgerReplays(meter: Meter, account: string): Promise<Balance> {
  const balance = await meter.balance(account, { fresh: true })
  const entries = await fullLedger(meter, account)
  expect(entries.every((e) => e.account === account)).toBe(true)
  const { total, held, available, debt } = balance
  expect(replayLedger(entries), 'ledger replay').toEqual({ total, held, available, debt })
  return balance
}

export type Calls = Record<
  'execute' | 'ledger' | 'createCodes' | 'dueAccounts' | 'prune' | 'close',
  number
>

/** Wraps a store and counts calls per method. */
export function countingStore(inner: Store = memoryStore()): Store & { calls: Calls } {
  const calls: Calls = { execute: 0, ledger: 0, createCodes: 0, dueAccounts: 0, prune: 0, close: 0 }
  return {
    kind: inner.kind,
    calls,
    execute: (req) => {
      calls.execute++
      return inner.execute(req)
    },
    ledger: (t, a, r) => {
      calls.ledger++
      return inner.ledger(t, a, r)
    },
    createCodes: (t, b) => {
      calls.createCodes++
      return inner.createCodes(t, b)
    },
    dueAccounts: (t, n, l) => {
      calls.dueAccounts++
      return inner.dueAccounts(t, n, l)
    },
    prune: (t, b) => {
      calls.prune++
      return inner.prune(t, b)
    },
    close: () => {
      calls.close++
      return inner.close()
    },
  }
}
