/**
 * `memoryStore()`: every tenant's state in process memory. Each `execute` runs synchronously
 * between two awaits, so operations on one account are serialised without locks. Nothing
 * survives the process: use it for tests, demos and single-process apps that re-grant on start.
 */
import { applyOperation, newAccountState } from '../engine/apply.js'
import { isAccountDue, isDue, isHoldDue } from '../engine/due.js'
import { type AlertEventType, alertEvents, type EventDraft, entryEvent } from '../engine/events.js'
import { decideCodeBatch } from '../engine/idempotency.js'
import type {
  AccountState,
  CodeRecord,
  EngineConfig,
  HoldState,
  IdempotencyRecord,
} from '../engine/state.js'
import { accountSummary } from '../engine/summary.js'
import { usageReportOf, usageWindow } from '../engine/usage.js'
import { NotFoundError } from '../errors.js'
import { readOptions, warn } from '../options-kit.js'
import type {
  AccountSummary,
  AccountsPage,
  LedgerEntry,
  LedgerPage,
  TenantSettings,
  UsageReport,
  UsageRequest,
} from '../types.js'
import { pageAccounts } from './accounts.js'
import { eventId, randomChars } from './ids.js'
import { MemoryLedger } from './memory-ledger.js'
import { NumberColumn } from './number-column.js'
import type {
  AccountChange,
  AccountsRequest,
  CodeBatch,
  CodeBatchOutcome,
  EventsRequest,
  ExecuteRequest,
  LedgerRequest,
  Outcome,
  Store,
  StoredEvent,
  WatchListener,
  WatchSubscription,
} from './store.js'
import {
  encodeCursor,
  errorOutcome,
  type KeyRegistry,
  memoryKeyRegistry,
  NO_TENANT_SETTINGS,
  patchTenantSettings,
  withTenantSettings,
} from './store.js'
import { memoryWebhookRegistry, type WebhookRegistry } from './webhooks.js'

/** Options of {@link memoryStore}. None yet; the object is accepted for symmetry with other stores. */
export type MemoryStoreOptions = Record<string, never>

/** Changes queued for watchers before they are told without waiting for the microtask. */
const MAX_PENDING_CHANGES = 10_000
/** Code of the warning a watch listener that throws raises. */
const LISTENER_ERROR_WARNING = 'TOLLGATE_LISTENER_ERROR'

/** Redeem failure windows kept per tenant (`noteRedeemFailure`): the current and the one before. */
const MAX_REDEEM_WINDOWS = 2

/**
 * Settled holds an account's pending map may keep while nothing is pending, before it is
 * remade: remaking it after every settled hold cost a Map per reserve+commit pair.
 */
const STALE_RESET = 8

/** Hold status codes kept per hold sequence number (one byte each). */
const STATUS = { pending: 1, committed: 2, released: 3, expired: 4 } as const
const STATUS_NAME = [undefined, 'pending', 'committed', 'released', 'expired'] as const

interface MemAccount {
  /** Index in {@link MemTenant.byNo}; part of this account's hold ids. */
  no: number
  /** Index in the store's list of every tenant's accounts (the outbox names accounts by it). */
  storeNo: number
  tenant: MemTenant
  state: AccountState
  /** Pending holds by sequence number. */
  /**
   * Pending holds by sequence number. A hold that resolves stays until the map is rebuilt
   * (readers check `status`): one Map.delete per settled hold cost more than the rest of the
   * store's bookkeeping together, a rebuild now and then costs next to nothing.
   */
  pending: Map<number, HoldState>
  /** Entries of `pending` whose hold is no longer pending. */
  stale: number
  /** Entries of `pending` whose hold is pending. */
  live: number
  /** Holds created so far; the next hold's sequence number. */
  holdSeq: number
  /** Status of every hold by sequence number: resolved holds cost one byte, not an object. */
  status: Uint8Array
  /** When TTL-expired holds expired, by sequence number (for HoldExpiredError). */
  expiredAt: Map<number, number>
  /** No pending hold expires before this (a lower bound; exact after each scan). */
  nextHoldExpiry: number
  /** Oldest first. */
  ledger: MemoryLedger
}

interface MemTenant {
  name: string
  /** `hld_<store tag><tenant no>_`: every hold id of this tenant starts with it. */
  holdPrefix: string
  accounts: Map<string, MemAccount>
  byNo: MemAccount[]
  idempotency: Map<string, IdempotencyRecord>
  codes: Map<string, CodeRecord>
  /** `${codeHash}\n${account}` of every redemption. */
  redemptions: Set<string>
  /** Accounts that failed a redemption, by window start: the two latest windows only. */
  redeemFailures: Map<number, Set<string>>
  /** Store sequence numbers of this tenant's events, oldest first (`events()` for one tenant). */
  events: NumberColumn
  /** Stored default settings (`putTenantSettings`). */
  settings: TenantSettings
  /** The last meter config seen and that config under `settings`: one merge per change. */
  configSeen: EngineConfig | null
  configMerged: EngineConfig | null
}

