/**
 * A small REST client for a Tollgate server (docs/server.md), over one undici `Pool`. The CLI
 * and `seedDemo()` use it; apps use `httpStore()` in `@tollgate/core` instead, which speaks the
 * store protocol and runs the engine's rules for a meter.
 */
import type {
  AccountSettings,
  AccountSettingsView,
  AccountsPage,
  AccountsQuery,
  Balance,
  Category,
  CreateCodesResult,
  CycleEvery,
  CycleResult,
  DebitResult,
  Grant,
  LedgerEntryType,
  LedgerPage,
  RedeemResult,
  TenantSettings,
  UsageInterval,
  UsageReport,
} from '@tollgate/core'
import { Pool } from 'undici'

/** Where the server is when neither `--url` nor `TOLLGATE_URL` says. */
export const DEFAULT_URL = 'http://127.0.0.1:7070'

/** Options of {@link createClient}. */
export interface ClientOptions {
  /** The server's base URL; a path prefix (a server behind a proxy) is kept. @default DEFAULT_URL */
  url?: string
  /** A `tg_sk_…` key, sent as `Authorization: Bearer`. */
  apiKey?: string
  /** Sent as `Tollgate-Tenant` (admin keys act on that tenant). */
  tenant?: string
  /** How long to wait for a response's headers and, then, for its body, in ms. @default 30_000 */
  timeoutMs?: number
  /** How long to wait for a connection, in ms. @default 10_000 */
  connectTimeoutMs?: number
}

/** A server API key as the admin routes list it (never the key itself). */
export interface ApiKeyInfo {
  id: string
  tenant: string
  role: 'admin' | 'tenant'
  name: string
  /** ms since epoch (or an ISO string, as the server sends it). */
  createdAt: number | string
  revokedAt: number | string | null
}

/** `POST /v1/keys`: the key itself, shown this once. */
export interface CreatedApiKey extends ApiKeyInfo {
  key: string
}

/** A webhook endpoint as `GET /v1/webhooks` lists it (never its secret). */
export interface WebhookInfo {
  id: string
  url: string
  events: string[]
  createdAt: number | string
}

/** `POST /v1/webhooks`: the signing secret, shown this once. */
export interface CreatedWebhook extends WebhookInfo {
  secret: string
}

/** One delivery of `GET /v1/webhooks/{id}/deliveries`. */
export interface WebhookDeliveryInfo {
  id: string
  webhookId: string
  eventId: string
  eventSeq: number
  account: string
  type: string
  at: number | string
  status: 'pending' | 'delivered' | 'failed'
  attempts: number
  nextAt: number | string
  lastAttemptAt: number | string | null
  lastStatus: number | null
  lastError: string | null
  deliveredAt: number | string | null
}

/** Body of `POST /v1/accounts/{account}/grants`. */
export interface GrantBody {
  amount: number
  expiresAt?: number
  validityDays?: number
  priority?: number
  category?: Category
  metadata?: Record<string, unknown>
}

/** Body of `POST /v1/codes`. */
export interface CodesBody {
  credits: number
  count: number
  prefix?: string
  codeExpiresAt?: number
  validityDays?: number
  maxRedemptions?: number
  priority?: number
  category?: Category
}

/** Body of `PUT /v1/accounts/{account}/cycle`. */
export interface CycleBody {
  amount: number
  every: CycleEvery
  rollover?: { max: number }
  priority?: number
  category?: Category
}

/** Query of `GET /v1/accounts/{account}/ledger`. */
export interface LedgerParams {
  limit?: number
  cursor?: string
  types?: LedgerEntryType[]
  from?: number
  to?: number
}

/** Query of `GET /v1/accounts/{account}/usage` and `GET /v1/usage`. */
export interface UsageParams {
  interval?: UsageInterval
  from?: number
  to?: number
  groupBy?: string
}
/** Query of `GET /v1/accounts` (`meter.accounts()` options, the cursor a string). */
export type AccountsParams = Omit<AccountsQuery, 'cursor'> & { cursor?: string }

/** Options of one mutation. */
export interface MutationOptions {
  /** Sent as `Idempotency-Key`. */
  idempotencyKey?: string
}

