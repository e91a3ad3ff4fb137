/**
 * The store protocol (`/v1/store/*`), what `httpStore()` calls: a meter on another machine sends
 * the operation it built, and it runs here on this server's store, for the tenant of the key.
 * Domain errors travel inside the outcome (200); only a transport failure (auth, a malformed
 * body, the store down or past the request's deadline) is an HTTP error.
 */
import { Transform } from 'node:stream'
import {
  AuthError,
  InvalidInputError,
  isTollgateError,
  type LedgerEntryType,
  StoreUnavailableError,
  type TollgateError,
  type UsageRequest,
} from '@tollgate/core'
import type { EngineConfig, Operation } from '@tollgate/core/engine'
import {
  accountsBodySchema,
  batchBodySchema,
  batchItemSchema,
  CHANGES_ROUTE,
  checkAccount,
  codeBatchBodySchema,
  dueBodySchema,
  type ExecuteBody,
  executeBodySchema,
  HOLD_OPERATIONS,
  ledgerBodySchema,
  markTransportKey,
  outcomeToWire,
  pruneBodySchema,
  usageBodySchema,
  type WireBatchAnswer,
  type WireOutcome,
} from '@tollgate/core/protocol'
import { errorOutcome, newId, type Outcome } from '@tollgate/core/store'
import type { FastifyBaseLogger } from 'fastify'
import type { App, Caller, ServerContext } from './context.js'
import { BodyTooLargeError, issueProblem, problemOf } from './problems.js'
import { isFailedRedemption, type RedeemAttempt } from './redeem-limiter.js'
import { tenantSettingsRoutes } from './rest-routes.js'
import {
  batchResponse,
  dueResponse,
  problems,
  pruneResponse,
  storeAccountsResponse,
  storeCodesResponse,
  storeLedgerResponse,
  storeUsageResponse,
  tenantHeaders,
  wireOutcomeResponse,
} from './schemas.js'

const security = [{ apiKey: [] }]
const tags = ['store protocol']
/** What the store protocol may prune: nothing younger than the 48 h idempotency guarantee. */
const MIN_RETENTION_MS = 2 * 86_400_000

/** `payload`, failing with {@link BodyTooLargeError} once more than `limit` bytes passed. */
function capStream(payload: NodeJS.ReadableStream, limit: number): Transform {
  let seen = 0
  const capped = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length
      if (seen > limit) done(new BodyTooLargeError(limit))
      else done(null, chunk)
    },
  })
  // An error on the request (a reset connection) reaches the parser as the stream's error.
  payload.on('error', (err) => capped.destroy(err))
  return payload.pipe(capped)
}

/** A store failure as the 503 the client retries; a Tollgate error passes as it is. */
function storeFailure(err: unknown): unknown {
  return isTollgateError(err) ? err : new StoreUnavailableError('store failed', { cause: err })
}

