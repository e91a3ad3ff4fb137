/**
 * Rows ↔ engine state. int8 arrives as a string from node-postgres and as a number from PGlite
 * and from JSON: `Number()` takes all three (values are safe integers by construction).
 */

import type { Category, LedgerEntry, LedgerEntryType, Metadata } from '@tollgate/core'
import {
  type AccountRecord,
  type AlertLevel,
  type BucketState,
  type CodeRecord,
  type CycleState,
  type EntryDraft,
  type EventDraft,
  type HoldState,
  type HoldStatus,
  type IdempotencyRecord,
  NO_METADATA,
  nextCycleAt,
  toLedgerEntry,
  type UsageFigures,
  usageDimensions,
  usageHour,
  usageOf,
} from '@tollgate/core/engine'
import { USAGE_TENANT_SHARDS } from './usage-sql.js'

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v))
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : num(v))

/** An account row as the lock statement returns it. */
export interface AccountRow {
  tenant: string
  account: string
  debt: unknown
  low_balance_threshold: unknown
  overdraft_limit: unknown
  alert_level: unknown
  cycle: CycleState | null
  redeem_failures: unknown
  redeem_window_start: unknown
  created_at: unknown
  claimed: boolean
}

export function recordFrom(row: AccountRow): AccountRecord {
  return {
    account: row.account,
    debt: num(row.debt),
    lowBalanceThreshold: numOrNull(row.low_balance_threshold),
    overdraftLimit: numOrNull(row.overdraft_limit),
    alertLevel: numOrNull(row.alert_level) as AlertLevel,
    cycle: row.cycle,
    redeemFailures: num(row.redeem_failures),
    redeemWindowStart: num(row.redeem_window_start),
    createdAt: num(row.created_at),
  }
}

/** The load statement's one row: JSON arrays of row tuples (null when empty). */
export interface LoadRow {
  buckets: unknown[][] | null
  holds: unknown[][] | null
  keys: unknown[][] | null
  codes: unknown[][] | null
  redemptions: unknown[][] | null
  /** [tenant, low_balance_threshold, overdraft_limit] of the batch's tenants that stored any. */
  settings: unknown[][] | null
}

/** A tenant settings row (int8 columns may come back as strings). */
export function tenantSettingsFrom(
  low: unknown,
  overdraft: unknown,
): { lowBalanceThreshold: number | null; overdraftLimit: number | null } {
  return {
    lowBalanceThreshold: low === null || low === undefined ? null : Number(low),
    overdraftLimit: overdraft === null || overdraft === undefined ? null : Number(overdraft),
  }
}

/** [tenant, account, id, amount, remaining, held, expires_at, priority, category, created_at, expired, cycle_id] */
export function bucketFrom(t: unknown[]): BucketState {
  return {
    id: t[2] as string,
    amount: num(t[3]),
    remaining: num(t[4]),
    held: num(t[5]),
    expiresAt: numOrNull(t[6]),
    priority: num(t[7]),
    category: t[8] as Category,
    createdAt: num(t[9]),
    expired: t[10] as boolean,
    cycleId: (t[11] as string | null) ?? null,
  }
}

/** [tenant, account, id, amount, expires_at, created_at, status, allocations, metadata, resolved_at] */
export function holdFrom(t: unknown[]): HoldState {
  return {
    id: t[2] as string,
    account: t[1] as string,
    amount: num(t[3]),
    expiresAt: num(t[4]),
    createdAt: num(t[5]),
    status: t[6] as HoldStatus,
    allocations: (t[7] as HoldState['allocations'] | null) ?? [],
    metadata: (t[8] as Metadata | null) ?? NO_METADATA,
    resolvedAt: numOrNull(t[9]),
  }
}

/** [tenant, key, account, fingerprint, result, created_at] */
export function keyFrom(t: unknown[]): IdempotencyRecord {
  return {
    key: t[1] as string,
    account: t[2] as string,
    fingerprint: t[3] as string,
    result: t[4],
    createdAt: num(t[5]),
  }
}

/** [tenant, hash, batch_id, credits, validity_days, code_expires_at, max_redemptions, redemptions, priority, category, created_at] */
export function codeFrom(t: unknown[]): CodeRecord {
  return {
    hash: t[1] as string,
    batchId: t[2] as string,
    credits: num(t[3]),
    validityDays: numOrNull(t[4]),
    codeExpiresAt: numOrNull(t[5]),
    maxRedemptions: num(t[6]),
    redemptions: num(t[7]),
    priority: num(t[8]),
    category: t[9] as Category,
    createdAt: num(t[10]),
  }
}

