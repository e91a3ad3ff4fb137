/**
 * One batch of operations in one transaction: lock the accounts → load their state → run the
 * engine op by op in arrival order → write what changed. Four statements, however many
 * operations and accounts the batch holds.
 *
 * A shared batch waits for no account: accounts whose row another transaction holds are
 * skipped, and their operations are handed back (`contended`) to wait for the lock in a
 * transaction of their own (see sql-store.ts).
 *
 * Per account the state carries from one operation to the next, exactly as if they had run one
 * at a time: a hold created by an earlier operation is visible to a later one, and so is an
 * idempotency record or a code redemption saved earlier in the batch.
 */

import { NotFoundError, type TenantSettings } from '@tollgate/core'
import {
  type AccountState,
  alertEvents,
  applyOperation,
  type CodeLookup,
  type CodeRecord,
  type HoldState,
  holdsToLoad,
  type IdempotencyRecord,
  newAccountState,
} from '@tollgate/core/engine'
import {
  type ExecuteRequest,
  errorOutcome,
  NO_TENANT_SETTINGS,
  type Outcome,
  withTenantSettings,
} from '@tollgate/core/store'
import type { SqlClient } from './driver.js'
import {
  type AccountRow,
  bucketFrom,
  codeFrom,
  holdFrom,
  keyFrom,
  type LoadRow,
  PersistColumns,
  recordFrom,
  tenantSettingsFrom,
} from './rows.js'
import type { Statements } from './statements.js'

/** One queued operation. */
export interface BatchItem {
  readonly req: ExecuteRequest
  /**
   * For hold operations: the hold's account if this process has seen the hold (see
   * {@link HoldAccounts}), so the operation can be locked and scheduled with its account.
   */
  readonly holdAccount: string | undefined
  /** `tenant\0account` when the account is known before loading; null for an unknown hold's. */
  readonly accountKey: string | null
  /**
   * When the caller stops waiting, in `performance.now()` time: the operation is not started
   * after it, and its transaction does not commit after it.
   */
  readonly deadline: number
  readonly resolve: (outcome: Outcome) => void
  readonly reject: (err: unknown) => void
}

/** What a committed batch tells the store besides the outcomes. */
export interface BatchResult {
  /** By item; undefined for the contended ones, which did not run. */
  outcomes: (Outcome | undefined)[]
  /** Holds written by the batch: [tenant, hold id, account, still pending]. */
  holds: [string, string, string, boolean][]
  /**
   * Items that did not run because their account's row was locked elsewhere (only when the
   * batch was run with `skipLocked`): their index and `tenant\0account`.
   */
  contended: { index: number; accountKey: string }[]
  /**
   * What the batch's change notification is to say once it has committed (null when it wrote
   * nothing, or the store sends no notifications): the accounts it changed, and its highest
   * sequence number.
   */
  changes: { seq: number; accounts: [string, string][] } | null
}

/**
 * The engine threw on one operation (a bug, not a refusal: refusals are outcomes). The batch is
 * rolled back, since the account's state may be half-changed; the store fails that operation
 * alone and runs the others again.
 */
export class FailedOperationError extends Error {
  constructor(
    readonly index: number,
    cause: unknown,
  ) {
    super('the engine failed on an operation', { cause })
    this.name = 'FailedOperationError'
  }
}

/** Tenants, accounts, hold ids and keys never contain NUL (core and the store refuse it). */
const SEP = '\u0000'
const key2 = (a: string, b: string) => a + SEP + b

/** One account of the batch while the engine runs. */
interface AccountCtx {
  tenant: string
  state: AccountState
  isNew: boolean
  /** A sweeper claimed it: writing the row clears the claim. */
  claimed: boolean
  /** Holds known in this batch (loaded or created), by id. */
  holds: Map<string, HoldState>
  changed: boolean
  recordDirty: boolean
  buckets: Set<AccountState['buckets'][number]>
  dirtyHolds: Set<HoldState>
}

function newCtx(tenant: string, state: AccountState, isNew: boolean, claimed: boolean): AccountCtx {
  return {
    tenant,
    state,
    isNew,
    claimed,
    holds: new Map(),
    changed: false,
    recordDirty: false,
    buckets: new Set(),
    dirtyHolds: new Set(),
  }
}

function notFound(holdId: string): Outcome {
  return errorOutcome(new NotFoundError('hold', holdId))
}

/** Deduplicating builder of parallel parameter arrays. */
class Keys {
  readonly seen = new Set<string>()
  readonly cols: string[][]
  constructor(width: number) {
    this.cols = Array.from({ length: width }, () => [])
  }
  add(...values: string[]): void {
    const k = values.join(SEP)
    if (this.seen.has(k)) return
    this.seen.add(k)
    for (let i = 0; i < values.length; i++) this.cols[i]!.push(values[i]!)
  }
}

