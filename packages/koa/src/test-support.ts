/**
 * Helpers for this package's tests (excluded from the build): a meter over the memory store, a
 * store that is down, a real listening server, and the ledger-replay check (a copy of core's,
 * which is not part of its public entry).
 */
import { createMeter, memoryStore } from '@tollgate/core'

/** A meter over a fresh memory store, without the balance cache so every read is exact. */
export async function meterWith(grants: Record<string, number> = {}, overage?: 'overdraft') {
  const meter = createMeter({ store: memoryStore(), cache: false, ...(overage ? { overage } : {}) })
  for (const [account, amount] of Object.entries(grants)) await meter.grant(account, amount)
  return meter
}

export {
  downStore,
  expectLedgerReplays,
  ledgerOldestFirst as fullLedger,
  ledgerTypes as entryTypes,
  listen,
  settledAs,
} from '@tollgate/conformance'

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