/** A ledger row as the ledger statement returns it. */
export interface LedgerRow {
  seq: unknown
  type: LedgerEntryType
  delta: unknown
  held_delta: unknown
  debt_delta: unknown
  balance_after: unknown
  hold_id: string | null
  grant_id: string | null
  redemption_id: string | null
  cycle_id: string | null
  idempotency_key: string | null
  reason: string | null
  metadata: Metadata | null
  at: unknown
}

export function entryFrom(account: string, row: LedgerRow): LedgerEntry {
  return toLedgerEntry({
    id: String(row.seq),
    account,
    type: row.type,
    delta: num(row.delta),
    heldDelta: num(row.held_delta),
    debtDelta: num(row.debt_delta),
    balanceAfter: num(row.balance_after),
    holdId: row.hold_id ?? undefined,
    grantId: row.grant_id ?? undefined,
    redemptionId: row.redemption_id ?? undefined,
    cycleId: row.cycle_id ?? undefined,
    idempotencyKey: row.idempotency_key ?? undefined,
    reason: row.reason ?? undefined,
    metadata: row.metadata ?? {},
    at: num(row.at),
  })
}

/** Metadata as stored: NULL when empty, else its JSON as given (json keeps it verbatim). */
export function metadataJson(m: Metadata): string | null {
  if (m === NO_METADATA) return null
  for (const _ in m) return JSON.stringify(m)
  return null
}

// ---------------------------------------------------------------- column arrays for `unnest`

/** One usage rollup row of a batch (usage-sql.ts). */
interface UsageRow extends UsageFigures {
  tenant: string
  account: string
  dimKey: string
  hour: number
  dimValue: string
}

/** The persist statement's parameters, one array per column. */
export class PersistColumns {
  // accounts
  readonly aTenant: string[] = []
  readonly aAccount: string[] = []
  readonly aNew: boolean[] = []
  readonly aDebt: number[] = []
  readonly aLow: (number | null)[] = []
  readonly aOverdraft: (number | null)[] = []
  readonly aAlert: (number | null)[] = []
  readonly aCycle: (string | null)[] = []
  readonly aCycleNext: (number | null)[] = []
  readonly aFailures: number[] = []
  readonly aWindow: number[] = []
  readonly aCreated: number[] = []
  // buckets
  readonly bTenant: string[] = []
  readonly bAccount: string[] = []
  readonly bId: string[] = []
  readonly bAmount: number[] = []
  readonly bRemaining: number[] = []
  readonly bHeld: number[] = []
  readonly bExpires: (number | null)[] = []
  readonly bPriority: number[] = []
  readonly bCategory: string[] = []
  readonly bCreated: number[] = []
  readonly bExpired: boolean[] = []
  readonly bCycle: (string | null)[] = []
  // holds
  readonly hTenant: string[] = []
  readonly hAccount: string[] = []
  readonly hId: string[] = []
  readonly hAmount: number[] = []
  readonly hExpires: number[] = []
  readonly hCreated: number[] = []
  readonly hStatus: string[] = []
  readonly hAllocations: (string | null)[] = []
  readonly hMetadata: (string | null)[] = []
  readonly hResolved: (number | null)[] = []
  // ledger
  readonly eTenant: string[] = []
  readonly eAccount: string[] = []
  readonly eType: string[] = []
  readonly eDelta: number[] = []
  readonly eHeld: number[] = []
  readonly eDebt: number[] = []
  readonly eBalance: number[] = []
  readonly eHold: (string | null)[] = []
  readonly eGrant: (string | null)[] = []
  readonly eRedemption: (string | null)[] = []
  readonly eCycle: (string | null)[] = []
  readonly eKey: (string | null)[] = []
  readonly eReason: (string | null)[] = []
  readonly eMetadata: (string | null)[] = []
  readonly eAt: number[] = []
  /** Place of each entry in the batch's event stream (used only when it has alerts). */
  readonly eOrd: number[] = []
  // alerts
  readonly xTenant: string[] = []
  readonly xAccount: string[] = []
  readonly xType: string[] = []
  readonly xData: string[] = []
  readonly xAt: number[] = []
  readonly xOrd: number[] = []
  /** Events (entries and alerts) so far: the next one's place in the stream is this + 1. */
  events = 0
  // idempotency
  readonly kTenant: string[] = []
  readonly kKey: string[] = []
  readonly kAccount: string[] = []
  readonly kFingerprint: string[] = []
  readonly kResult: string[] = []
  readonly kCreated: number[] = []
  // redemptions
  readonly rTenant: string[] = []
  readonly rHash: string[] = []
  readonly rAccount: string[] = []
  readonly rId: string[] = []
  readonly rAt: number[] = []
  // code counters
  readonly cTenant: string[] = []
  readonly cHash: string[] = []
  readonly cCount: number[] = []
  /**
   * The batch's usage rollup increments (usage-sql.ts), summed per row key
   * `tenant\0account\0dim_key\0hour\0dim_value`: one upsert row per key however many entries.
   */
  readonly #usage = new Map<string, UsageRow>()
  /**
   * The shard this batch adds the tenant's usage rows to (usage-sql.ts): one per batch, picked
   * at random so that concurrent batches of a tenant, in this process or another, rarely meet
   * on a tenant row and never wait on one lock all together.
   */
  readonly usageShard = Math.floor(Math.random() * USAGE_TENANT_SHARDS)

