/**
 * The Store contract. A store keeps accounts' state, ledgers, idempotency records and redeem
 * codes for many tenants; it never decides a ledger rule. For each operation it loads one
 * account's state, calls {@link applyOperation} and persists the returned effects atomically.
 * See docs/store.md.
 */
import type { StoredEventType } from '../engine/events.js'
import type { CodeRecord, Effects, EngineConfig, Operation } from '../engine/state.js'
import type { TollgateError } from '../errors.js'
import type {
  AccountsPage,
  AccountsQuery,
  Balance,
  LedgerEntryType,
  LedgerPage,
  TenantSettings,
  UsageReport,
  UsageRequest,
} from '../types.js'
import type { WebhookRegistry } from './webhooks.js'

/** One operation for one account (or, for hold operations, for the hold's account). */
export interface ExecuteRequest {
  tenant: string
  /**
   * The account, for account operations. Undefined for hold operations (`commit`, `release`,
   * `extend`, `increase`): the store finds the account from `op.holdId` within the tenant (a
   * hold of another tenant is not found).
   */
  account: string | undefined
  op: Operation
  /** The meter's clock reading for this operation. */
  now: number
  config: EngineConfig
  /** Id factory for grants, holds, cycles and redemptions; `now` is the operation's time. */
  newId: (prefix: string, now: number) => string
  /**
   * How long the caller waits for this operation, in ms from the call; undefined for the
   * store's own default. A store that can wait (a database, a server) fails the operation with
   * `StoreUnavailableError` rather than apply it after this, and never starts it later.
   */
  timeoutMs?: number
}

/**
 * What an operation produced, as the meter needs it. Plain data: an HTTP store receives it
 * over the wire. `balance` is null only when no account could be addressed (unknown hold).
 */
export interface Outcome {
  result: Record<string, unknown> | null
  error: TollgateError | null
  replayed: boolean
  balance: Balance | null
  events: Effects['events']
}

/** A ledger read, validated and with the cursor decoded. */
export interface LedgerRequest {
  limit: number
  /** Entries strictly older than this store sequence number (from the cursor). */
  before: number | null
  types: LedgerEntryType[] | null
  from: number | null
  to: number | null
}

/**
 * An accounts read ({@link Store.accounts}), validated: {@link AccountsQuery} with its limit
 * (1–1000) given. Filters combine with AND; a filter left out (or undefined) does not filter; the
 * cursor is a previous page's `nextCursor` (see `decodeAccountsCursor`), null from the start.
 */
export type AccountsRequest = Omit<AccountsQuery, 'limit'> & { limit: number }

/** A batch of redeem codes to store (hashes only). */
export interface CodeBatch {
  batchId: string
  codes: CodeRecord[]
  /** Saved with the batch when the call carried an idempotency key. */
  idempotency: { key: string; fingerprint: string; result: unknown } | null
  now: number
}

/** The answer to {@link Store.createCodes}: `replay` is the earlier result for a repeated key. */
export type CodeBatchOutcome =
  | { status: 'created' }
  | { status: 'replayed'; result: unknown }
  | { status: 'conflict' }

/** A server API key as stored: only the SHA-256 of the secret, never the key. */
export interface ApiKeyRecord {
  /** Public id, also the key's visible prefix (`tg_sk_<id>_…`). */
  id: string
  tenant: string
  /** `admin` keys manage keys and may act for any tenant; `tenant` keys see their own. */
  role: 'admin' | 'tenant'
  name: string
  /** SHA-256 hex of the whole key. */
  hash: string
  createdAt: number
  revokedAt: number | null
}

/**
 * Where a Tollgate server keeps its API keys. Stores that persist (PostgreSQL, PGlite) keep
 * them beside the ledger; `memoryStore()` in memory.
 */