/** An RFC 9457 problem body as the server sends it. */
export interface Problem {
  type?: string
  title?: string
  status?: number
  detail?: string
  code?: string
  [field: string]: unknown
}

/** The server answered with an error (a problem+json body, or another non-2xx answer). */
export class ServerError extends Error {
  readonly status: number
  /** The problem's `code` (`insufficient_credits`, `auth`, …); `http_<status>` when it had none. */
  readonly code: string
  readonly problem: Problem
  constructor(status: number, problem: Problem) {
    const code = typeof problem.code === 'string' ? problem.code : `http_${status}`
    const detail =
      typeof problem.detail === 'string' && problem.detail !== ''
        ? problem.detail
        : typeof problem.message === 'string'
          ? problem.message
          : (problem.title ?? `the server answered ${status}`)
    super(`${code}: ${detail}`)
    this.name = 'ServerError'
    this.status = status
    this.code = code
    this.problem = problem
  }
}

/** The server could not be reached, or did not answer in time. */
export class ConnectionError extends Error {
  readonly url: string
  constructor(url: string, cause: unknown) {
    const reason =
      (cause as { code?: unknown })?.code ?? (cause as Error)?.message ?? 'unknown error'
    super(`cannot reach the Tollgate server at ${url} (${String(reason)})`, { cause })
    this.name = 'ConnectionError'
    this.url = url
  }
}

/** One answer: the decoded body and whether the server replayed it for an idempotency key. */
export interface Answer<T> {
  status: number
  body: T
  replayed: boolean
}

interface RequestSpec {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  path: string
  query?: Record<string, string | number | undefined>
  body?: unknown
  idempotencyKey?: string | undefined
}

/**
 * A REST client bound to one server and one key. Call {@link TollgateClient.close} when done:
 * the pool keeps connections alive for the next request.
 */
export class TollgateClient {
  readonly url: string
  readonly #pool: Pool
  readonly #basePath: string
  readonly #headers: Record<string, string>