  /** Rows to write in all; 0 means the batch changed nothing. */
  get size(): number {
    return (
      this.aTenant.length +
      this.bTenant.length +
      this.hTenant.length +
      this.eTenant.length +
      this.xTenant.length +
      this.kTenant.length +
      this.rTenant.length +
      this.cTenant.length
    )
  }

  account(tenant: string, r: AccountRecord, isNew: boolean): void {
    this.aTenant.push(tenant)
    this.aAccount.push(r.account)
    this.aNew.push(isNew)
    this.aDebt.push(r.debt)
    this.aLow.push(r.lowBalanceThreshold)
    this.aOverdraft.push(r.overdraftLimit)
    this.aAlert.push(r.alertLevel)
    this.aCycle.push(r.cycle === null ? null : JSON.stringify(r.cycle))
    // The engine's next cycle time: the account rule of DUE_RULES reads it (cycle_next_at).
    this.aCycleNext.push(nextCycleAt(r))
    this.aFailures.push(r.redeemFailures)
    this.aWindow.push(r.redeemWindowStart)
    this.aCreated.push(r.createdAt)
  }

  bucket(tenant: string, account: string, b: BucketState): void {
    this.bTenant.push(tenant)
    this.bAccount.push(account)
    this.bId.push(b.id)
    this.bAmount.push(b.amount)
    this.bRemaining.push(b.remaining)
    this.bHeld.push(b.held)
    this.bExpires.push(b.expiresAt)
    this.bPriority.push(b.priority)
    this.bCategory.push(b.category)
    this.bCreated.push(b.createdAt)
    this.bExpired.push(b.expired)
    this.bCycle.push(b.cycleId)
  }

  hold(tenant: string, h: HoldState): void {
    this.hTenant.push(tenant)
    this.hAccount.push(h.account)
    this.hId.push(h.id)
    this.hAmount.push(h.amount)
    this.hExpires.push(h.expiresAt)
    this.hCreated.push(h.createdAt)
    this.hStatus.push(h.status)
    // A resolved hold needs no allocations (the engine drops them too).
    this.hAllocations.push(h.status === 'pending' ? JSON.stringify(h.allocations) : null)
    this.hMetadata.push(metadataJson(h.metadata))
    this.hResolved.push(h.resolvedAt)
  }

  entry(tenant: string, e: EntryDraft): void {
    this.eTenant.push(tenant)
    this.eAccount.push(e.account)
    this.eType.push(e.type)
    this.eDelta.push(e.delta)
    this.eHeld.push(e.heldDelta)
    this.eDebt.push(e.debtDelta)
    this.eBalance.push(e.balanceAfter)
    this.eHold.push(e.holdId ?? null)
    this.eGrant.push(e.grantId ?? null)
    this.eRedemption.push(e.redemptionId ?? null)
    this.eCycle.push(e.cycleId ?? null)
    this.eKey.push(e.idempotencyKey ?? null)
    this.eReason.push(e.reason ?? null)
    this.eMetadata.push(metadataJson(e.metadata))
    this.eAt.push(e.at)
    this.eOrd.push(++this.events)
    this.#addUsage(tenant, e)
  }