export interface KeyRegistry {
  createKey(record: ApiKeyRecord): Promise<void>
  /** The key with this id, revoked or not; null when there is none. */
  findKey(id: string): Promise<ApiKeyRecord | null>
  /** Keys of one tenant, or of all tenants when `tenant` is null; oldest first. */
  listKeys(tenant: string | null): Promise<ApiKeyRecord[]>
  /** Marks the key revoked at `at`; false when it does not exist or was already revoked. */
  revokeKey(id: string, at: number): Promise<boolean>
}

/** An in-memory {@link KeyRegistry}: for `memoryStore()` and tests. */
export function memoryKeyRegistry(): KeyRegistry {
  const keys = new Map<string, ApiKeyRecord>()
  return {
    async createKey(record) {
      if (keys.has(record.id)) throw new Error(`duplicate API key id ${record.id}`)
      keys.set(record.id, { ...record })
    },
    async findKey(id) {
      const k = keys.get(id)
      return k ? { ...k } : null
    },
    async listKeys(tenant) {
      return [...keys.values()]
        .filter((k) => tenant === null || k.tenant === tenant)
        .map((k) => ({ ...k }))
    },
    async revokeKey(id, at) {
      const k = keys.get(id)
      if (!k || k.revokedAt !== null) return false
      k.revokedAt = at
      return true
    },
  }
}

/**
 * Types of the durable events a store keeps (the outbox, DESIGN §5): one per ledger change and
 * one per alert crossing or debt change, written in the same transaction as the change that
 * caused them. Defined by the engine (`entryEvent`, `alertEvents`), which maps changes to them.
 */
export type { StoredEventType } from '../engine/events.js'
export type {
  UsageGroup,
  UsageInterval,
  UsagePeriod,
  UsageReport,
  UsageRequest,
} from '../types.js'

/**
 * One durable event. `seq` is the store's sequence (increasing within a tenant, and in the
 * order the changes were applied to each account), so a consumer resumes from the last `seq`
 * it handled; `id` is stable across reads and processes (a webhook's `webhook-id`).
 */
export interface StoredEvent {
  seq: number
  id: string
  tenant: string
  account: string
  type: StoredEventType
  /** ms since epoch: the operation's time. */
  at: number
  /** The figures: amounts, ids (`grantId`, `holdId`, …) and `balanceAfter` where it applies. */
  data: Record<string, unknown>
}

/** A read of the outbox: events with `seq > after`, oldest first. */
export interface EventsRequest {
  /** One tenant, or null for every tenant (a server's delivery worker). */
  tenant: string | null
  after: number
  /** At most this many (1–1000). */
  limit: number
}

/** One account changed: enough for a cache to drop what it holds of the account. */
export interface AccountChange {
  tenant: string
  account: string
  /** The store sequence of the change; increasing per tenant. */
  seq: number
}

/** What a change-feed subscriber is told. Called synchronously; must not throw or block. */
export interface WatchListener {
  onChanges(changes: readonly AccountChange[]): void
  /**
   * The feed went down (`up: false`, with why) or came back (`up: true`). While it is down a
   * subscriber cannot trust its cache beyond its TTL; after it comes back, changes missed in
   * between are not replayed, so a subscriber drops its whole cache.
   */
  onStatus?(up: boolean, reason?: string): void
}

/**
 * Figures a store reports as it works, for metrics (a Tollgate server's `/metrics`, an app's own
 * exporter). Called synchronously on the store's hot path, once per event: keep it to a counter
 * add or a histogram observe, and never throw.
 * @example
 * store.observe?.({ batchCommitted: (size, seconds) => histogram.observe(size) })
 */
export interface StoreObserver {
  /**
   * A transaction committed a group-commit batch of `size` operations, `seconds` after it
   * started (retries of the batch included).
   */
  batchCommitted?(size: number, seconds: number): void
}

/** A live change-feed subscription. */
export interface WatchSubscription {
  close(): Promise<void>
}

