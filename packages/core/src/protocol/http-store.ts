/**
 * `httpStore()`: the store of a meter whose credits live behind a Tollgate server. It forwards
 * each operation the meter built to the server's store protocol (`/v1/store/*`, see
 * docs/server.md) and hands back the outcome; the server runs the same engine on its own store.
 * What this file adds is the transport: a keep-alive connection pool, operations that wait at
 * the same moment coalesced into one request (`/v1/store/batch`), timeouts, retries that never
 * apply an operation twice, deadlines the server honours, and errors mapped back to Tollgate's
 * typed errors.
 */
import { randomUUID } from 'node:crypto'
import { Pool } from 'undici'
import type { CodeRecord, Operation } from '../engine/state.js'
import { InvalidInputError, isTollgateError, StoreUnavailableError } from '../errors.js'
import { checkBoolean, checkInt, type OptionDefaults, readOptions } from '../options-kit.js'
import type {
  AccountChange,
  AccountsRequest,
  CodeBatch,
  CodeBatchOutcome,
  ExecuteRequest,
  LedgerRequest,
  Outcome,
  Store,
  WatchListener,
  WatchSubscription,
} from '../store/store.js'
import type {
  AccountsPage,
  LedgerPage,
  TenantSettings,
  UsageReport,
  UsageRequest,
} from '../types.js'
import { CHANGES_ROUTE, SseReader } from './change-stream.js'
import type { ProblemDetails } from './problem.js'
import { TRANSPORT_KEY_PREFIX } from './transport-key.js'
import {
  errorFromProblem,
  MAX_BATCH_OPERATIONS,
  outcomeFromWire,
  type WireOutcome,
} from './wire.js'

/** Options of {@link httpStore}. */
export interface HttpStoreOptions {
  /**
   * The Tollgate server, e.g. `https://credits.internal:7070`. A path is kept as a prefix
   * (`https://api.example.com/tollgate` → `…/tollgate/v1/store/execute`).
   * @default process.env.TOLLGATE_URL
   */
  url?: string
  /**
   * A `tg_sk_…` API key. A tenant key acts on its own tenant; an admin key acts on the meter's
   * `tenant` (sent as `Tollgate-Tenant`).
   * @default process.env.TOLLGATE_API_KEY
   */
  apiKey?: string
  /**
   * Keep-alive connections to the server, at most: also the most requests in flight at once
   * (one per connection). With `batch` on, operations that arrive while every connection is
   * busy wait and leave together; with it off, each connection carries one operation, and the
   * server's group commit can only batch what arrives together (16 connections gave a third of
   * the throughput of 64 in bench/server.bench.ts). @default 64
   */
  connections?: number
  /**
   * Coalesce the operations that wait at the same moment (issued in the same turn of the event
   * loop, or while every connection is busy) into one `POST /v1/store/batch` request, answered
   * with an outcome per operation; the server hands them to its store together (one group
   * commit). `false`: one `POST /v1/store/execute` request per operation, as servers before the
   * batch route speak (a server that answers the batch route with 404 is also spoken to that
   * way from then on). @default true
   */
  batch?: boolean
  /** Most operations in one batch request (at most 256, the server's limit). @default 64 */
  maxBatch?: number
  /**
   * Largest batch request body, in bytes: below the server's `bodyLimit` (64 KiB by default).
   * An operation larger than this alone travels alone. @default 60_000
   */
  maxBatchBytes?: number
  /**
   * How long to wait for the response headers, and then between two chunks of the body, in ms.
   * A request that times out is retried like a dropped connection. An operation's own deadline
   * (the meter's `timeoutMs` option of a call) shortens it, and bounds all attempts together.
   * @default 10_000
   */
  timeoutMs?: number
  /** How long to wait for a TCP (and TLS) connection to be established, in ms. @default 5_000 */
  connectTimeoutMs?: number
  /**
   * Retries after a connection error, a timeout or a 5xx answer (never after a 4xx). Every
   * mutation carries an idempotency key, so a retry never applies an operation twice.
   * @default 3
   */
  retries?: number
  /** The first retry waits about this long (with jitter); each further one twice as long. @default 50 */
  retryBaseMs?: number
  /** The longest wait between two attempts, in ms. @default 1_000 */
  retryMaxMs?: number
  /**
   * `watch()`: how long the change stream may stay silent before it counts as lost and is
   * reopened, in ms. The server sends a heartbeat every `changeFeed.heartbeatMs` (15 s by
   * default): keep this well above it. @default 45_000
   */
  watchIdleMs?: number
}

/** {@link HttpStoreOptions} checked, with defaults applied and request parts precomputed. */
interface ResolvedHttpStoreOptions {
  origin: string
  /** The URL's path without a trailing slash; `''` for none. */
  basePath: string
  authorization: string
  connections: number
  timeoutMs: number
  connectTimeoutMs: number
  retries: number
  retryBaseMs: number
  retryMaxMs: number
  watchIdleMs: number
  batch: boolean
  maxBatch: number
  maxBatchBytes: number
}