  /** Adds an entry's figures to its hour's rows: the account's and the tenant's, each dimension. */
  #addUsage(tenant: string, e: EntryDraft): void {
    const f = usageOf(e)
    if (f.granted === 0 && f.spent === 0 && f.released === 0 && f.expired === 0) return
    const hour = usageHour(e.at)
    const dims = usageDimensions(e.metadata)
    for (const account of [e.account, '']) {
      this.#usageRow(tenant, account, '', hour, '', f)
      for (const [key, value] of dims) this.#usageRow(tenant, account, key, hour, value, f)
    }
  }

  #usageRow(
    tenant: string,
    account: string,
    dimKey: string,
    hour: number,
    dimValue: string,
    f: UsageFigures,
  ): void {
    // NUL cannot occur in stored text (validation refuses it), so it separates the parts.
    const key = `${tenant}\0${account}\0${dimKey}\0${hour}\0${dimValue}`
    const row = this.#usage.get(key)
    if (row) {
      row.granted += f.granted
      row.spent += f.spent
      row.released += f.released
      row.expired += f.expired
    } else this.#usage.set(key, { tenant, account, dimKey, hour, dimValue, ...f })
  }

  /** The usage rows as the persist statement's nine arrays. */
  #usageColumns(): unknown[] {
    const cols: [
      string[],
      string[],
      string[],
      number[],
      string[],
      number[],
      number[],
      number[],
      number[],
    ] = [[], [], [], [], [], [], [], [], []]
    for (const r of this.#usage.values()) {
      cols[0].push(r.tenant)
      cols[1].push(r.account)
      cols[2].push(r.dimKey)
      cols[3].push(r.hour)
      cols[4].push(r.dimValue)
      cols[5].push(r.granted)
      cols[6].push(r.spent)
      cols[7].push(r.released)
      cols[8].push(r.expired)
    }
    return cols
  }

  alert(tenant: string, a: EventDraft): void {
    this.xTenant.push(tenant)
    this.xAccount.push(a.account)
    this.xType.push(a.type)
    this.xData.push(JSON.stringify(a.data))
    this.xAt.push(a.at)
    this.xOrd.push(++this.events)
  }

  key(tenant: string, k: IdempotencyRecord): void {
    this.kTenant.push(tenant)
    this.kKey.push(k.key)
    this.kAccount.push(k.account)
    this.kFingerprint.push(k.fingerprint)
    this.kResult.push(JSON.stringify(k.result))
    this.kCreated.push(k.createdAt)
  }

  redemption(tenant: string, hash: string, account: string, id: string, at: number): void {
    this.rTenant.push(tenant)
    this.rHash.push(hash)
    this.rAccount.push(account)
    this.rId.push(id)
    this.rAt.push(at)
  }

  codeCount(tenant: string, c: CodeRecord): void {
    this.cTenant.push(tenant)
    this.cHash.push(c.hash)
    this.cCount.push(c.redemptions)
  }

  /** In the order of the persist statement's placeholders. */
  params(): unknown[] {
    return [
      this.aTenant,
      this.aAccount,
      this.aNew,
      this.aDebt,
      this.aLow,
      this.aOverdraft,
      this.aAlert,
      this.aCycle,
      this.aCycleNext,
      this.aFailures,
      this.aWindow,
      this.aCreated,
      this.bTenant,
      this.bAccount,
      this.bId,
      this.bAmount,
      this.bRemaining,
      this.bHeld,
      this.bExpires,
      this.bPriority,
      this.bCategory,
      this.bCreated,
      this.bExpired,
      this.bCycle,
      this.hTenant,
      this.hAccount,
      this.hId,
      this.hAmount,
      this.hExpires,
      this.hCreated,
      this.hStatus,
      this.hAllocations,
      this.hMetadata,
      this.hResolved,
      this.eTenant,
      this.eAccount,
      this.eType,
      this.eDelta,
      this.eHeld,
      this.eDebt,
      this.eBalance,
      this.eHold,
      this.eGrant,
      this.eRedemption,
      this.eCycle,
      this.eKey,
      this.eReason,
      this.eMetadata,
      this.eAt,
      this.kTenant,
      this.kKey,
      this.kAccount,
      this.kFingerprint,
      // One JSON array, not a json[] literal: pg escapes every quote of every element into the
      // literal (~0.7 ms per 64 results of ~400 bytes), and PostgreSQL unescapes it again.
      `[${this.kResult.join(',')}]`,
      this.kCreated,
      this.rTenant,
      this.rHash,
      this.rAccount,
      this.rId,
      this.rAt,
      this.cTenant,
      this.cHash,
      this.cCount,
      ...this.#usageColumns(),
      this.usageShard,
      ...(this.xTenant.length === 0
        ? []
        : [
            this.events,
            this.eOrd,
            this.xTenant,
            this.xAccount,
            this.xType,
            this.xData,
            this.xAt,
            this.xOrd,
          ]),
    ]
  }
}
