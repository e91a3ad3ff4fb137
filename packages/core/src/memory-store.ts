/**
 * `memoryStore()`: every tenant's state in process memory. Each `execute` runs synchronously
 * between two awaits, so operations on one account are serialised without locks. Nothing
 * survives the process: use it for tests, demos and single-process apps that re-grant on start.
 */
import { applyOperation, newAccountState, toLedgerEntry } from './engine/apply.js'
import { periodStart } from './engine/periods.js'
import type {
  AccountState,
  CodeRecord,
  EntryDraft,
  HoldState,
  IdempotencyRecord,
} from './engine/state.js'
import { NotFoundError } from './errors.js'
import type {
  CodeBatch,
  CodeBatchOutcome,
  ExecuteRequest,
  LedgerRequest,
  Outcome,
  Store,
} from './store.js'
import { encodeCursor } from './store.js'
import type { LedgerEntry, LedgerPage } from './types.js'

/** Options of {@link memoryStore}. None yet; the object is accepted for symmetry with other stores. */
export type MemoryStoreOptions = Record<string, never>

interface MemAccount {
  state: AccountState
  /** Pending holds by id. */
  pending: Map<string, HoldState>
  /** No pending hold expires before this (a lower bound; exact after each scan). */
  nextHoldExpiry: number
  /** Oldest first; `id` is the tenant sequence number as a string. */
  entries: EntryDraft[]
}

interface MemTenant {
  accounts: Map<string, MemAccount>
  /** Every hold by id until pruned; resolved ones answer "already resolved". */
  holds: Map<string, HoldState>
  idempotency: Map<string, IdempotencyRecord>
  codes: Map<string, CodeRecord>
  /** `${codeHash}\n${account}` of every redemption. */
  redemptions: Set<string>
  seq: number
}

function newTenant(): MemTenant {
  return {
    accounts: new Map(),
    holds: new Map(),
    idempotency: new Map(),
    codes: new Map(),
    redemptions: new Set(),
    seq: 0,
  }
}

class MemoryStore implements Store {
  readonly kind = 'memory'
  readonly #tenants = new Map<string, MemTenant>()

