/**
 * The ledger rule "replaying the ledger reproduces the balance" (DESIGN section 1), as a pure
 * function: an account's entries in, the balance figures they add up to out. Every store's
 * tests check it (through `@tollgate/conformance/testing`'s `expectLedgerReplays`, and core's
 * own tests), so it is written once, here, next to the rules that write the entries.
 */
import type { LedgerEntry } from '../types.js'

/** The figures of a balance that its ledger determines. */
export interface LedgerFigures {
  /** Unspent credits, held ones included: `Σ delta + Σ debtDelta`. */
  total: number
  /** Credits earmarked by pending holds: `Σ heldDelta`. */
  held: number
  /** `total − held`. */
  available: number
  /** Credits owed after an overdraft: `Σ debtDelta`. */
  debt: number
}

/**
 * Replays one account's ledger, oldest entry first, and returns the balance figures it adds up
 * to. On the way it checks what each entry claims: one account throughout, unique ids, `at`
 * never going back, `balanceAfter` equal to the running net balance (`total − debt`), and
 * `held` and `debt` never below zero. An entry that breaks one of these throws an `Error`
 * naming the entry: a ledger that contradicts itself has no figures to compare.
 * @example
 * const entries = (await readWholeLedger(meter, 'acct')).reverse() // oldest first
 * const balance = await meter.balance('acct', { fresh: true })
 * const { total, held, available, debt } = balance
 * assert.deepEqual(replayLedger(entries), { total, held, available, debt })
 */
export function replayLedger(entries: readonly LedgerEntry[]): LedgerFigures {
  let net = 0
  let held = 0
  let debt = 0
  const account = entries[0]?.account
  const ids = new Set<string>()
  for (const e of entries) {
    const where = `ledger entry ${e.id} (${e.type})`
    if (e.account !== account) {
      throw new Error(`${where}: account ${e.account} in the ledger of ${account}`)
    }
    if (ids.has(e.id)) throw new Error(`${where}: the id appears twice`)
    ids.add(e.id)
    // No check that `at` grows: an entry's time is its operation's clock reading, and an
    // operation stamped earlier can be applied later (a slow request, another process's clock).
    net += e.delta
    held += e.heldDelta
    debt += e.debtDelta
    if (e.balanceAfter !== net) {
      throw new Error(`${where}: balanceAfter ${e.balanceAfter}, but the running balance is ${net}`)
    }
    if (held < 0) throw new Error(`${where}: held goes below zero (${held})`)
    if (debt < 0) throw new Error(`${where}: debt goes below zero (${debt})`)
  }
  const total = net + debt
  return { total, held, available: total - held, debt }
}