function newTenant(name: string, holdPrefix: string): MemTenant {
  return {
    name,
    holdPrefix,
    accounts: new Map(),
    byNo: [],
    idempotency: new Map(),
    codes: new Map(),
    redemptions: new Set(),
    redeemFailures: new Map(),
    events: new NumberColumn(),
    settings: NO_TENANT_SETTINGS,
    configSeen: null,
    configMerged: null,
  }
}

class MemoryStore implements Store {
  readonly kind = 'memory'
  readonly keys: KeyRegistry = memoryKeyRegistry()
  readonly webhooks: WebhookRegistry = memoryWebhookRegistry()
  readonly #tenants = new Map<string, MemTenant>()
  /** Tenant names in order, for `tenants()`; remade when a tenant was added (none is removed). */
  #sorted: string[] | null = null
  /**
   * Hold ids are `hld_<store tag><tenant no>_<account no>_<sequence>` (base 36): unique in the
   * process, and the id itself locates the hold, so the store keeps no index of holds; an id
   * from another memory store or tenant is not found.
   */
  readonly #tag = randomChars(6)
  /**
   * The outbox. Every ledger entry and every alert takes the next store sequence number, so
   * event `seq` is at index `seq − 1`: its account, and its entry's index in the account's
   * ledger (or −1 for an alert, kept in {@link #alerts}). Entries are not copied: an event is
   * read from the ledger. Kept as long as the ledger is (the store's life).
   */
  #seq = 0
  /** Every tenant's accounts, by {@link MemAccount.storeNo}. */
  #accounts: MemAccount[] = []
  /** Per event, by `seq − 1`: its account's `storeNo`, and its entry's index (−1: an alert). */
  readonly #eventAccount = new NumberColumn()
  readonly #eventEntry = new NumberColumn()
  readonly #alerts = new Map<number, EventDraft<AlertEventType>>()
  readonly #watchers = new Set<WatchListener>()
  /** Changes not yet told to the watchers: flushed in a microtask, or at once when full. */
  #changes: AccountChange[] = []