/**
 * Storage behind a {@link Meter}. Implementations: `memoryStore()` here, `postgresStore()` and
 * `pgliteStore()` in `@tollgate/postgres`, `httpStore()` against a Tollgate server.
 *
 * Rules every implementation keeps (the conformance suite checks them):
 * - `execute` is atomic per account: operations on one account are applied one at a time, each
 *   fully or not at all; when `Effects.changed` is false nothing needs writing.
 * - an account is created on first use: unknown accounts load as {@link newAccountState};
 * - the state loaded for an operation holds every live bucket, the hold the operation names
 *   (any status) and every pending hold whose `expiresAt ≤ now`;
 * - ledger entries get increasing ids per tenant; idempotency records are unique per
 *   (tenant, key) and kept at least 48 h;
 * - nothing crosses tenants.
 */
export interface Store {
  /** A short name for logs and benchmarks (`memory`, `postgres`, `pglite`, `http`). */
  readonly kind: string
  /**
   * Runs one operation. A store that has the outcome at once (the memory store) may return it
   * directly instead of a promise, which saves the meter a promise per operation.
   */
  execute(request: ExecuteRequest): Outcome | Promise<Outcome>
  ledger(tenant: string, account: string, request: LedgerRequest): Promise<LedgerPage>
  /**
   * Usage over time (docs/usage.md): the ledger's figures per UTC period of one account, or of
   * the whole tenant when `request.account` is absent, optionally by a metadata key. A store
   * checks the request and maps entries to figures with the engine's `usageWindow`/`usageOf`
   * (`InvalidInputError` for a bad request). Optional: `meter.usage()` on a store without it
   * throws `InvalidInputError` (field `store`).
   */
  usage?(tenant: string, request: UsageRequest): Promise<UsageReport>
  createCodes(tenant: string, batch: CodeBatch): Promise<CodeBatchOutcome>
  /**
   * Accounts with work due at `now`: pending holds past their TTL, buckets past expiry, cycle
   * periods to materialise. At most `limit`; `meter.sweep()` touches each one.
   */
  dueAccounts(tenant: string, now: number, limit: number): Promise<string[]>
  /**
   * Brings the store's schema up to date; idempotent and safe when several processes start at
   * once. Optional: stores without a schema (memory) leave it out. `createMeter` calls it
   * before the first operation unless `migrate: false`.
   */
  migrate?(): Promise<void>
  /**
   * Drops idempotency records, resolved holds and redeem failure windows older than `before`.
   * Returns how many.
   */
  prune(tenant: string, before: number): Promise<number>
  /**
   * Up to `limit` tenants that hold accounts, in the store's ascending order, after `after`
   * (exclusive; null from the start): a sweeper pages through them instead of remembering every
   * tenant it ever saw. Optional: a store without it is swept for the tenants its server saw.
   */
  tenants?(after: string | null, limit: number): Promise<string[]>
  /**
   * Records that `account` of `tenant` failed a redemption in the window starting at
   * `windowStart` (ms since epoch, the same for every process: the server aligns it), and
   * answers how many distinct accounts of the tenant failed in that window, this one included.
   * Idempotent per (tenant, windowStart, account). A store keeps at least the latest windows and
   * drops older ones on its own (a bound, not a rule: `prune()` drops what is left). Optional: a
   * Tollgate server shares its tenant redeem limit across processes through it; without it
   * (`httpStore()`) each server process counts alone.
   */
  noteRedeemFailure?(tenant: string, account: string, windowStart: number): Promise<number>
  /**
   * The outbox: durable events with `seq > after`, oldest first (DESIGN §5). Optional: a store
   * without it has no webhooks and no durable event subscription.
   */
  events?(request: EventsRequest): Promise<StoredEvent[]>
  /**
   * The change feed: tells `listener` about every committed change to any account of any
   * tenant, from any process sharing this store, within about 100 ms (PostgreSQL
   * `LISTEN/NOTIFY`, the server's SSE stream, in process for memory and PGlite). Optional: a
   * meter on a store without it relies on its cache TTL.
   */
  watch?(listener: WatchListener): Promise<WatchSubscription>
  /**
   * The tenant's stored default settings (all null when none are stored). A store that has them
   * applies them to every operation of the tenant with {@link withTenantSettings}, reading them
   * with the account's state (never a stale copy). Optional: without them each meter's options
   * are the defaults.
   */
  tenantSettings?(tenant: string): Promise<TenantSettings>
  /**
   * Stores the tenant's defaults: a field left out keeps its value, `null` clears it. Returns
   * the settings now stored. With `tenantSettings`.
   */
  putTenantSettings?(tenant: string, patch: Partial<TenantSettings>): Promise<TenantSettings>
  /**
   * A page of the tenant's accounts for an operator (see {@link AccountsRequest}): keyset pages
   * by (sort value, account), so a walk by `account` sees every account that existed throughout
   * exactly once whatever is written meanwhile. An invalid cursor is `InvalidInputError`
   * (`cursor`). Optional: `meter.accounts()` refuses on a store without it.
   */
  accounts?(tenant: string, request: AccountsRequest): Promise<AccountsPage>
  /**
   * Adds an observer of the store's own figures (see {@link StoreObserver}); returns the
   * function that removes it. Optional: the SQL stores report their group-commit batches; a
   * store without batches leaves it out.
   */
  observe?(observer: StoreObserver): () => void
  close(): Promise<void>
  /** API keys of a Tollgate server running on this store. Optional: `httpStore()` has none. */
  readonly keys?: KeyRegistry
  /**
   * Webhook endpoints and deliveries of a Tollgate server running on this store (see
   * docs/webhooks.md). Optional: a server on a store without it (or without `events()`) has no
   * webhooks.
   */
  readonly webhooks?: WebhookRegistry
}