const DEFAULTS = {
  // Read from the environment at creation, not at import.
  url: undefined,
  apiKey: undefined,
  connections: 64,
  timeoutMs: 10_000,
  connectTimeoutMs: 5_000,
  retries: 3,
  retryBaseMs: 50,
  retryMaxMs: 1_000,
  watchIdleMs: 45_000,
  batch: true,
  maxBatch: 64,
  maxBatchBytes: 60_000,
} satisfies OptionDefaults<HttpStoreOptions>

function resolveOptions(options: HttpStoreOptions): ResolvedHttpStoreOptions {
  const o = readOptions(options, { owner: 'httpStore', defaults: DEFAULTS })
  const rawUrl = o.url ?? process.env.TOLLGATE_URL
  if (typeof rawUrl !== 'string' || rawUrl === '') {
    throw new InvalidInputError('url', 'is required: pass { url } or set TOLLGATE_URL')
  }
  let url: URL
  try {
    url = new URL(rawUrl)
  } catch {
    throw new InvalidInputError('url', `is not a URL: ${rawUrl}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidInputError('url', 'must be an http: or https: URL')
  }
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw new InvalidInputError('url', 'must not carry credentials, a query or a fragment')
  }
  const apiKey = o.apiKey ?? process.env.TOLLGATE_API_KEY
  if (typeof apiKey !== 'string' || apiKey === '') {
    throw new InvalidInputError(
      'apiKey',
      'is required: pass { apiKey } or set TOLLGATE_API_KEY (a tg_sk_… key of the server)',
    )
  }
  // A key that cannot travel in a header would fail every request; say so once, here.
  if (!/^[\x21-\x7e]+$/.test(apiKey)) {
    throw new InvalidInputError('apiKey', 'must be printable ASCII without spaces')
  }
  return {
    origin: url.origin,
    basePath: url.pathname.replace(/\/+$/, ''),
    authorization: `Bearer ${apiKey}`,
    connections: checkInt(o.connections, 'connections', 1, 10_000),
    timeoutMs: checkInt(o.timeoutMs, 'timeoutMs', 1, 3_600_000),
    connectTimeoutMs: checkInt(o.connectTimeoutMs, 'connectTimeoutMs', 1, 3_600_000),
    retries: checkInt(o.retries, 'retries', 0, 100),
    retryBaseMs: checkInt(o.retryBaseMs, 'retryBaseMs', 0, 3_600_000),
    retryMaxMs: checkInt(o.retryMaxMs, 'retryMaxMs', 0, 3_600_000),
    watchIdleMs: checkInt(o.watchIdleMs, 'watchIdleMs', 100, 3_600_000),
    batch: checkBoolean(o.batch, 'batch'),
    maxBatch: checkInt(o.maxBatch, 'maxBatch', 1, MAX_BATCH_OPERATIONS),
    maxBatchBytes: checkInt(o.maxBatchBytes, 'maxBatchBytes', 1_000, 100 * 1024 * 1024),
  }
}

/**
 * Error codes of a request that may not have reached the server, or whose answer was lost: the
 * connection failed, dropped or timed out. Anything else (a closed pool, a malformed request or
 * response) would fail the same way again.
 */
const RETRYABLE_CODES = new Set([
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
])

function isConnectionError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false
  const { code, errors } = err as { code?: unknown; errors?: unknown }
  if (typeof code === 'string' && RETRYABLE_CODES.has(code)) return true
  // Happy eyeballs (IPv4 and IPv6 tried at once) reports an AggregateError of both failures.
  return Array.isArray(errors) && errors.some(isConnectionError)
}

/**
 * Codes per request (about 270 KB of JSON). A batch may hold 100,000 codes: sent whole, it would
 * be a 26 MB body that a proxy's limit (nginx: 1 MiB) refuses, and one transaction long enough
 * to outlast `timeoutMs`, then be retried in full.
 */
const CODES_PER_REQUEST = 1_000

/** Operations waiting to be sent, at most: beyond, `execute` fails at once (503). */
const QUEUE_LIMIT = 10_000

/** An operation taken by the batching path, until it is settled. */
interface PendingOp {
  tenant: string
  /** The `/v1/store/execute` body of the operation (a batch item adds its tenant and deadline). */
  body: string
  /** About what it adds to a batch body. */
  bytes: number
  transportKey: string | undefined
  /** When its caller stops waiting (performance.now()), if it has a deadline. */
  deadline: number | undefined
  /** Retries so far. */
  attempts: number
  /** Fails it at its deadline, whatever its batch is doing. */
  timer: NodeJS.Timeout | undefined
  settled: boolean
  resolve: (out: Outcome) => void
  reject: (err: unknown) => void
}

/** An attempt that may be tried again: what went wrong, for the final error's `cause`. */
class Retryable {
  constructor(readonly cause: unknown) {}
}

/**
 * The header that tells the server how long this request's client waits, in ms: the server runs
 * the operation within it (capped by its own limit) or answers 503, and never applies it after.
 */
export const DEADLINE_HEADER = 'tollgate-deadline-ms'

/**
 * How much longer than the deadline it sent an attempt waits for the server's answer: the
 * server answers at the deadline (a 503 at worst), and that answer is worth hearing rather
 * than timing out just before it arrives.
 */
const ANSWER_GRACE_MS = 1_000

const ROUTE = {
  execute: '/v1/store/execute',
  batch: '/v1/store/batch',
  ledger: '/v1/store/ledger',
  usage: '/v1/store/usage',
  accounts: '/v1/store/accounts',
  codes: '/v1/store/codes',
  due: '/v1/store/due',
  prune: '/v1/store/prune',
  settings: '/v1/store/settings',
} as const

class HttpStore implements Store {
  readonly kind = 'http'
  readonly #o: ResolvedHttpStoreOptions
  readonly #pool: Pool
  /** Request headers by tenant, built once: the hot path only looks them up. */
  readonly #headers = new Map<string, Record<string, string>>()
  readonly #paths: Record<keyof typeof ROUTE, string>
  /** Headers of a batch request: tenants travel in its items. */
  readonly #batchHeaders: Record<string, string>
  #batching: boolean
  /** Operations waiting for a batch, in arrival order. */
  #queue: PendingOp[] = []
  #flushScheduled = false
  /** Batch requests in flight. */
  #inFlight = 0
  readonly #sending = new Set<Promise<void>>()
  /** Operations waiting out a backoff before their next attempt. */
  readonly #retrying = new Set<PendingOp>()
  #closed = false
  /** Open change streams (`watch()`), closed with the store. */
  readonly #streams = new Set<ChangeStream>()

  constructor(options: HttpStoreOptions) {
    const o = resolveOptions(options)
    this.#o = o
    this.#paths = {
      execute: o.basePath + ROUTE.execute,
      batch: o.basePath + ROUTE.batch,
      ledger: o.basePath + ROUTE.ledger,
      usage: o.basePath + ROUTE.usage,
      accounts: o.basePath + ROUTE.accounts,
      codes: o.basePath + ROUTE.codes,
      due: o.basePath + ROUTE.due,
      prune: o.basePath + ROUTE.prune,
      settings: o.basePath + ROUTE.settings,
    }
    this.#batchHeaders = { 'content-type': 'application/json', authorization: o.authorization }
    this.#batching = o.batch
    this.#pool = new Pool(o.origin, {
      connections: o.connections,
      headersTimeout: o.timeoutMs,
      bodyTimeout: o.timeoutMs,
      connectTimeout: o.connectTimeoutMs,
      // Sockets stay open between requests (undici keeps alive by default, for as long as the
      // server's Keep-Alive hint allows): a metered request costs no TCP handshake.
    })
  }

  execute(req: ExecuteRequest): Promise<Outcome> {
    let op: Operation = req.op
    let transportKey: string | undefined
    // A mutation without a key gets one of ours, so that a retry after a lost answer replays
    // the first attempt instead of applying the operation twice. Reads need none.
    if (op.idempotencyKey === undefined && op.type !== 'balance') {
      transportKey = TRANSPORT_KEY_PREFIX + randomUUID()
      op = { ...op, idempotencyKey: transportKey }
    } else if (op.hideKey !== undefined) {
      // Not part of the protocol: the server derives it from the key (a server chained to
      // another through httpStore passes it on marked).
      const { hideKey: _hide, ...rest } = op
      op = rest as Operation
    }
    // The meter validated the operation: no schema work here, one stringify and one parse.
    const body = JSON.stringify({
      account: req.account ?? null,
      op,
      now: req.now,
      config: req.config,
    })
    const deadline = req.timeoutMs === undefined ? undefined : performance.now() + req.timeoutMs
    if (!this.#batching) {
      return this.#post(this.#paths.execute, req.tenant, body, deadline).then((data) =>
        decodeOutcome(data, transportKey),
      )
    }
    if (this.#closed) return Promise.reject(new StoreUnavailableError('httpStore is closed'))
    if (this.#queue.length >= QUEUE_LIMIT) {
      return Promise.reject(
        new StoreUnavailableError(`httpStore has ${QUEUE_LIMIT} operations waiting to be sent`),
      )
    }
    try {
      // Checked here too, so that every route refuses the same tenants.
      this.#headersFor(req.tenant)
    } catch (err) {
      return Promise.reject(err)
    }
    return new Promise<Outcome>((resolve, reject) => {
      const pending: PendingOp = {
        tenant: req.tenant,
        body,
        bytes: Buffer.byteLength(body) + req.tenant.length * 3 + 32,
        transportKey,
        deadline,
        attempts: 0,
        timer: undefined,
        settled: false,
        resolve,
        reject,
      }
      if (deadline !== undefined) {
        // The server never applies the operation past its deadline; the answer may still be
        // stuck behind slower operations of its batch, and is not worth waiting for beyond it.
        pending.timer = setTimeout(
          () => this.#fail(pending, this.#deadlineError()),
          req.timeoutMs! + ANSWER_GRACE_MS,
        )
      }
      this.#enqueue(pending)
    })
  }

  /** Queues an operation and makes sure a flush is coming. */
  #enqueue(p: PendingOp): void {
    this.#queue.push(p)
    this.#scheduleFlush()
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#queue.length === 0) return
    if (this.#inFlight >= this.#o.connections && !this.#closed) return
    this.#flushScheduled = true
    // The next turn of the event loop, not the next microtask: the meter awaits a few times
    // between a caller's call and store.execute, and everything the current I/O callback
    // starts (e.g. 64 loops woken by one batch answer) should leave together.
    setImmediate(this.#flush)
  }

  /** Sends what waits, in batches, while connections are free (all of it once closing). */
  readonly #flush = (): void => {
    this.#flushScheduled = false
    const { maxBatch, maxBatchBytes, connections } = this.#o
    while (this.#queue.length > 0 && (this.#inFlight < connections || this.#closed)) {
      const batch: PendingOp[] = []
      let bytes = 16
      let taken = 0
      for (; taken < this.#queue.length && batch.length < maxBatch; taken++) {
        const p = this.#queue[taken]!
        if (p.settled) continue
        if (batch.length > 0 && bytes + p.bytes > maxBatchBytes) break
        bytes += p.bytes
        batch.push(p)
      }
      this.#queue = taken === this.#queue.length ? [] : this.#queue.slice(taken)
      if (batch.length === 0) continue
      this.#inFlight++
      const sent = this.#sendBatch(batch).finally(() => {
        this.#inFlight--
        this.#sending.delete(sent)
        this.#scheduleFlush()
      })
      this.#sending.add(sent)
    }
  }

  /** One attempt of a batch; every operation in it is settled or queued for a retry after. */
  async #sendBatch(batch: PendingOp[]): Promise<void> {
    const { timeoutMs } = this.#o
    const now = performance.now()
    const parts: string[] = []
    const live: PendingOp[] = []
    let longest = 0
    for (const p of batch) {
      const left =
        p.deadline === undefined ? timeoutMs : Math.min(timeoutMs, Math.floor(p.deadline - now))
      if (left < 1) {
        this.#fail(p, this.#deadlineError())
        continue
      }
      if (left > longest) longest = left
      const tenant = p.tenant === 'default' ? 'null' : JSON.stringify(p.tenant)
      const ownDeadline = left < timeoutMs ? `,"timeoutMs":${left}` : ''
      parts.push(`{"tenant":${tenant},${p.body.slice(1, -1)}${ownDeadline}}`)
      live.push(p)
    }
    if (live.length === 0) return
    const headers = { ...this.#batchHeaders, [DEADLINE_HEADER]: String(longest) }
    const body = `{"items":[${parts.join(',')}]}`
    let answer: unknown
    try {
      answer = await this.#attempt(
        'POST',
        this.#paths.batch,
        headers,
        body,
        longest < timeoutMs ? longest + ANSWER_GRACE_MS : undefined,
      )
    } catch (err) {
      if (isTollgateError(err) && err.code === 'not_found' && !this.#closed) {
        // A server from before the batch route: one request per operation from now on.
        this.#batching = false
        for (const p of live) this.#sendAlone(p)
        return
      }
      for (const p of live) this.#fail(p, err)
      return
    }
    if (answer instanceof Retryable) {
      for (const p of live) this.#retry(p, answer.cause)
      return
    }
    const outcomes = (answer as { outcomes?: unknown } | null)?.outcomes
    if (!Array.isArray(outcomes) || outcomes.length !== live.length) {
      for (const p of live) this.#fail(p, malformed('batch'))
      return
    }
    for (let i = 0; i < live.length; i++) {
      const p = live[i]!
      const a = outcomes[i] as Partial<{ outcome: WireOutcome; problem: ProblemDetails }> | null
      if (a?.outcome !== undefined) {
        let out: Outcome
        try {
          out = decodeOutcome(a.outcome, p.transportKey)
        } catch (err) {
          this.#fail(p, err)
          continue
        }
        this.#settle(p)
        p.resolve(out)
      } else if (a?.problem !== undefined) {
        const problem = problemOf(num(a.problem.status), JSON.stringify(a.problem))
        const error = errorFromProblem(problem)
        // Per operation as per request: a 5xx (the store saturated, its deadline passed on the
        // server) is tried again under the same key, a 4xx is the operation's answer.
        if (problem.status >= 500) this.#retry(p, error)
        else this.#fail(p, error)
      } else {
        this.#fail(p, malformed('batch'))
      }
    }
  }

  /** An operation of a batch the server could not take, sent on its own (the old route). */
  #sendAlone(p: PendingOp): void {
    this.#post(this.#paths.execute, p.tenant, p.body, p.deadline).then(
      (data) => {
        if (p.settled) return
        let out: Outcome
        try {
          out = decodeOutcome(data, p.transportKey)
        } catch (err) {
          this.#fail(p, err)
          return
        }
        this.#settle(p)
        p.resolve(out)
      },
      (err: unknown) => this.#fail(p, err),
    )
  }

  /** Queues `p` again after a backoff, or fails it once its retries (or the store) are over. */
  #retry(p: PendingOp, cause: unknown): void {
    if (p.settled) return
    if (p.attempts >= this.#o.retries || this.#closed) {
      const n = p.attempts + 1
      this.#fail(
        p,
        new StoreUnavailableError(
          `Tollgate server at ${this.#o.origin} unavailable after ${n} attempt${n === 1 ? '' : 's'}: ${explain(cause)}`,
          { cause },
        ),
      )
      return
    }
    const pause = this.#backoff(p.attempts)
    p.attempts++
    const wait =
      p.deadline === undefined
        ? pause
        : Math.min(pause, Math.max(0, p.deadline - performance.now()))
    this.#retrying.add(p)
    // Not unref'd: an operation is in progress, and the process must not exit under it.
    setTimeout(() => {
      this.#retrying.delete(p)
      if (p.settled) return
      if (this.#closed) this.#fail(p, new StoreUnavailableError('httpStore is closed'))
      else this.#enqueue(p)
    }, wait)
  }

  #settle(p: PendingOp): void {
    p.settled = true
    if (p.timer !== undefined) clearTimeout(p.timer)
  }

  #fail(p: PendingOp, err: unknown): void {
    if (p.settled) return
    this.#settle(p)
    p.reject(err)
  }

  #deadlineError(): StoreUnavailableError {
    return new StoreUnavailableError(
      `no answer from the Tollgate server at ${this.#o.origin} within the deadline`,
    )
  }

  async ledger(tenant: string, account: string, req: LedgerRequest): Promise<LedgerPage> {
    const body = JSON.stringify({
      account,
      limit: req.limit,
      before: req.before,
      types: req.types,
      from: req.from,
      to: req.to,
    })
    const page = (await this.#post(this.#paths.ledger, tenant, body)) as LedgerPage
    if (!Array.isArray(page?.entries)) throw malformed('ledger')
    return page
  }

  /** Usage as the server's store reports it (`POST /v1/store/usage`). */
  async usage(tenant: string, req: UsageRequest): Promise<UsageReport> {
    const report = (await this.#post(this.#paths.usage, tenant, JSON.stringify(req))) as UsageReport
    if (!Array.isArray(report?.periods)) throw malformed('usage')
    return report
  }

  async accounts(tenant: string, req: AccountsRequest): Promise<AccountsPage> {
    // Fields left undefined drop out of the JSON: the server reads them as "no filter".
    const page = (await this.#post(
      this.#paths.accounts,
      tenant,
      JSON.stringify(req),
    )) as AccountsPage
    if (!Array.isArray(page?.accounts)) throw malformed('accounts')
    return page
  }

  /**
   * Stores the batch in requests of {@link CODES_PER_REQUEST} codes. Every request carries an
   * idempotency record (a transport key when it has none of its own), so a retried request
   * stores its codes once. The caller's record travels with the last request: the key is
   * saved only once every code is stored, and a failure half-way leaves no key that would
   * replay a batch the caller never received. (Codes stored before a replay or conflict on the
   * last request were never shown to anyone: nobody can redeem them.)
   */
  async createCodes(tenant: string, batch: CodeBatch): Promise<CodeBatchOutcome> {
    const { codes } = batch
    let outcome: CodeBatchOutcome = { status: 'created' }
    for (let start = 0; start < codes.length; start += CODES_PER_REQUEST) {
      const last = start + CODES_PER_REQUEST >= codes.length
      outcome = await this.#storeCodes(
        tenant,
        batch,
        codes.length <= CODES_PER_REQUEST ? codes : codes.slice(start, start + CODES_PER_REQUEST),
        last ? batch.idempotency : null,
      )
      if (outcome.status !== 'created') return outcome
    }
    return outcome
  }

  async #storeCodes(
    tenant: string,
    batch: CodeBatch,
    codes: CodeRecord[],
    idempotency: CodeBatch['idempotency'],
  ): Promise<CodeBatchOutcome> {
    const key = idempotency?.key ?? TRANSPORT_KEY_PREFIX + randomUUID()
    const body = JSON.stringify({
      batchId: batch.batchId,
      codes,
      idempotency: idempotency ?? {
        key,
        fingerprint: JSON.stringify(['createCodes', batch.batchId, codes.length]),
        result: { batchId: batch.batchId },
      },
      now: batch.now,
    })
    const out = (await this.#post(this.#paths.codes, tenant, body)) as CodeBatchOutcome
    if (out?.status === 'replayed') {
      const replayedBatch = (out.result as { batchId?: unknown } | null)?.batchId
      // A replay of this very batch is a retry of ours whose answer was lost: the codes the
      // caller holds are the stored ones, so it is the first answer, not a replay.
      if (idempotency === null || replayedBatch === batch.batchId) return { status: 'created' }
      return out
    }
    if (out?.status !== 'created' && out?.status !== 'conflict') throw malformed('codes')
    return out
  }

  async dueAccounts(tenant: string, now: number, limit: number): Promise<string[]> {
    const out = (await this.#post(this.#paths.due, tenant, JSON.stringify({ now, limit }))) as {
      accounts?: unknown
    }
    if (!Array.isArray(out?.accounts)) throw malformed('due')
    return out.accounts as string[]
  }

  async prune(tenant: string, before: number): Promise<number> {
    const out = (await this.#post(this.#paths.prune, tenant, JSON.stringify({ before }))) as {
      pruned?: unknown
    }
    if (typeof out?.pruned !== 'number') throw malformed('prune')
    return out.pruned
  }

  async tenantSettings(tenant: string): Promise<TenantSettings> {
    return settingsFrom(await this.#post(this.#paths.settings, tenant, undefined, undefined, 'GET'))
  }

  async putTenantSettings(tenant: string, patch: Partial<TenantSettings>): Promise<TenantSettings> {
    const body = JSON.stringify(patch)
    return settingsFrom(await this.#post(this.#paths.settings, tenant, body, undefined, 'PUT'))
  }

  /**
   * The server's change feed (`GET /v1/store/changes`, server-sent events): every change to an
   * account of the key's tenant (of every tenant, for an admin key). Resolves once the stream is
   * live or its first attempt failed (then `onStatus(false)` was called); it reopens with
   * backoff after a loss, calling `onStatus(false, reason)` once per loss and `onStatus(true)`
   * when it is back. Holds one of the pool's connections while open.
   */
  async watch(listener: WatchListener): Promise<WatchSubscription> {
    if (this.#closed) throw new StoreUnavailableError('httpStore is closed')
    const stream = new ChangeStream(this.#pool, this.#o, this.#o.basePath + CHANGES_ROUTE, listener)
    this.#streams.add(stream)
    await stream.started
    return {
      close: async () => {
        this.#streams.delete(stream)
        await stream.close()
      },
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    // A stream would hold the pool open for good.
    await Promise.all([...this.#streams].map((s) => s.close()))
    this.#streams.clear()
    // Operations already taken are sent (whatever the connection cap) and answered; those
    // waiting out a backoff fail now rather than hold the close.
    for (const p of this.#retrying) this.#fail(p, new StoreUnavailableError('httpStore is closed'))
    this.#retrying.clear()
    this.#flush()
    await Promise.all(this.#sending)
    // Lets requests in flight finish, then closes every socket.
    await this.#pool.close()
  }

  #headersFor(tenant: string): Record<string, string> {
    let headers = this.#headers.get(tenant)
    if (headers === undefined) {
      headers = { 'content-type': 'application/json', authorization: this.#o.authorization }
      if (tenant !== 'default') {
        // Node reads header values as Latin-1: anything beyond would arrive garbled.
        if (!/^[\x20-\x7e\xa0-\xff]+$/.test(tenant)) {
          throw new InvalidInputError(
            'tenant',
            'must be Latin-1 text to travel in the Tollgate-Tenant header',
          )
        }
        headers['tollgate-tenant'] = tenant
      }
      this.#headers.set(tenant, headers)
    }
    return headers
  }

  /**
   * POSTs `body` and returns the parsed JSON answer. Connection errors, timeouts and 5xx
   * answers are retried with exponential backoff and jitter; a 4xx answer is thrown at once as
   * the typed error its problem details stand for.
   *
   * With a `deadline` (performance.now() time), every attempt tells the server the time left
   * ({@link DEADLINE_HEADER}) and waits about that long; none starts after it.
   */
  async #post(
    path: string,
    tenant: string,
    body: string | undefined,
    deadline?: number,
    method: 'POST' | 'PUT' | 'GET' = 'POST',
  ): Promise<unknown> {
    if (this.#closed) throw new StoreUnavailableError('httpStore is closed')
    const tenantHeaders = this.#headersFor(tenant)
    const { retries, timeoutMs } = this.#o
    for (let attempt = 0; ; attempt++) {
      let headers = tenantHeaders
      /** This attempt's own timeout, when the deadline makes it shorter than the pool's. */
      let waitMs: number | undefined
      if (path === this.#paths.execute) {
        // The server learns how long this attempt waits, so that it never works longer.
        const left =
          deadline === undefined
            ? timeoutMs
            : Math.min(timeoutMs, Math.floor(deadline - performance.now()))
        if (left < 1) {
          throw new StoreUnavailableError(
            `no answer from the Tollgate server at ${this.#o.origin} within the deadline`,
          )
        }
        headers = { ...tenantHeaders, [DEADLINE_HEADER]: String(left) }
        if (left < timeoutMs) waitMs = left + ANSWER_GRACE_MS
      }
      const answer = await this.#attempt(method, path, headers, body, waitMs)
      if (!(answer instanceof Retryable)) return answer
      if (attempt >= retries || this.#closed) {
        throw new StoreUnavailableError(
          `Tollgate server at ${this.#o.origin} unavailable after ${attempt + 1} attempt${attempt === 0 ? '' : 's'}: ${explain(answer.cause)}`,
          { cause: answer.cause },
        )
      }
      const pause = this.#backoff(attempt)
      await sleep(
        deadline === undefined ? pause : Math.min(pause, Math.max(0, deadline - performance.now())),
      )
    }
  }

  /** One request: the parsed answer, a {@link Retryable}, or a thrown final error. */
  async #attempt(
    method: 'POST' | 'PUT' | 'GET',
    path: string,
    headers: Record<string, string>,
    body: string | undefined,
    timeoutMs: number | undefined,
  ): Promise<unknown | Retryable> {
    let statusCode: number
    let text: string
    try {
      const res = await this.#pool.request(
        timeoutMs === undefined
          ? { path, method, headers, body }
          : {
              path,
              method,
              headers,
              body,
              headersTimeout: timeoutMs,
              bodyTimeout: timeoutMs,
            },
      )
      statusCode = res.statusCode
      text = await res.body.text()
    } catch (err) {
      if (isConnectionError(err)) return new Retryable(err)
      throw new StoreUnavailableError(`request to ${this.#o.origin} failed: ${explain(err)}`, {
        cause: err,
      })
    }
    if (statusCode >= 200 && statusCode < 300) {
      try {
        return JSON.parse(text)
      } catch (err) {
        throw new StoreUnavailableError(
          `Tollgate server answered ${statusCode} with invalid JSON`,
          {
            cause: err,
          },
        )
      }
    }
    const error = errorFromProblem(problemOf(statusCode, text))
    if (statusCode >= 500) return new Retryable(error)
    throw error
  }

  #backoff(attempt: number): number {
    return backoffMs(attempt, this.#o.retryBaseMs, this.#o.retryMaxMs, Math.random())
  }
}

/**
 * The wait before retry `attempt + 1`: exponential from `baseMs`, capped at `maxMs`, with
 * jitter (`random` in [0, 1)) over its upper half, so that clients that failed together do not
 * retry together.
 */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** attempt)
  return ceiling / 2 + random * (ceiling / 2)
}

/** The problem details of an error answer; a body that is none (a proxy's page) becomes one. */
function problemOf(status: number, text: string): ProblemDetails {
  try {
    const p = JSON.parse(text) as unknown
    if (typeof p === 'object' && p !== null && typeof (p as ProblemDetails).code === 'string') {
      return { ...(p as ProblemDetails), status }
    }
  } catch {
    // Not JSON: fall through.
  }
  return {
    type: 'about:blank',
    title: 'HTTP error',
    status,
    detail: `server answered ${status}${text ? `: ${text.slice(0, 200)}` : ''}`,
    code: 'internal',
  }
}

function decodeOutcome(data: unknown, transportKey: string | undefined): Outcome {
  const wire = data as WireOutcome
  if (typeof wire !== 'object' || wire === null || !Array.isArray(wire.events)) {
    throw malformed('execute')
  }
  const out = outcomeFromWire(wire)
  // A replay under our own key is our earlier attempt, whose answer was lost: for the caller
  // it is the first answer.
  if (transportKey !== undefined) out.replayed = false
  return out
}

function settingsFrom(data: unknown): TenantSettings {
  const s = data as Record<string, unknown> | null
  const ok = (v: unknown) => v === null || (typeof v === 'number' && Number.isSafeInteger(v))
  if (typeof s !== 'object' || s === null || !ok(s.lowBalanceThreshold) || !ok(s.overdraftLimit)) {
    throw malformed('settings')
  }
  return {
    lowBalanceThreshold: s.lowBalanceThreshold as number | null,
    overdraftLimit: s.overdraftLimit as number | null,
  }
}
const num = (v: unknown): number => (typeof v === 'number' ? v : 0)

function malformed(route: string): StoreUnavailableError {
  return new StoreUnavailableError(`Tollgate server sent a malformed ${route} answer`)
}

function explain(err: unknown): string {
  if (isTollgateError(err)) return `${err.status} ${err.message}`
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code
    return typeof code === 'string' ? `${code} ${err.message}` : err.message
  }
  return String(err)
}

/** The longest wait between two attempts to reopen a change stream, in ms. */
const STREAM_RETRY_MAX_MS = 5_000

/** One `watch()` subscription: a change stream kept open, reopened with backoff after a loss. */
class ChangeStream {
  /** Settles once the first attempt is live or failed. */
  readonly started: Promise<void>
  readonly #pool: Pool
  readonly #o: ResolvedHttpStoreOptions
  readonly #path: string
  readonly #listener: WatchListener
  readonly #abort = new AbortController()
  #running: Promise<void>
  /** A loss was reported and the stream is not back yet. */
  #down = false
  #markStarted!: () => void

  constructor(pool: Pool, o: ResolvedHttpStoreOptions, path: string, listener: WatchListener) {
    this.#pool = pool
    this.#o = o
    this.#path = path
    this.#listener = listener
    this.started = new Promise((resolve) => {
      this.#markStarted = resolve
    })
    this.#running = this.#run()
  }

  async close(): Promise<void> {
    this.#abort.abort()
    this.#markStarted()
    await this.#running
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal
    for (let attempt = 0; !signal.aborted; ) {
      try {
        const res = await this.#pool.request({
          path: this.#path,
          method: 'GET',
          headers: { authorization: this.#o.authorization, accept: 'text/event-stream' },
          signal,
          headersTimeout: this.#o.timeoutMs,
          // The heartbeats keep a live stream from ever being this quiet.
          bodyTimeout: this.#o.watchIdleMs,
        })
        if (res.statusCode !== 200) {
          const text = await res.body.text()
          throw errorFromProblem(problemOf(res.statusCode, text))
        }
        const reader = new SseReader()
        /** The key's tenant when the stream carries one tenant (a tenant key). */
        let scope: string | null = null
        res.body.setEncoding('utf8')
        for await (const chunk of res.body) {
          for (const event of reader.push(chunk as string)) {
            if (event.type === 'changes') this.#listener.onChanges(asCalled(event.changes, scope))
            else if (event.type === 'ready' || event.up) {
              if (event.type === 'ready') scope = event.tenant
              attempt = 0
              this.#up()
            } else this.#lost(`the server's feed is down: ${event.reason ?? 'no reason given'}`)
          }
        }
        throw new Error('the server ended the change stream')
      } catch (err) {
        if (signal.aborted) break
        this.#lost(explain(err))
      }
      const pause = backoffMs(
        attempt++,
        Math.max(this.#o.retryBaseMs, 50),
        STREAM_RETRY_MAX_MS,
        Math.random(),
      )
      await pauseUnlessAborted(pause, signal)
    }
  }

  #up(): void {
    this.#markStarted()
    if (!this.#down) return
    this.#down = false
    this.#listener.onStatus?.(true)
  }

  #lost(reason: string): void {
    this.#markStarted()
    if (this.#down) return
    this.#down = true
    this.#listener.onStatus?.(false, reason)
  }
}

/**
 * Changes of a tenant key's stream as the meter names them: a meter on a tenant key calls its
 * tenant `'default'` (every call of httpStore does: the server maps it to the key's tenant), so
 * each change is also told under that name.
 */
function asCalled(changes: AccountChange[], scope: string | null): AccountChange[] {
  if (scope === null || scope === 'default') return changes
  const out = changes.slice()
  for (const c of changes) out.push({ ...c, tenant: 'default' })
  return out
}

/** Waits `ms` (unref'd: a background reconnect keeps no process alive), or less if aborted. */
function pauseUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    timer.unref()
    signal.addEventListener('abort', done, { once: true })
  })
}

/**
 * A wait between attempts. Not unref'd, unlike Tollgate's background timers: an operation is
 * in progress, and the process must not exit under it.
 */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * A store that forwards every operation to a Tollgate server (`@tollgate/server`), so that many
 * app instances share one ledger. The meter's tenant travels as `Tollgate-Tenant` (admin keys);
 * with a tenant key, leave the meter's tenant at `'default'`.
 *
 * Throws {@link InvalidInputError} at once when there is no URL or API key. Operations throw
 * the typed error the server answers with, and {@link StoreUnavailableError} when the server
 * cannot be reached or keeps failing after the retries.
 * @example
 * import { createMeter, httpStore } from '@tollgate/core'
 * const meter = createMeter({
 *   store: httpStore({ url: 'http://127.0.0.1:7070', apiKey: process.env.TOLLGATE_API_KEY }),
 * })
 * const hold = await meter.reserve('user_1', 10)
 * await hold.commit()
 */
export function httpStore(options: HttpStoreOptions = {}): Store {
  return new HttpStore(options)
}