  #tenant(name: string): MemTenant {
    let t = this.#tenants.get(name)
    if (!t) {
      t = newTenant()
      this.#tenants.set(name, t)
    }
    return t
  }

  /** The whole operation, synchronously: this is what makes it atomic. */
  execute(req: ExecuteRequest): Outcome {
    const t = this.#tenant(req.tenant)
    const { op, now } = req
    let acct: MemAccount | undefined
    let isNew = false
    const holds: HoldState[] = []
    if (req.account === undefined) {
      const holdId = (op as { holdId: string }).holdId
      const found = t.holds.get(holdId)
      acct = found && t.accounts.get(found.account)
      if (!found || !acct) {
        return {
          result: null,
          error: new NotFoundError('hold', holdId),
          replayed: false,
          balance: null,
          events: [],
        }
      }
      holds.push(found)
    } else {
      acct = t.accounts.get(req.account)
      if (!acct) {
        isNew = true
        acct = {
          state: newAccountState(req.account, now),
          pending: new Map(),
          nextHoldExpiry: Number.POSITIVE_INFINITY,
          entries: [],
        }
      }
    }
    if (now >= acct.nextHoldExpiry) {
      let next = Number.POSITIVE_INFINITY
      for (const h of acct.pending.values()) {
        if (h.expiresAt <= now) {
          if (!holds.includes(h)) holds.push(h)
        } else if (h.expiresAt < next) next = h.expiresAt
      }
      acct.nextHoldExpiry = next
    }
    const state = acct.state
    state.holds = holds
    const key = op.idempotencyKey
    let code: { code: CodeRecord | null; redeemedByAccount: boolean } | undefined
    if (op.type === 'redeem') {
      const record = t.codes.get(op.codeHash) ?? null
      code = {
        code: record,
        redeemedByAccount: t.redemptions.has(`${op.codeHash}\n${state.record.account}`),
      }
    }
    const fx = applyOperation(state, op, {
      now,
      config: req.config,
      idempotency: key === undefined ? null : (t.idempotency.get(key) ?? null),
      code,
      newId: req.newId,
    })
    if (fx.changed) {
      const account = state.record.account
      if (isNew) t.accounts.set(account, acct)
      for (const h of fx.touchedHolds) {
        if (h.status === 'pending') {
          if (!acct.pending.has(h.id)) {
            acct.pending.set(h.id, h)
            t.holds.set(h.id, h)
          }
          if (h.expiresAt < acct.nextHoldExpiry) acct.nextHoldExpiry = h.expiresAt
        } else {
          acct.pending.delete(h.id)
        }
      }
      for (const entry of fx.entries) {
        entry.id = String(++t.seq)
        acct.entries.push(entry)
      }
      if (fx.saveIdempotency) t.idempotency.set(fx.saveIdempotency.key, fx.saveIdempotency)
      if (fx.redemption) t.redemptions.add(`${fx.redemption.codeHash}\n${account}`)
    }
    state.holds = []
    return fx
  }

  async ledger(tenant: string, account: string, req: LedgerRequest): Promise<LedgerPage> {
    const acct = this.#tenants.get(tenant)?.accounts.get(account)
    if (!acct) return { entries: [], nextCursor: null }
    const out: LedgerEntry[] = []
    let i = acct.entries.length - 1
    if (req.before !== null) {
      while (i >= 0 && Number(acct.entries[i]!.id) >= req.before) i--
    }
    let lastSeq = 0
    for (; i >= 0 && out.length < req.limit; i--) {
      const e = acct.entries[i]!
      if (req.types && !req.types.includes(e.type)) continue
      if (req.from !== null && e.at < req.from) continue
      if (req.to !== null && e.at >= req.to) continue
      out.push(toLedgerEntry(e))
      lastSeq = Number(e.id)
    }
    // A further page exists if any older entry is left to look at.
    return {
      entries: out,
      nextCursor: out.length === req.limit && i >= 0 ? encodeCursor(lastSeq) : null,
    }
  }

  async createCodes(tenant: string, batch: CodeBatch): Promise<CodeBatchOutcome> {
    const t = this.#tenant(tenant)
    if (batch.idempotency) {
      const saved = t.idempotency.get(batch.idempotency.key)
      if (saved) {
        return saved.account === '' && saved.fingerprint === batch.idempotency.fingerprint
          ? { status: 'replayed', result: saved.result }
          : { status: 'conflict' }
      }
      t.idempotency.set(batch.idempotency.key, {
        key: batch.idempotency.key,
        account: '',
        fingerprint: batch.idempotency.fingerprint,
        result: batch.idempotency.result,
        createdAt: batch.now,
      })
    }
    for (const code of batch.codes) t.codes.set(code.hash, code)
    return { status: 'created' }
  }

  async dueAccounts(tenant: string, now: number, limit: number): Promise<string[]> {
    const t = this.#tenants.get(tenant)
    if (!t) return []
    const due: string[] = []
    for (const [name, acct] of t.accounts) {
      if (due.length >= limit) break
      if (isDue(acct, now)) due.push(name)
    }
    return due
  }

  async prune(tenant: string, before: number): Promise<number> {
    const t = this.#tenants.get(tenant)
    if (!t) return 0
    let n = 0
    for (const [key, rec] of t.idempotency) {
      if (rec.createdAt < before) {
        t.idempotency.delete(key)
        n++
      }
    }
    for (const [id, hold] of t.holds) {
      if (hold.status !== 'pending' && hold.resolvedAt !== null && hold.resolvedAt < before) {
        t.holds.delete(id)
        n++
      }
    }
    return n
  }

  async close(): Promise<void> {
    this.#tenants.clear()
  }
}

function isDue(acct: MemAccount, now: number): boolean {
  for (const h of acct.pending.values()) if (h.expiresAt <= now) return true
  for (const b of acct.state.buckets) {
    if (!b.expired && b.expiresAt !== null && b.expiresAt <= now) return true
  }
  const cycle = acct.state.record.cycle
  return cycle?.active === true && periodStart(cycle.anchor, cycle.every, cycle.period + 1) <= now
}

/**
 * An in-process store. Fast and exact, not durable.
 * @example
 * const meter = createMeter({ store: memoryStore() })
 */
export function memoryStore(_options: MemoryStoreOptions = {}): Store {
  return new MemoryStore()
}