/** Registers `/v1/store/*`. */
export function storeRoutes(app: App, ctx: ServerContext): void {
  const { store, clock, clientClock } = ctx.options

  /** The client's engine settings, with code throttling no looser than the server's. */
  const capped = (config: EngineConfig): EngineConfig => ({
    ...config,
    redeemMaxFailures: Math.min(config.redeemMaxFailures, ctx.options.redeemMaxFailures),
    redeemWindowMs: Math.max(config.redeemWindowMs, ctx.options.redeemWindowMs),
  })

  /**
   * Runs one operation of the store protocol on `tenant`'s ledger. Domain errors come back
   * inside the outcome; a malformed request or a store failure is thrown (a 4xx or the 503
   * the client retries).
   */
  async function runOperation(
    tenant: string,
    body: ExecuteBody,
    timeoutMs: number,
  ): Promise<WireOutcome> {
    // A key httpStore made for its retries dedupes, but entries leave it out (hideKey).
    const op = markTransportKey(body.op as Operation)
    const holdOp = HOLD_OPERATIONS.has(op.type)
    if (holdOp && body.account !== null) {
      throw new InvalidInputError('account', `must be null for ${op.type}`)
    }
    if (!holdOp && body.account === null) {
      throw new InvalidInputError('account', `is required for ${op.type}`)
    }
    let attempt: RedeemAttempt | null = null
    if (op.type === 'redeem') {
      try {
        // Counted before the await (a redeem always names its account).
        attempt = ctx.limiter.begin(tenant, body.account ?? '')
      } catch (err) {
        return outcomeToWire(errorOutcome(err as TollgateError))
      }
    }
    let outcome: Outcome | null = null
    try {
      outcome = await store.execute({
        tenant,
        account: body.account ?? undefined,
        op,
        now: clientClock ? body.now : clock(),
        config: capped(body.config),
        newId,
        timeoutMs,
      })
    } catch (err) {
      throw storeFailure(err)
    } finally {
      await attempt?.settle(outcome?.error != null && isFailedRedemption(outcome.error))
    }
    return outcomeToWire(outcome)
  }

  /** The tenant a batch item acts on: its own (admin keys), else the request's. */
  function tenantOf(caller: Caller, named: string | null | undefined): string {
    if (named === null || named === undefined) return caller.tenant
    if (caller.key.role !== 'admin') {
      if (named === caller.tenant) return named
      // A tenant key acts on its own tenant only, whatever an item names.
      throw new AuthError('a tenant key acts on its own tenant only')
    }
    const tenant = checkAccount(named, 'tenant')
    ctx.sawTenant(tenant)
    return tenant
  }

  /**
   * One item of a batch: its outcome, or the problem that kept it from running. Never
   * throws: whatever goes wrong with one operation is its own answer, not its batch's.
   */
  async function runItem(
    caller: Caller,
    raw: unknown,
    requestTimeoutMs: number,
    started: number,
    log: FastifyBaseLogger,
  ): Promise<WireBatchAnswer> {
    const parsed = batchItemSchema.safeParse(raw)
    if (!parsed.success) return { problem: issueProblem(parsed.error.issues[0]!) }
    const { tenant: named, timeoutMs: own, ...body } = parsed.data
    try {
      const tenant = tenantOf(caller, named)
      // Each item's own deadline, within the request's, counted from the request's arrival.
      const budget = own === undefined ? requestTimeoutMs : Math.min(own, requestTimeoutMs)
      const left = Math.floor(budget - (performance.now() - started))
      if (left < 1) {
        throw new StoreUnavailableError("the operation's deadline passed before it ran", {
          retryAfterMs: 1_000,
        })
      }
      return { outcome: await runOperation(tenant, body, left) }
    } catch (err) {
      const problem = problemOf(err, ctx.options.bodyLimit)
      if (problem.status >= 500) log.error({ err }, 'batch operation failed')
      return { problem }
    }
  }

  app.post(
    '/v1/store/execute',
    {
      schema: {
        operationId: 'storeExecute',
        tags,
        summary: 'Run one operation (httpStore)',
        security,
        headers: tenantHeaders,
        body: executeBodySchema,
        response: { 200: wireOutcomeResponse, ...problems },
      },
    },
    async (request) =>
      runOperation(ctx.callerOf(request).tenant, request.body, ctx.timeoutOf(request)),
  )

  app.post(
    '/v1/store/batch',
    {
      schema: {
        operationId: 'storeBatch',
        tags,
        summary: 'Run operations that waited together in one client (httpStore)',
        description:
          "Each item is a `/v1/store/execute` body plus `tenant` (admin keys; null: the key's " +
          'tenant or `Tollgate-Tenant`) and `timeoutMs` (its own deadline, within the ' +
          "request's). Items are checked and run one by one, together (one group commit): " +
          'the answer holds, in order, `{ outcome }` or `{ problem }` per item, so one bad ' +
          'operation fails alone.',
        security,
        headers: tenantHeaders,
        body: batchBodySchema,
        response: { 200: batchResponse, ...problems },
      },
    },
    async (request) => {
      const caller = ctx.callerOf(request)
      const started = performance.now()
      const timeoutMs = ctx.timeoutOf(request)
      const { items } = request.body
      // Every item starts in this tick, so the store's group commit takes them together.
      const outcomes = await Promise.all(
        items.map((raw) => runItem(caller, raw, timeoutMs, started, request.log)),
      )
      return { outcomes }
    },
  )

  app.post(
    '/v1/store/ledger',
    {
      schema: {
        operationId: 'storeLedger',
        tags,
        summary: "A page of an account's ledger (httpStore)",
        security,
        headers: tenantHeaders,
        body: ledgerBodySchema,
        response: { 200: storeLedgerResponse, ...problems },
      },
    },
    async (request) => {
      const { account, types, ...rest } = request.body
      const tenant = ctx.callerOf(request).tenant
      try {
        return await store.ledger(tenant, account, {
          ...rest,
          types: types as LedgerEntryType[] | null,
        })
      } catch (err) {
        throw storeFailure(err)
      }
    },
  )

  app.post(
    '/v1/store/usage',
    {
      schema: {
        operationId: 'storeUsage',
        tags,
        summary: 'Usage per period (httpStore)',
        security,
        headers: tenantHeaders,
        body: usageBodySchema,
        response: { 200: storeUsageResponse, ...problems },
      },
    },
    async (request) => {
      const tenant = ctx.callerOf(request).tenant
      if (!store.usage) throw new InvalidInputError('store', `${store.kind} store keeps no usage`)
      try {
        return await store.usage(tenant, request.body as UsageRequest)
      } catch (err) {
        throw storeFailure(err)
      }
    },
  )

  app.post(
    '/v1/store/accounts',
    {
      schema: {
        operationId: 'storeAccounts',
        tags,
        summary: "A page of the tenant's accounts (httpStore)",
        security,
        headers: tenantHeaders,
        body: accountsBodySchema,
        response: { 200: storeAccountsResponse, ...problems },
      },
    },
    async (request) => {
      const tenant = ctx.callerOf(request).tenant
      const list = store.accounts
      if (typeof list !== 'function') {
        throw new InvalidInputError('store', `${store.kind} store cannot list accounts`)
      }
      try {
        return await list.call(store, tenant, request.body)
      } catch (err) {
        throw storeFailure(err)
      }
    },
  )

  app.post(
    '/v1/store/codes',
    {
      // Fastify enforces the admin limit; tenant keys get the smaller one in preParsing.
      bodyLimit: ctx.options.adminCodesBodyLimit,
      preParsing: async (request, _reply, payload) => {
        if (ctx.callerOf(request).key.role === 'admin') return payload
        const limit = ctx.options.codesBodyLimit
        // Refused before a byte is read when the length is declared; else counted as it flows.
        if (Number(request.headers['content-length']) > limit) throw new BodyTooLargeError(limit)
        return capStream(payload, limit)
      },
      schema: {
        operationId: 'storeCodes',
        tags,
        summary: 'Store a batch of redeem code hashes (httpStore)',
        security,
        headers: tenantHeaders,
        body: codeBatchBodySchema,
        response: { 200: storeCodesResponse, ...problems },
      },
    },
    async (request) => {
      const tenant = ctx.callerOf(request).tenant
      try {
        return await store.createCodes(tenant, request.body)
      } catch (err) {
        throw storeFailure(err)
      }
    },
  )

  app.post(
    '/v1/store/due',
    {
      schema: {
        operationId: 'storeDueAccounts',
        tags,
        summary: 'Accounts with work due (httpStore sweep)',
        security,
        headers: tenantHeaders,
        body: dueBodySchema,
        response: { 200: dueResponse, ...problems },
      },
    },
    async (request) => {
      const tenant = ctx.callerOf(request).tenant
      const now = clientClock ? request.body.now : clock()
      try {
        return { accounts: await store.dueAccounts(tenant, now, request.body.limit) }
      } catch (err) {
        throw storeFailure(err)
      }
    },
  )

  tenantSettingsRoutes(app, ctx, '/v1/store/settings', tags, {
    read: "The tenant's stored default settings (httpStore)",
    write: "Store the tenant's default settings (httpStore)",
    operationIds: { read: 'storeGetTenantSettings', write: 'storePutTenantSettings' },
  })

  app.get(
    CHANGES_ROUTE,
    {
      schema: {
        operationId: 'storeChanges',
        tags,
        summary: 'The change feed (httpStore watch): server-sent events of changed accounts',
        description:
          'text/event-stream: `ready` once live, `changes` (JSON array of { tenant, account, seq }) ' +
          'for every committed change of the tenant (every tenant for an admin key naming none), ' +
          "`status` ({ up, reason }) when the store's own feed goes down or comes back, and a " +
          'heartbeat comment line while idle.',
        security,
        headers: tenantHeaders,
        response: problems,
      },
    },
    async (request, reply) => {
      const caller = ctx.callerOf(request)
      const named = request.headers['tollgate-tenant'] !== undefined
      const tenant = caller.key.role === 'admin' && !named ? null : caller.tenant
      await ctx.changes.ready()
      // The stream is ours from here: Fastify sends nothing more on it.
      reply.hijack()
      ctx.changes.add(tenant, reply.raw)
    },
  )

  app.post(
    '/v1/store/prune',
    {
      schema: {
        operationId: 'storePrune',
        tags,
        summary: 'Drop old idempotency records and resolved holds (httpStore sweep)',
        security,
        headers: tenantHeaders,
        body: pruneBodySchema,
        response: { 200: pruneResponse, ...problems },
      },
    },
    async (request) => {
      const tenant = ctx.callerOf(request).tenant
      // A client cannot shorten the 48 h idempotency guarantee for other clients of its tenant.
      const before = clientClock
        ? request.body.before
        : Math.min(request.body.before, clock() - MIN_RETENTION_MS)
      try {
        return { pruned: await store.prune(tenant, before) }
      } catch (err) {
        throw storeFailure(err)
      }
    },
  )
}