/** No stored tenant settings. */
export const NO_TENANT_SETTINGS: TenantSettings = Object.freeze({
  lowBalanceThreshold: null,
  overdraftLimit: null,
})

/** `current` with `patch` applied: a field left out (undefined) keeps its value. */
export function patchTenantSettings(
  current: TenantSettings,
  patch: Partial<TenantSettings>,
): TenantSettings {
  return {
    lowBalanceThreshold:
      patch.lowBalanceThreshold === undefined
        ? current.lowBalanceThreshold
        : patch.lowBalanceThreshold,
    overdraftLimit:
      patch.overdraftLimit === undefined ? current.overdraftLimit : patch.overdraftLimit,
  }
}

/**
 * The engine config of an operation under the tenant's stored defaults: a stored setting wins
 * over the meter's option; an unset one (`null`) leaves the option. Returns `config` itself
 * when nothing is stored, so the hot path allocates nothing then.
 */
export function withTenantSettings(config: EngineConfig, settings: TenantSettings): EngineConfig {
  const { lowBalanceThreshold: low, overdraftLimit: overdraft } = settings
  if (low === null && overdraft === null) return config
  return {
    ...config,
    lowBalanceThreshold: low ?? config.lowBalanceThreshold,
    overdraftLimit: overdraft ?? config.overdraftLimit,
  }
}

/**
 * The outcome of an operation refused before any account was addressed (no balance, no
 * events), e.g. `errorOutcome(new NotFoundError('hold', id))` for a hold id no hold has.
 */
export function errorOutcome(error: TollgateError): Outcome {
  return { result: null, error, replayed: false, balance: null, events: [] }
}

/** Encodes a store sequence number as an opaque ledger cursor. */
export function encodeCursor(seq: number): string {
  return Buffer.from(`v1:${seq}`).toString('base64url')
}

/** Decodes {@link encodeCursor}; null when the cursor is not one. */
export function decodeCursor(cursor: string): number | null {
  const text = Buffer.from(cursor, 'base64url').toString()
  if (!text.startsWith('v1:')) return null
  const seq = Number(text.slice(3))
  return Number.isSafeInteger(seq) && seq > 0 ? seq : null
}