  #tenant(name: string): MemTenant {
    let t = this.#tenants.get(name)
    if (!t) {
      t = newTenant(name, `hld_${this.#tag}${this.#tenants.size.toString(36)}_`)
      this.#tenants.set(name, t)
    }
    return t
  }

  #holdId(t: MemTenant, acct: MemAccount, seq: number): string {
    return `${t.holdPrefix}${acct.no.toString(36)}_${seq.toString(36)}`
  }

  /** The account and hold a hold id names in this tenant, or undefined. */
  #findHold(
    t: MemTenant,
    id: string,
  ): { acct: MemAccount; hold: HoldState; seq: number } | undefined {
    // Another store's or another tenant's hold id has another prefix: not found here.
    if (!id.startsWith(t.holdPrefix)) return undefined
    const b = t.holdPrefix.length
    const c = id.indexOf('_', b)
    if (c < 0) return undefined
    const acct = t.byNo[Number.parseInt(id.slice(b, c), 36)]
    const seq = Number.parseInt(id.slice(c + 1), 36)
    if (!acct || !(seq >= 0 && seq < acct.holdSeq)) return undefined
    const pending = acct.pending.get(seq)
    if (pending?.status === 'pending') return { acct, hold: pending, seq }
    const status = STATUS_NAME[acct.status[seq]!]
    if (status === undefined || status === 'pending') return undefined
    // A resolved hold: only its status matters to the engine (it answers "resolved"/"expired").
    const expiresAt = acct.expiredAt.get(seq) ?? 0
    return {
      acct,
      seq,
      hold: {
        id,
        account: acct.state.record.account,
        amount: 0,
        expiresAt,
        createdAt: 0,
        status,
        allocations: [],
        metadata: {},
        resolvedAt: expiresAt,
      },
    }
  }

  /** The whole operation, synchronously: this is what makes it atomic. */
  execute(req: ExecuteRequest): Outcome {
    const t = this.#tenant(req.tenant)
    const { op, now } = req
    let acct: MemAccount | undefined
    let isNew = false
    const holds: HoldState[] = []
    // Sequence numbers of `holds`, by index; a hold the engine adds is the newest one.
    const seqs: number[] = []
    if (req.account === undefined) {
      const holdId = (op as { holdId: string }).holdId
      const found = this.#findHold(t, holdId)
      if (!found) {
        return errorOutcome(new NotFoundError('hold', holdId))
      }
      acct = found.acct
      holds.push(found.hold)
      seqs.push(found.seq)
    } else {
      acct = t.accounts.get(req.account)
      if (!acct) {
        isNew = true
        acct = {
          no: t.byNo.length,
          storeNo: -1,
          tenant: t,
          state: newAccountState(req.account, now),
          pending: new Map(),
          stale: 0,
          live: 0,
          holdSeq: 0,
          status: new Uint8Array(16),
          expiredAt: new Map(),
          nextHoldExpiry: Number.POSITIVE_INFINITY,
          ledger: new MemoryLedger(),
        }
      }
    }
    // The engine's rule for the holds to load (the named one, every due pending one); the next
    // expiry skips the scan while no pending hold can be due.
    const scan = isDue(acct.nextHoldExpiry, now)
    if (scan) {
      for (const [seq, h] of acct.pending) {
        if (isHoldDue(h, now) && !holds.includes(h)) {
          holds.push(h)
          seqs.push(seq)
        }
      }
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
    const a = acct
    if (t.configSeen !== req.config) {
      t.configSeen = req.config
      t.configMerged = withTenantSettings(req.config, t.settings)
    }
    const fx = applyOperation(state, op, {
      now,
      config: t.configMerged!,
      idempotency: key === undefined ? null : (t.idempotency.get(key) ?? null),
      code,
      newId: (prefix, at) =>
        prefix === 'hld' ? this.#holdId(t, a, a.holdSeq++) : req.newId(prefix, at),
    })
    if (fx.changed) {
      if (isNew) {
        t.accounts.set(state.record.account, acct)
        t.byNo.push(acct)
        acct.storeNo = this.#accounts.length
        this.#accounts.push(acct)
      }
      if (acct.holdSeq > acct.status.length) {
        const grown = new Uint8Array(Math.max(acct.holdSeq, acct.status.length * 2))
        grown.set(acct.status)
        acct.status = grown
      }
      for (const h of fx.touchedHolds) {
        const i = holds.indexOf(h)
        const seq = i >= 0 && i < seqs.length ? seqs[i]! : acct.holdSeq - 1
        acct.status[seq] = STATUS[h.status]
        if (h.status === 'pending') {
          if (!acct.pending.has(seq)) acct.live++
          acct.pending.set(seq, h)
          if (h.expiresAt < acct.nextHoldExpiry) acct.nextHoldExpiry = h.expiresAt
        } else {
          acct.live--
          acct.stale++
          if (h.status === 'expired') acct.expiredAt.set(seq, h.expiresAt)
        }
      }
      if (acct.live === 0 && acct.stale >= STALE_RESET) {
        // Nothing pending: start over (settled holds kept here would stay alive for nothing).
        acct.pending = new Map()
        acct.stale = 0
      } else if (acct.stale > 64 && acct.stale > acct.live) {
        const live = new Map<number, HoldState>()
        for (const [seq, h] of acct.pending) if (h.status === 'pending') live.set(seq, h)
        acct.pending = live
        acct.stale = 0
      }
      for (const entry of fx.entries) {
        let holdNo = -1
        if (entry.holdId !== undefined) {
          // The hold is one this operation loaded (numbers in `seqs`) or created (the newest).
          holdNo = acct.holdSeq - 1
          for (let i = 0; i < seqs.length; i++) {
            if (holds[i]!.id === entry.holdId) {
              holdNo = seqs[i]!
              break
            }
          }
        }
        const seq = ++this.#seq
        this.#eventAccount.push(acct.storeNo)
        this.#eventEntry.push(acct.ledger.length)
        t.events.push(seq)
        acct.ledger.push(entry, seq, holdNo)
      }
      for (const alert of alertEvents(fx)) {
        const seq = ++this.#seq
        this.#eventAccount.push(acct.storeNo)
        this.#eventEntry.push(-1)
        t.events.push(seq)
        this.#alerts.set(seq, alert)
      }
      if (this.#watchers.size > 0) this.#changed(t.name, state.record.account)
      const saved = fx.saveIdempotency
      // A copy: the record's result shares objects with the one the caller gets (and may change).
      if (saved) t.idempotency.set(saved.key, { ...saved, result: structuredClone(saved.result) })
      if (fx.redemption) t.redemptions.add(`${fx.redemption.codeHash}\n${state.record.account}`)
    } else if (isNew) {
      // Nothing was written, so the account was not created: give back the hold number.
      acct.holdSeq = 0
    }
    if (scan) {
      // After the operation, not before: a replay or conflict applies nothing, and the holds
      // it found due must still be found by the next operation or sweep.
      let next = Number.POSITIVE_INFINITY
      for (const h of acct.pending.values()) {
        if (h.status === 'pending' && h.expiresAt < next) next = h.expiresAt
      }
      acct.nextHoldExpiry = next
    }
    state.holds = []
    return fx
  }

  /** Queues a change for the watchers; one microtask tells them all that queued meanwhile. */
  #changed(tenant: string, account: string): void {
    const first = this.#changes.length === 0
    this.#changes.push({ tenant, account, seq: this.#seq })
    if (this.#changes.length >= MAX_PENDING_CHANGES) this.#flush()
    else if (first) queueMicrotask(() => this.#flush())
  }

  #flush(): void {
    const changes = this.#changes
    if (changes.length === 0) return
    this.#changes = []
    for (const w of this.#watchers) {
      try {
        w.onChanges(changes)
      } catch (err) {
        warn(`Tollgate watch listener threw: ${String(err)}`, LISTENER_ERROR_WARNING)
      }
    }
  }

  #event(seq: number): StoredEvent {
    const acct = this.#accounts[this.#eventAccount.at(seq - 1)]!
    const i = this.#eventEntry.at(seq - 1)
    const t = acct.tenant
    const account = acct.state.record.account
    const draft =
      i < 0
        ? this.#alerts.get(seq)!
        : entryEvent(acct.ledger.read(i, account, (no) => this.#holdId(t, acct, no)))
    return {
      seq,
      id: eventId(seq, this.#tag),
      tenant: t.name,
      account,
      type: draft.type,
      at: draft.at,
      data: i < 0 ? structuredClone(draft.data) : draft.data,
    }
  }

  async events(req: EventsRequest): Promise<StoredEvent[]> {
    const out: StoredEvent[] = []
    if (req.tenant === null) {
      for (let seq = req.after + 1; seq <= this.#seq && out.length < req.limit; seq++) {
        out.push(this.#event(seq))
      }
      return out
    }
    const list = this.#tenants.get(req.tenant)?.events
    if (!list) return out
    // Binary search for the first sequence number after `after`.
    let i = 0
    let hi = list.length
    while (i < hi) {
      const mid = (i + hi) >>> 1
      if (list.at(mid) <= req.after) i = mid + 1
      else hi = mid
    }
    for (; i < list.length && out.length < req.limit; i++) out.push(this.#event(list.at(i)))
    return out
  }

  async watch(listener: WatchListener): Promise<WatchSubscription> {
    // A fresh reference per subscription: the same listener may subscribe twice.
    const own: WatchListener = {
      onChanges: (changes) => listener.onChanges(changes),
    }
    this.#watchers.add(own)
    return {
      close: async () => {
        this.#watchers.delete(own)
      },
    }
  }

  async ledger(tenant: string, account: string, req: LedgerRequest): Promise<LedgerPage> {
    const t = this.#tenants.get(tenant)
    const acct = t?.accounts.get(account)
    if (!t || !acct) return { entries: [], nextCursor: null }
    const { ledger } = acct
    const holdIdOf = (no: number) => this.#holdId(t, acct, no)
    const out: LedgerEntry[] = []
    let i = ledger.length - 1
    if (req.before !== null) {
      while (i >= 0 && ledger.seq(i) >= req.before) i--
    }
    let lastSeq = 0
    for (; i >= 0 && out.length < req.limit; i--) {
      if (req.types && !req.types.includes(ledger.type(i))) continue
      const at = ledger.at(i)
      if (req.from !== null && at < req.from) continue
      if (req.to !== null && at >= req.to) continue
      out.push(ledger.read(i, account, holdIdOf))
      lastSeq = ledger.seq(i)
    }
    // A further page exists if any older entry is left to look at.
    return {
      entries: out,
      nextCursor: out.length === req.limit && i >= 0 ? encodeCursor(lastSeq) : null,
    }
  }

  /**
   * Usage from the ledger itself: every entry of the account (or of the tenant's accounts) in
   * the window, through the engine's `usageReportOf`. A scan, as the memory store keeps no
   * rollups: fine for the ledgers a process holds in memory.
   */
  async usage(tenant: string, request: UsageRequest): Promise<UsageReport> {
    const window = usageWindow(request)
    const t = this.#tenants.get(tenant)
    const accounts: MemAccount[] = []
    if (t && window.account !== null) {
      const acct = t.accounts.get(window.account)
      if (acct) accounts.push(acct)
    } else if (t) accounts.push(...t.accounts.values())
    const entries = function* (this: MemoryStore) {
      for (const acct of accounts) {
        const { ledger } = acct
        const account = acct.state.record.account
        for (let i = 0; i < ledger.length; i++) {
          const at = ledger.at(i)
          if (at < window.from || at >= window.to) continue
          yield ledger.read(i, account, (no) => this.#holdId(acct.tenant, acct, no))
        }
      }
    }
    return usageReportOf(window, entries.call(this))
  }

  async accounts(tenant: string, req: AccountsRequest): Promise<AccountsPage> {
    const t = this.#tenants.get(tenant)
    const threshold = t?.settings.lowBalanceThreshold ?? null
    function* summaries(): Generator<AccountSummary> {
      if (!t) return
      for (const acct of t.accounts.values()) {
        const { ledger, state } = acct
        const updatedAt = ledger.length > 0 ? ledger.at(ledger.length - 1) : state.record.createdAt
        yield accountSummary(state.record, state.buckets, threshold, updatedAt)
      }
    }
    // The cursor is checked even for a tenant without accounts: a bad one is always refused.
    return pageAccounts(summaries(), req)
  }

  async createCodes(tenant: string, batch: CodeBatch): Promise<CodeBatchOutcome> {
    const t = this.#tenant(tenant)
    const key = batch.idempotency
    if (key) {
      const decided = decideCodeBatch(t.idempotency.get(key.key) ?? null, key, batch.now)
      if (decided.status !== 'created') return decided
      t.idempotency.set(key.key, decided.save)
    }
    for (const code of batch.codes) t.codes.set(code.hash, code)
    return { status: 'created' }
  }

  async tenants(after: string | null, limit: number): Promise<string[]> {
    // Sorted once per new tenant, not per page: a sweep pages through all of them.
    if (this.#sorted === null || this.#sorted.length !== this.#tenants.size) {
      this.#sorted = [...this.#tenants.keys()].sort()
    }
    const list = this.#sorted
    let from = 0
    if (after !== null) {
      // Binary search for the first tenant after `after`.
      let hi = list.length
      while (from < hi) {
        const mid = (from + hi) >>> 1
        if (list[mid]! <= after) from = mid + 1
        else hi = mid
      }
    }
    return list.slice(from, from + limit)
  }

  async noteRedeemFailure(tenant: string, account: string, windowStart: number): Promise<number> {
    const windows = this.#tenant(tenant).redeemFailures
    let failed = windows.get(windowStart)
    if (failed === undefined) {
      failed = new Set()
      windows.set(windowStart, failed)
      // Bounded: the window a late report may still name and the current one; older ones go.
      if (windows.size > MAX_REDEEM_WINDOWS) {
        const keep = [...windows.keys()].sort((a, b) => b - a).slice(0, MAX_REDEEM_WINDOWS)
        for (const start of windows.keys()) if (!keep.includes(start)) windows.delete(start)
      }
    }
    failed.add(account)
    return failed.size
  }

  async dueAccounts(tenant: string, now: number, limit: number): Promise<string[]> {
    const t = this.#tenants.get(tenant)
    if (!t) return []
    const due: string[] = []
    for (const [name, acct] of t.accounts) {
      if (due.length >= limit) break
      if (isAccountDue(acct.state.record, acct.state.buckets, acct.pending.values(), now)) {
        due.push(name)
      }
    }
    return due
  }

  /**
   * Drops idempotency records older than `before`. Resolved holds are kept as one status byte
   * each for the life of the store, so a late commit still gets "already resolved".
   */
  async tenantSettings(tenant: string): Promise<TenantSettings> {
    return { ...(this.#tenants.get(tenant)?.settings ?? NO_TENANT_SETTINGS) }
  }

  async putTenantSettings(tenant: string, patch: Partial<TenantSettings>): Promise<TenantSettings> {
    const t = this.#tenant(tenant)
    t.settings = patchTenantSettings(t.settings, patch)
    t.configSeen = null
    return { ...t.settings }
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
    return n
  }

  async close(): Promise<void> {
    this.#flush()
    this.#watchers.clear()
    this.#tenants.clear()
    this.#accounts = []
    this.#eventAccount.clear()
    this.#eventEntry.clear()
    this.#alerts.clear()
  }
}

/**
 * An in-process store. Fast and exact, not durable.
 * @example
 * const meter = createMeter({ store: memoryStore() })
 */
export function memoryStore(options: MemoryStoreOptions = {}): Store {
  readOptions(options, { owner: 'memoryStore', defaults: {} })
  return new MemoryStore()
}