  constructor(options: ClientOptions = {}) {
    const base = new URL(options.url ?? DEFAULT_URL)
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new TypeError(`url must be http(s), got ${base.protocol}`)
    }
    this.url = base.href.replace(/\/$/, '')
    this.#basePath = base.pathname.replace(/\/$/, '')
    const timeout = options.timeoutMs ?? 30_000
    // A few connections: the CLI sends one request at a time, seedDemo a handful.
    this.#pool = new Pool(base.origin, {
      connections: 4,
      headersTimeout: timeout,
      bodyTimeout: timeout,
      connect: { timeout: options.connectTimeoutMs ?? 10_000 },
    })
    this.#headers = { accept: 'application/json, application/problem+json' }
    if (options.apiKey) this.#headers.authorization = `Bearer ${options.apiKey}`
    if (options.tenant) this.#headers['tollgate-tenant'] = options.tenant
  }

  /** Sends one request; a non-2xx answer is a {@link ServerError}, no answer a {@link ConnectionError}. */
  async request<T>(spec: RequestSpec): Promise<Answer<T>> {
    const headers: Record<string, string> = { ...this.#headers }
    let body: string | undefined
    if (spec.body !== undefined) {
      body = JSON.stringify(spec.body)
      headers['content-type'] = 'application/json'
    }
    if (spec.idempotencyKey !== undefined) headers['idempotency-key'] = spec.idempotencyKey
    let path = this.#basePath + spec.path
    const query = new URLSearchParams()
    for (const [k, v] of Object.entries(spec.query ?? {})) {
      if (v !== undefined) query.set(k, String(v))
    }
    if (query.size > 0) path += `?${query}`

    let res: Awaited<ReturnType<Pool['request']>>
    try {
      res = await this.#pool.request({ method: spec.method, path, headers, body })
    } catch (err) {
      throw new ConnectionError(this.url, err)
    }
    let text: string
    try {
      text = await res.body.text()
    } catch (err) {
      throw new ConnectionError(this.url, err)
    }
    let parsed: unknown = null
    if (text !== '') {
      try {
        parsed = JSON.parse(text)
      } catch {
        // Not JSON (a proxy's HTML error page, say): keep the start of it for the error line.
        parsed = { detail: text.slice(0, 200).trim() }
      }
    }
    if (res.statusCode >= 400) {
      const problem = typeof parsed === 'object' && parsed !== null ? (parsed as Problem) : {}
      throw new ServerError(res.statusCode, problem)
    }
    return {
      status: res.statusCode,
      body: parsed as T,
      replayed: res.headers['idempotent-replayed'] === 'true',
    }
  }

  /** `POST /v1/accounts/{account}/grants`. */
  async grant(account: string, body: GrantBody, options: MutationOptions = {}): Promise<Grant> {
    const path = `${accountPath(account)}/grants`
    return (await this.request<Grant>({ method: 'POST', path, body, ...options })).body
  }

  /** `POST /v1/accounts/{account}/debits`. */
  async debit(
    account: string,
    body: { amount: number; metadata?: Record<string, unknown> },
    options: MutationOptions = {},
  ): Promise<DebitResult> {
    const path = `${accountPath(account)}/debits`
    return (await this.request<DebitResult>({ method: 'POST', path, body, ...options })).body
  }

  /** `GET /v1/accounts/{account}/balance` (always fresh). */
  async balance(account: string): Promise<Balance> {
    return (await this.request<Balance>({ method: 'GET', path: `${accountPath(account)}/balance` }))
      .body
  }

  /** `GET /v1/accounts/{account}/ledger`: one page, newest first. */
  async ledger(account: string, params: LedgerParams = {}): Promise<LedgerPage> {
    const query = {
      limit: params.limit,
      cursor: params.cursor,
      types: params.types?.join(','),
      from: params.from,
      to: params.to,
    }
    const path = `${accountPath(account)}/ledger`
    return (await this.request<LedgerPage>({ method: 'GET', path, query })).body
  }

  /** `GET /v1/accounts`: one page of the tenant's accounts. */
  async accounts(params: AccountsParams = {}): Promise<AccountsPage> {
    const query = {
      ...params,
      low: params.low?.toString(),
      inDebt: params.inDebt?.toString(),
      hasHolds: params.hasHolds?.toString(),
    }
    return (await this.request<AccountsPage>({ method: 'GET', path: '/v1/accounts', query })).body
  }

  /** `POST /v1/codes`: the plaintext codes, this once (a replay answers none). */
  async createCodes(
    body: CodesBody,
    options: MutationOptions = {},
  ): Promise<Answer<CreateCodesResult>> {
    return this.request<CreateCodesResult>({ method: 'POST', path: '/v1/codes', body, ...options })
  }

  /** `POST /v1/accounts/{account}/redemptions`. */
  async redeem(
    account: string,
    code: string,
    options: MutationOptions = {},
  ): Promise<RedeemResult> {
    const path = `${accountPath(account)}/redemptions`
    return (await this.request<RedeemResult>({ method: 'POST', path, body: { code }, ...options }))
      .body
  }

  /** `PUT /v1/accounts/{account}/cycle`. */
  async startCycle(
    account: string,
    body: CycleBody,
    options: MutationOptions = {},
  ): Promise<CycleResult> {
    const path = `${accountPath(account)}/cycle`
    return (await this.request<CycleResult>({ method: 'PUT', path, body, ...options })).body
  }

  /** `DELETE /v1/accounts/{account}/cycle`. */
  async stopCycle(account: string, options: MutationOptions = {}): Promise<CycleResult> {
    const path = `${accountPath(account)}/cycle`
    return (await this.request<CycleResult>({ method: 'DELETE', path, ...options })).body
  }

  /** `GET /v1/accounts/{account}/usage`, or `GET /v1/usage` (tenant-wide) for a null account. */
  async usage(account: string | null, params: UsageParams = {}): Promise<UsageReport> {
    const path = account === null ? '/v1/usage' : `${accountPath(account)}/usage`
    const query = { ...params }
    return (await this.request<UsageReport>({ method: 'GET', path, query })).body
  }

  /** `GET /v1/settings`: the tenant's stored defaults. */
  async tenantSettings(): Promise<TenantSettings> {
    return (await this.request<TenantSettings>({ method: 'GET', path: '/v1/settings' })).body
  }

  /** `PUT /v1/settings`: stores the tenant's defaults (null clears one). */
  async putTenantSettings(body: Partial<TenantSettings>): Promise<TenantSettings> {
    return (await this.request<TenantSettings>({ method: 'PUT', path: '/v1/settings', body })).body
  }

  /** `GET /v1/accounts/{account}/settings`: the account's own settings and those in effect. */
  async accountSettings(account: string): Promise<AccountSettingsView> {
    const path = `${accountPath(account)}/settings`
    return (await this.request<AccountSettingsView>({ method: 'GET', path })).body
  }

  /** `PUT /v1/accounts/{account}/settings` (null returns a setting to the default). */
  async putAccountSettings(
    account: string,
    body: Partial<AccountSettings>,
  ): Promise<AccountSettings & { balance: Balance }> {
    const path = `${accountPath(account)}/settings`
    return (
      await this.request<AccountSettings & { balance: Balance }>({ method: 'PUT', path, body })
    ).body
  }

  /** `POST /v1/keys` (admin): the new key, shown this once. */
  async createKey(body: {
    tenant: string
    name?: string
    role?: 'admin' | 'tenant'
  }): Promise<CreatedApiKey> {
    return (await this.request<CreatedApiKey>({ method: 'POST', path: '/v1/keys', body })).body
  }

  /** `GET /v1/keys` (admin). */
  async listKeys(tenant?: string): Promise<ApiKeyInfo[]> {
    const query = { tenant }
    return (await this.request<{ keys: ApiKeyInfo[] }>({ method: 'GET', path: '/v1/keys', query }))
      .body.keys
  }

  /** `DELETE /v1/keys/{id}` (admin). */
  async revokeKey(id: string): Promise<{ id: string; revokedAt: number | string }> {
    const path = `/v1/keys/${encodeURIComponent(id)}`
    return (
      await this.request<{ id: string; revokedAt: number | string }>({ method: 'DELETE', path })
    ).body
  }

  /** `POST /v1/webhooks`: the new endpoint and its signing secret, shown this once. */
  async addWebhook(body: { url: string; events?: string[] }): Promise<CreatedWebhook> {
    return (await this.request<CreatedWebhook>({ method: 'POST', path: '/v1/webhooks', body })).body
  }

  /** `GET /v1/webhooks`. */
  async listWebhooks(): Promise<WebhookInfo[]> {
    const path = '/v1/webhooks'
    return (await this.request<{ webhooks: WebhookInfo[] }>({ method: 'GET', path })).body.webhooks
  }

  /** `DELETE /v1/webhooks/{id}`. */
  async removeWebhook(id: string): Promise<{ id: string; deleted: true }> {
    const path = `/v1/webhooks/${encodeURIComponent(id)}`
    return (await this.request<{ id: string; deleted: true }>({ method: 'DELETE', path })).body
  }

  /** `GET /v1/webhooks/{id}/deliveries`, newest event first. */
  async webhookDeliveries(
    id: string,
    query: { limit?: number; before?: number; status?: string } = {},
  ): Promise<{ deliveries: WebhookDeliveryInfo[]; nextBefore: number | null }> {
    const path = `/v1/webhooks/${encodeURIComponent(id)}/deliveries`
    return (
      await this.request<{ deliveries: WebhookDeliveryInfo[]; nextBefore: number | null }>({
        method: 'GET',
        path,
        query,
      })
    ).body
  }

  /** `POST /v1/webhooks/{id}/deliveries/{deliveryId}/retry`: due again now. */
  async retryWebhookDelivery(id: string, deliveryId: string): Promise<WebhookDeliveryInfo> {
    const path = `/v1/webhooks/${encodeURIComponent(id)}/deliveries/${encodeURIComponent(deliveryId)}/retry`
    return (await this.request<WebhookDeliveryInfo>({ method: 'POST', path })).body
  }

  /** Closes the pool's connections. */
  async close(): Promise<void> {
    await this.#pool.close()
  }
}

/**
 * A client for one server and key.
 * @example
 * const client = createClient({ url: 'http://127.0.0.1:7070', apiKey: process.env.TOLLGATE_API_KEY })
 * const { available } = await client.balance('alice')
 * await client.close()
 */
export function createClient(options: ClientOptions = {}): TollgateClient {
  return new TollgateClient(options)
}

function accountPath(account: string): string {
  return `/v1/accounts/${encodeURIComponent(account)}`
}
