/**
 * The durable events of a change (the outbox, DESIGN §5), as the engine defines them. A store
 * does not keep a second copy of the ledger: each ledger entry is one event (its sequence is the
 * event's), so a store reads its ledger by sequence and maps each entry with
 * {@link entryEvent}. What the ledger lacks (alert crossings, debt changes) a store writes as
 * rows of its own, from {@link alertEvents}, in the same transaction as the entries.
 */
import type { LedgerEntry } from '../types.js'
import type { Effects } from './state.js'

/**
 * Types of the durable events a store keeps: one per ledger change and one per alert crossing
 * or debt change.
 */
export type StoredEventType =
  | 'granted'
  | 'debited'
  | 'reserved'
  | 'committed'
  | 'released'
  | 'expired'
  | 'redeemed'
  | 'adjusted'
  | 'low'
  | 'depleted'
  | 'recovered'
  | 'debt_changed'

/** The event types a store writes as rows of their own (the ledger has no entry for them). */
export type AlertEventType = 'low' | 'depleted' | 'recovered' | 'debt_changed'

/** An event before the store gave it a sequence number. */
export interface EventDraft<T extends StoredEventType = StoredEventType> {
  type: T
  account: string
  at: number
  data: Record<string, unknown>
}

/**
 * The event of one ledger entry. `data` carries the entry's figures (`delta`, `heldDelta`,
 * `debtDelta`, `balanceAfter`, the ids and `metadata` it has), `entryType` (the ledger's own
 * type: a grant and a cycle grant are both `granted`) and `amount`, the event's own figure as a
 * positive number (credits granted, debited, reserved, charged, freed or expired; for
 * `adjusted`, the signed delta).
 */
export function entryEvent(e: LedgerEntry): EventDraft {
  let type: StoredEventType
  let amount: number
  let kind: 'hold' | 'bucket' | undefined
  switch (e.type) {
    case 'grant':
    case 'cycle_grant':
      type = 'granted'
      amount = e.delta
      break
    case 'redeem':
      type = 'redeemed'
      amount = e.delta
      break
    case 'adjust':
      type = 'adjusted'
      amount = e.delta
      break
    case 'debit':
      type = 'debited'
      amount = -e.delta
      break
    case 'hold':
      // A reserve, or an increase of a pending hold by `amount`.
      type = 'reserved'
      amount = e.heldDelta
      break
    case 'commit':
      type = 'committed'
      amount = -e.delta
      break
    case 'release':
      // A hold past its TTL is released by the engine with reason `hold_ttl`: it expired.
      if (e.reason === 'hold_ttl') {
        type = 'expired'
        kind = 'hold'
      } else type = 'released'
      amount = -e.heldDelta
      break
    case 'expire':
      type = 'expired'
      kind = 'bucket'
      amount = -e.delta
      break
  }
  // The entry as callers see it already leaves out the fields it does not use.
  const { id: _id, account, type: entryType, at, ...figures } = e
  const data: Record<string, unknown> =
    kind === undefined
      ? { entryType, amount: amount + 0, ...figures }
      : { entryType, amount: amount + 0, kind, ...figures }
  return { type, account, at, data }
}

/**
 * The events of an operation the ledger has no entry for, in order: alert crossings (`low`,
 * `depleted`, `recovered`, once per crossing, with `available`) and then `debt_changed` (with
 * the account's `debt` after and `debtDelta`) when the operation's entries moved the debt.
 * Empty when nothing durable changed (replays, conflicts, refused reads).
 */
export function alertEvents(fx: Effects): EventDraft<AlertEventType>[] {
  if (!fx.changed || fx.replayed) return NO_EVENTS
  let out: EventDraft<AlertEventType>[] | undefined
  for (const e of fx.events) {
    if (e.type === 'low' || e.type === 'depleted' || e.type === 'recovered') {
      out ??= []
      out.push({ type: e.type, account: e.account, at: e.at, data: { available: e.available } })
    }
  }
  let debtDelta = 0
  for (const e of fx.entries) debtDelta += e.debtDelta
  if (debtDelta !== 0) {
    out ??= []
    out.push({
      type: 'debt_changed',
      account: fx.balance.account,
      at: fx.balance.asOf,
      data: { debt: fx.balance.debt, debtDelta },
    })
  }
  return out ?? NO_EVENTS
}

/** The shared answer of an operation with no alert (most): frozen, never pushed to. */
const NO_EVENTS: EventDraft<AlertEventType>[] = Object.freeze([]) as never
