/**
 * The memory store's ledger of one account, kept in columns: numbers in typed arrays, the
 * rare string fields in a side map. An entry costs ~65 bytes and no object the garbage
 * collector must trace, where an entry object costs several hundred: the memory store
 * appends two entries per reserve+commit, so this is most of what it keeps.
 */
import { hasMetadata, toLedgerEntry } from '../engine/apply.js'
import type { EntryDraft } from '../engine/state.js'
import { LEDGER_ENTRY_TYPES, type LedgerEntry, type LedgerEntryType } from '../types.js'

// Numbers per entry: tenant sequence, delta, heldDelta, debtDelta, balanceAfter, at, hold number.
const STRIDE = 7
// Entries per chunk. A full chunk is never copied again (one big array would be copied at
// every doubling); a chunk starts at FIRST entries and doubles up to CHUNK, so an account
// with a short ledger costs under a kilobyte.
const CHUNK = 2048
const FIRST = 16
const TYPE_CODE = new Map<LedgerEntryType, number>(LEDGER_ENTRY_TYPES.map((t, i) => [t, i]))

/** The fields few entries have. */
type Extra = Partial<
  Pick<
    EntryDraft,
    'holdId' | 'grantId' | 'redemptionId' | 'cycleId' | 'idempotencyKey' | 'reason' | 'metadata'
  >
>

export class MemoryLedger {
  #n = 0
  readonly #nums: Float64Array[] = []
  readonly #types: Uint8Array[] = []
  readonly #extras = new Map<number, Extra>()

  get length(): number {
    return this.#n
  }

  /**
   * Appends an entry. `holdNo` is the store's number for `e.holdId` (−1 when it has none), so
   * the id string need not be kept: {@link read} rebuilds it with `holdIdOf`.
   */
  push(e: EntryDraft, seq: number, holdNo: number): void {
    const i = this.#n++
    const k = i % CHUNK
    const c = (i - k) / CHUNK
    if (k === 0) {
      this.#nums.push(new Float64Array(FIRST * STRIDE))
      this.#types.push(new Uint8Array(FIRST))
    } else if (k === this.#types[c]!.length) {
      const nums = new Float64Array(k * 2 * STRIDE)
      nums.set(this.#nums[c]!)
      this.#nums[c] = nums
      const types = new Uint8Array(k * 2)
      types.set(this.#types[c]!)
      this.#types[c] = types
    }
    const o = k * STRIDE
    const nums = this.#nums[c]!
    nums[o] = seq
    nums[o + 1] = e.delta
    nums[o + 2] = e.heldDelta
    nums[o + 3] = e.debtDelta
    nums[o + 4] = e.balanceAfter
    nums[o + 5] = e.at
    nums[o + 6] = holdNo
    this.#types[c]![k] = TYPE_CODE.get(e.type)!
    const extra = extraOf(e, holdNo)
    if (extra) this.#extras.set(i, extra)
  }

  /** Tenant sequence number of entry `i` (oldest is 0). */
  seq(i: number): number {
    return this.#num(i, 0)
  }

  type(i: number): LedgerEntryType {
    return LEDGER_ENTRY_TYPES[this.#types[Math.floor(i / CHUNK)]![i % CHUNK]!]!
  }

  at(i: number): number {
    return this.#num(i, 5)
  }

  #num(i: number, field: number): number {
    return this.#nums[Math.floor(i / CHUNK)]![(i % CHUNK) * STRIDE + field]!
  }

  /** Entry `i` as callers see it. */
  read(i: number, account: string, holdIdOf: (holdNo: number) => string): LedgerEntry {
    const extra = this.#extras.get(i)
    const holdNo = this.#num(i, 6)
    return toLedgerEntry({
      id: String(this.#num(i, 0)),
      account,
      type: this.type(i),
      delta: this.#num(i, 1),
      heldDelta: this.#num(i, 2),
      debtDelta: this.#num(i, 3),
      balanceAfter: this.#num(i, 4),
      holdId: holdNo >= 0 ? holdIdOf(holdNo) : extra?.holdId,
      grantId: extra?.grantId,
      redemptionId: extra?.redemptionId,
      cycleId: extra?.cycleId,
      idempotencyKey: extra?.idempotencyKey,
      reason: extra?.reason,
      metadata: extra?.metadata ?? {},
      at: this.#num(i, 5),
    })
  }
}

/** The rare fields of an entry, or undefined when it has none (most entries). */
function extraOf(e: EntryDraft, holdNo: number): Extra | undefined {
  const holdId = holdNo < 0 ? e.holdId : undefined
  const metadata = hasMetadata(e.metadata) ? e.metadata : undefined
  if (
    holdId === undefined &&
    metadata === undefined &&
    e.grantId === undefined &&
    e.redemptionId === undefined &&
    e.cycleId === undefined &&
    e.idempotencyKey === undefined &&
    e.reason === undefined
  ) {
    return undefined
  }
  const extra: Extra = {}
  if (holdId !== undefined) extra.holdId = holdId
  if (e.grantId !== undefined) extra.grantId = e.grantId
  if (e.redemptionId !== undefined) extra.redemptionId = e.redemptionId
  if (e.cycleId !== undefined) extra.cycleId = e.cycleId
  if (e.idempotencyKey !== undefined) extra.idempotencyKey = e.idempotencyKey
  if (e.reason !== undefined) extra.reason = e.reason
  if (metadata !== undefined) extra.metadata = metadata
  return extra
}
