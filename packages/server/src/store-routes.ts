/**
 * The store protocol (`/v1/store/*`), what `httpStore()` calls: a meter on another machine sends
 * the operation it built, and it runs here on this server's store, for the tenant of the key.
 * Domain errors travel inside the outcome (200); only a transport failure (auth, a malformed
 * body, the store down or past the request's deadline) is an HTTP error.
 */
import {
  codeBatchBodySchema,
  dueBodySchema,
  type EngineConfig,
  errorOutcome,
  executeBodySchema,
  HOLD_OPERATIONS,
  InvalidInputError,
  isTollgateError,
  type LedgerEntryType,
  ledgerBodySchema,
  newId,
  type Operation,
  type Outcome,
  outcomeToWire,
  pruneBodySchema,
  StoreUnavailableError,
  type TollgateError,
} from '@tollgate/core'
import type { App, ServerContext } from './context.js'
import { isFailedRedemption } from './redeem-limiter.js'
import {
  dueResponse,
  problems,
  pruneResponse,
  storeCodesResponse,
  storeLedgerResponse,
  tenantHeaders,
  wireOutcomeResponse,
} from './schemas.js'

const security = [{ apiKey: [] }]
const tags = ['store protocol']
/** What the store protocol may prune: nothing younger than the 48 h idempotency guarantee. */
const MIN_RETENTION_MS = 2 * 86_400_000

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

  app.post(
    '/v1/store/execute',
    {
      schema: {
        tags,
        summary: 'Run one operation (httpStore)',
        security,
        headers: tenantHeaders,
        body: executeBodySchema,
        response: { 200: wireOutcomeResponse, ...problems },
      },
    },
    async (request) => {
      const body = request.body
      const op = body.op as Operation
      const tenant = ctx.callerOf(request).tenant
      const holdOp = HOLD_OPERATIONS.has(op.type)
      if (holdOp && body.account !== null) {
        throw new InvalidInputError('account', `must be null for ${op.type}`)
      }
      if (!holdOp && body.account === null) {
        throw new InvalidInputError('account', `is required for ${op.type}`)
      }
      const redeem = op.type === 'redeem'
      if (redeem) {
        try {
          ctx.limiter.check(tenant, clock())
        } catch (err) {
          return outcomeToWire(errorOutcome(err as TollgateError))
        }
      }
      let outcome: Outcome
      try {
        outcome = await store.execute({
          tenant,
          account: body.account ?? undefined,
          op,
          now: clientClock ? body.now : clock(),
          config: capped(body.config),
          newId,
          timeoutMs: ctx.timeoutOf(request),
        })
      } catch (err) {
        throw storeFailure(err)
      }
      if (redeem && outcome.error && isFailedRedemption(outcome.error)) {
        ctx.limiter.fail(tenant, clock())
      }
      return outcomeToWire(outcome)
    },
  )

  app.post(
    '/v1/store/ledger',
    {
      schema: {
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
    '/v1/store/codes',
    {
      bodyLimit: ctx.options.codesBodyLimit,
      schema: {
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

  app.post(
    '/v1/store/prune',
    {
      schema: {
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