/**
 * Runs the batch inside the caller's transaction. Throws on any database error.
 * `skipLocked`: take only the account locks free at once (see {@link BatchResult.contended});
 * otherwise wait for every lock.
 */
export async function runBatch(
  db: SqlClient,
  st: Statements,
  items: readonly BatchItem[],
  skipLocked: boolean,
): Promise<BatchResult> {
  // ---- 1. what the batch touches
  const lockAccounts = new Keys(2)
  const unknownHolds = new Keys(2)
  const namedHolds = new Keys(2)
  const keys = new Keys(2)
  const codeKeys = new Keys(2)
  const redemptionKeys = new Keys(3)
  const tenants = new Set<string>()
  let maxNow = Number.NEGATIVE_INFINITY
  for (const { req, holdAccount } of items) {
    const { tenant, op } = req
    tenants.add(tenant)
    if (req.now > maxNow) maxNow = req.now
    if (req.account !== undefined) lockAccounts.add(tenant, req.account)
    else if ('holdId' in op) {
      namedHolds.add(tenant, op.holdId)
      if (holdAccount !== undefined) lockAccounts.add(tenant, holdAccount)
      else unknownHolds.add(tenant, op.holdId)
    }
    if (op.idempotencyKey !== undefined) keys.add(tenant, op.idempotencyKey)
    if (op.type === 'redeem' && req.account !== undefined) {
      codeKeys.add(tenant, op.codeHash)
      redemptionKeys.add(tenant, op.codeHash, req.account)
    }
  }

  // ---- 2. lock, then load
  const lockParams: unknown[] = [...lockAccounts.cols, ...unknownHolds.cols]
  if (st.guardClass !== null) lockParams.push(st.guardClass)
  const rows = await db.query<AccountRow & { skipped?: boolean }>(
    skipLocked ? st.lockOrSkip : st.lock,
    lockParams,
  )
  const accounts = new Map<string, AccountCtx>()
  /** Accounts whose row another transaction holds (`tenant\0account`). */
  const skipped = new Set<string>()
  const loadTenants: string[] = []
  const loadAccounts: string[] = []
  for (const row of rows) {
    if (row.skipped === true) {
      skipped.add(key2(row.tenant, row.account))
      continue
    }
    const state: AccountState = { record: recordFrom(row), buckets: [], holds: [] }
    accounts.set(key2(row.tenant, row.account), newCtx(row.tenant, state, false, row.claimed))
    loadTenants.push(row.tenant)
    loadAccounts.push(row.account)
  }
  const [loaded] = await db.query<LoadRow>(st.load, [
    loadTenants,
    loadAccounts,
    ...namedHolds.cols,
    maxNow,
    ...keys.cols,
    ...codeKeys.cols,
    ...redemptionKeys.cols,
    [...tenants],
  ])
  /** The stored default settings of the batch's tenants that have any. */
  const stored = new Map<string, TenantSettings>()
  for (const t of loaded?.settings ?? []) {
    stored.set(t[0] as string, tenantSettingsFrom(t[1], t[2]))
  }
  for (const t of loaded?.buckets ?? []) {
    accounts.get(key2(t[0] as string, t[1] as string))?.state.buckets.push(bucketFrom(t))
  }
  /** Holds by tenant and id: loaded ones, then those the batch creates. */
  const holdIndex = new Map<string, HoldState>()
  /** Named holds whose account was skipped: `tenant\0holdId` → `tenant\0account`. */
  const contendedHolds = new Map<string, string>()
  for (const t of loaded?.holds ?? []) {
    const k = key2(t[0] as string, t[2] as string)
    if (holdIndex.has(k)) continue // named and due: the union returns it twice
    const hold = holdFrom(t)
    const accountKey = key2(t[0] as string, hold.account)
    const ctx = accounts.get(accountKey)
    if (!ctx) {
      if (skipped.has(accountKey)) contendedHolds.set(k, accountKey)
      // Otherwise the hold was created after the lock statement looked: for this batch it
      // does not exist yet.
      continue
    }
    holdIndex.set(k, hold)
    ctx.holds.set(hold.id, hold)
  }
  const idempotency = new Map<string, IdempotencyRecord>()
  for (const t of loaded?.keys ?? [])
    idempotency.set(key2(t[0] as string, t[1] as string), keyFrom(t))
  const codes = new Map<string, CodeRecord>()
  for (const t of loaded?.codes ?? []) codes.set(key2(t[0] as string, t[1] as string), codeFrom(t))
  const redeemed = new Set<string>()
  for (const t of loaded?.redemptions ?? []) redeemed.add((t as string[]).join(SEP))

  // ---- 3. the engine, op by op in arrival order
  const out = new PersistColumns()
  const outcomes: (Outcome | undefined)[] = []
  const contended: BatchResult['contended'] = []
  const dirtyCodes = new Map<string, [string, CodeRecord]>()
  for (let index = 0; index < items.length; index++) {
    const { req } = items[index]!
    const { tenant, op, now } = req
    let ctx: AccountCtx | undefined
    let named: HoldState | undefined
    if (req.account === undefined) {
      const holdId = (op as { holdId: string }).holdId
      named = holdIndex.get(key2(tenant, holdId))
      ctx = named && accounts.get(key2(tenant, named.account))
      if (!ctx) {
        const accountKey = contendedHolds.get(key2(tenant, holdId))
        if (accountKey !== undefined) {
          contended.push({ index, accountKey })
          outcomes.push(undefined)
        } else {
          outcomes.push(notFound(holdId))
        }
        continue
      }
    } else {
      const k = key2(tenant, req.account)
      if (skipped.has(k)) {
        contended.push({ index, accountKey: k })
        outcomes.push(undefined)
        continue
      }
      ctx = accounts.get(k)
      if (!ctx) {
        ctx = newCtx(tenant, newAccountState(req.account, now), true, false)
        accounts.set(k, ctx)
      }
    }
    const state = ctx.state
    const account = state.record.account
    // The named hold (any status) and every pending hold due at this operation's time.
    state.holds = holdsToLoad(named, ctx.holds.values(), now)
    const idemKey = op.idempotencyKey
    let code: CodeLookup | undefined
    if (op.type === 'redeem') {
      code = {
        code: codes.get(key2(tenant, op.codeHash)) ?? null,
        redeemedByAccount: redeemed.has(`${tenant}${SEP}${op.codeHash}${SEP}${account}`),
      }
    }
    let fx: ReturnType<typeof applyOperation>
    try {
      fx = applyOperation(state, op, {
        now,
        config: withTenantSettings(req.config, stored.get(tenant) ?? NO_TENANT_SETTINGS),
        idempotency:
          idemKey === undefined ? null : (idempotency.get(key2(tenant, idemKey)) ?? null),
        code,
        newId: req.newId,
      })
    } catch (err) {
      throw new FailedOperationError(index, err)
    }
    outcomes.push(fx)
    // The first evaluation of the alert level changes the record without `changed`: it is
    // written only if something else of the account is.
    if (fx.recordChanged) ctx.recordDirty = true
    if (!fx.changed) continue
    ctx.changed = true
    for (const b of fx.touchedBuckets) ctx.buckets.add(b)
    for (const h of fx.touchedHolds) {
      ctx.dirtyHolds.add(h)
      if (!ctx.holds.has(h.id)) {
        ctx.holds.set(h.id, h)
        holdIndex.set(key2(tenant, h.id), h)
      }
    }
    for (const e of fx.entries) out.entry(tenant, e)
    for (const a of alertEvents(fx)) out.alert(tenant, a)
    const saved = fx.saveIdempotency
    if (saved) {
      idempotency.set(key2(tenant, saved.key), saved)
      out.key(tenant, saved)
    }
    if (fx.redemption) {
      const { codeHash, redemptionId } = fx.redemption
      redeemed.add(`${tenant}${SEP}${codeHash}${SEP}${account}`)
      out.redemption(tenant, codeHash, account, redemptionId, now)
      const record = code?.code
      if (record) dirtyCodes.set(key2(tenant, codeHash), [tenant, record])
    }
  }

  // ---- 4. write the final version of every row the batch changed
  const holdsWritten: BatchResult['holds'] = []
  for (const ctx of accounts.values()) {
    if (!ctx.changed) continue
    const account = ctx.state.record.account
    if (ctx.isNew || ctx.recordDirty || ctx.claimed)
      out.account(ctx.tenant, ctx.state.record, ctx.isNew)
    for (const b of ctx.buckets) out.bucket(ctx.tenant, account, b)
    for (const h of ctx.dirtyHolds) {
      out.hold(ctx.tenant, h)
      holdsWritten.push([ctx.tenant, h.id, account, h.status === 'pending'])
    }
  }
  for (const [tenant, record] of dirtyCodes.values()) out.codeCount(tenant, record)
  let changes: BatchResult['changes'] = null
  if (out.size > 0) {
    const [row] = await db.query<{ seq: unknown }>(
      out.xTenant.length > 0 ? st.persistWithAlerts : st.persist,
      out.params(),
    )
    if (st.channel !== null) {
      const changed: [string, string][] = []
      for (const ctx of accounts.values()) {
        if (ctx.changed) changed.push([ctx.tenant, ctx.state.record.account])
      }
      changes = { seq: Number(row?.seq ?? 0), accounts: changed }
    }
  }
  return { outcomes, holds: holdsWritten, contended, changes }
}
