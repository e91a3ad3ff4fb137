/**
 * The REST API (`/v1/accounts`, `/v1/holds`, `/v1/codes`): each route validates with its zod
 * schema, then calls the tenant's {@link Meter}, which applies the same checks and rules as in
 * process. The `Idempotency-Key` header becomes the operation's idempotency key; a replay is
 * marked `Idempotent-Replayed: true`. Every operation runs within the request's deadline
 * (`Tollgate-Deadline-Ms`, capped by the server's `timeoutMs`): past it, 503 and not applied.
 */
import { isTollgateError, type UsageOptions } from '@tollgate/core'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { App, ServerContext } from './context.js'
import { isFailedRedemption } from './redeem-limiter.js'
import {
  accountParams,
  accountSettingsResponse,
  accountsQuery,
  accountsResponse,
  adjustBody,
  balanceSchema,
  codesBody,
  codesResponse,
  commitBody,
  commitResponse,
  cycleBody,
  cycleResponse,
  debitBody,
  debitResponse,
  extendBody,
  grantBody,
  grantResponse,
  holdBody,
  holdParams,
  holdResponse,
  increaseBody,
  increaseResponse,
  ledgerQuery,
  ledgerResponse,
  mutationHeaders,
  problems,
  redeemBody,
  redeemResponse,
  releaseBody,
  releaseResponse,
  settingsBody,
  settingsResponse,
  tenantHeaders,
  tenantSettingsResponse,
  usageQuery,
  usageResponse,
} from './schemas.js'

const security = [{ apiKey: [] }]

function idempotencyKey(request: FastifyRequest): string | undefined {
  const key = request.headers['idempotency-key']
  return typeof key === 'string' ? key : undefined
}

/** Sends a mutation's result, marking replays. */
function answer<T extends { replayed: boolean }>(
  reply: FastifyReply,
  status: number,
  result: T,
): T {
  if (result.replayed) reply.header('idempotent-replayed', 'true')
  reply.code(status)
  return result
}

/** Registers the REST routes. */
export function restRoutes(app: App, ctx: ServerContext): void {
  const meter = (request: FastifyRequest) => ctx.meterFor(ctx.callerOf(request).tenant)
  const tags = ['credits']

  app.post(
    '/v1/accounts/:account/grants',
    {
      schema: {
        operationId: 'grantCredits',
        tags,
        summary: 'Grant credits (a new bucket)',
        security,
        params: accountParams,
        headers: mutationHeaders,
        body: grantBody,
        response: { 201: grantResponse, ...problems },
      },
    },
    async (request, reply) => {
      const { amount, ...options } = request.body
      const grant = await meter(request).grant(request.params.account, amount, {
        ...options,
        idempotencyKey: idempotencyKey(request),
        timeoutMs: ctx.timeoutOf(request),
      })
      return answer(reply, 201, grant)
    },
  )

  app.post(
    '/v1/accounts/:account/debits',
    {
      schema: {
        operationId: 'debitCredits',
        tags,
        summary: 'Spend credits now',
        security,
        params: accountParams,
        headers: mutationHeaders,
        body: debitBody,
        response: { 200: debitResponse, ...problems },
      },
    },
    async (request, reply) => {
      const { amount, metadata } = request.body
      const result = await meter(request).debit(request.params.account, amount, {
        metadata,
        idempotencyKey: idempotencyKey(request),
        timeoutMs: ctx.timeoutOf(request),
      })
      return answer(reply, 200, result)
    },
  )

  app.post(
    '/v1/accounts/:account/adjustments',
    {
      schema: {
        operationId: 'adjustCredits',
        tags,
        summary: "An operator's correction (adjust entry)",
        security,
        params: accountParams,
        headers: mutationHeaders,
        body: adjustBody,
        response: { 200: debitResponse, ...problems },
      },
    },
    async (request, reply) => {
      const { delta, ...options } = request.body
      const result = await meter(request).adjust(request.params.account, delta, {
        ...options,
        idempotencyKey: idempotencyKey(request),
        timeoutMs: ctx.timeoutOf(request),
      })
      return answer(reply, 200, result)
    },
  )

  app.post(
    '/v1/accounts/:account/holds',
    {
      schema: {
        operationId: 'createHold',
        tags,
        summary: 'Reserve credits (a hold)',
        security,
        params: accountParams,
        headers: mutationHeaders,
        body: holdBody,
        response: { 201: holdResponse, ...problems },
      },
    },
    async (request, reply) => {
      const { amount, ...options } = request.body
      const hold = await meter(request).reserve(request.params.account, amount, {
        ...options,
        idempotencyKey: idempotencyKey(request),
        timeoutMs: ctx.timeoutOf(request),
      })
      return answer(reply, 201, { ...hold.toJSON(), balance: hold.balance })
    },
  )

  app.post(
    '/v1/holds/:id/commit',
    {
      schema: {
        operationId: 'commitHold',
        tags,
        summary: 'Commit a hold: spend what was used, free the rest',
        security,
        params: holdParams,
        headers: mutationHeaders,
        body: commitBody,
        response: { 200: commitResponse, ...problems },
      },
    },
    async (request, reply) => {
      const { actual, ...options } = request.body
      const result = await meter(request).commit(request.params.id, actual, {
        ...options,
        idempotencyKey: idempotencyKey(request),
        timeoutMs: ctx.timeoutOf(request),
      })
      return answer(reply, 200, result)
    },
  )

  app.post(
    '/v1/holds/:id/release',
    {
      schema: {
        operationId: 'releaseHold',
        tags,
        summary: 'Release a hold',
        security,
        params: holdParams,
        headers: mutationHeaders,
        body: releaseBody,
        response: { 200: releaseResponse, ...problems },
      },
    },
    async (request, reply) => {
      const result = await meter(request).release(request.params.id, {
        ...request.body,
        idempotencyKey: idempotencyKey(request),
        timeoutMs: ctx.timeoutOf(request),
      })
      return answer(reply, 200, result)
    },
  )

  app.post(
    '/v1/holds/:id/extend',
    {
      schema: {
        operationId: 'extendHold',
        tags,
        summary: "Move a hold's expiry to now + ttlMs",
        security,
        params: holdParams,
        headers: mutationHeaders,
        body: extendBody,
        response: { 200: holdResponse, ...problems },
      },
    },
    async (request, reply) => {
      const result = await meter(request).extend(request.params.id, request.body.ttlMs, {
        idempotencyKey: idempotencyKey(request),
        timeoutMs: ctx.timeoutOf(request),
      })
      return answer(reply, 200, result)
    },
  )

  app.post(
    '/v1/holds/:id/increase',
    {
      schema: {
        operationId: 'increaseHold',
        tags,
        summary: 'Grow a pending hold by amount credits, in burn order',
        security,
        params: holdParams,
        headers: mutationHeaders,
        body: increaseBody,
        response: { 200: increaseResponse, ...problems },
      },
    },
    async (request, reply) => {
      const { amount, partial } = request.body
      const result = await meter(request).increase(request.params.id, amount, {
        ...(partial === undefined ? {} : { partial }),
        idempotencyKey: idempotencyKey(request),
        timeoutMs: ctx.timeoutOf(request),
      })
      return answer(reply, 200, result)
    },
  )

  app.get(
    '/v1/accounts/:account/balance',
    {
      schema: {
        operationId: 'getBalance',
        tags,
        summary: "An account's balance (always fresh)",
        security,
        params: accountParams,
        headers: tenantHeaders,
        response: { 200: balanceSchema, ...problems },
      },
    },
    async (request) =>
      meter(request).balance(request.params.account, {
        fresh: true,
        timeoutMs: ctx.timeoutOf(request),
      }),
  )

  app.get(
    '/v1/accounts',
    {
      schema: {
        operationId: 'listAccounts',
        tags,
        summary: "A page of the tenant's accounts (operator view)",
        description:
          'Filters combine with AND. Pages follow `nextCursor` (keyset by sort value, then ' +
          'account): walking by `account` returns every account exactly once even under ' +
          "concurrent writes. Figures are as of each account's last ledger change.",
        security,
        headers: tenantHeaders,
        querystring: accountsQuery,
        response: { 200: accountsResponse, ...problems },
      },
    },
    async (request) => meter(request).accounts(request.query),
  )

  app.get(
    '/v1/accounts/:account/ledger',
    {
      schema: {
        operationId: 'listLedgerEntries',
        tags,
        summary: "A page of an account's ledger, newest first",
        security,
        params: accountParams,
        headers: tenantHeaders,
        querystring: ledgerQuery,
        response: { 200: ledgerResponse, ...problems },
      },
    },
    async (request) => {
      const { types, ...query } = request.query
      return meter(request).ledger(request.params.account, {
        ...query,
        ...(types === undefined ? {} : { types: types as never }),
      })
    },
  )

  app.get(
    '/v1/accounts/:account/usage',
    {
      schema: {
        operationId: 'getAccountUsage',
        tags,
        summary: "An account's credits granted, spent, released and expired per period",
        description: 'Every UTC period of the window, zeros included (docs/usage.md).',
        security,
        params: accountParams,
        headers: tenantHeaders,
        querystring: usageQuery,
        response: { 200: usageResponse, ...problems },
      },
    },
    async (request) => meter(request).usage(request.params.account, request.query as UsageOptions),
  )

  app.get(
    '/v1/usage',
    {
      schema: {
        operationId: 'getTenantUsage',
        tags,
        summary: "The tenant's credits granted, spent, released and expired per period",
        description: 'Every account of the tenant together (docs/usage.md).',
        security,
        headers: tenantHeaders,
        querystring: usageQuery,
        response: { 200: usageResponse, ...problems },
      },
    },
    async (request) => meter(request).usage(null, request.query as UsageOptions),
  )

  app.put(
    '/v1/accounts/:account/settings',
    {
      schema: {
        operationId: 'putAccountSettings',
        tags,
        summary: 'Per-account settings (null returns to the default)',
        security,
        params: accountParams,
        headers: mutationHeaders,
        body: settingsBody,
        response: { 200: settingsResponse, ...problems },
      },
    },
    async (request, reply) => {
      const result = await meter(request).configure(request.params.account, {
        ...request.body,
        ...withKey(request),
        timeoutMs: ctx.timeoutOf(request),
      })
      // The meter's type leaves `replayed` out; the result carries it like every mutation's.
      return answer(reply, 200, result as typeof result & { replayed: boolean })
    },
  )

  app.get(
    '/v1/accounts/:account/settings',
    {
      schema: {
        operationId: 'getAccountSettings',
        tags,
        summary: "An account's settings: its own and the ones in effect",
        security,
        params: accountParams,
        headers: tenantHeaders,
        response: { 200: accountSettingsResponse, ...problems },
      },
    },
    async (request) =>
      meter(request).settings(request.params.account, { timeoutMs: ctx.timeoutOf(request) }),
  )

  tenantSettingsRoutes(app, ctx, '/v1/settings', tags, {
    read: "The tenant's stored default settings",
    write: "Store the tenant's default settings (null clears one, a field left out is kept)",
    description:
      'Every meter, the REST API and the CLI apply them to accounts without settings of ' +
      "their own; a meter's own option applies only where the tenant stored none.",
    operationIds: { read: 'getTenantSettings', write: 'putTenantSettings' },
  })

  app.put(
    '/v1/accounts/:account/cycle',
    {
      schema: {
        operationId: 'startCycle',
        tags,
        summary: 'Start (or replace) a recurring grant',
        security,
        params: accountParams,
        headers: mutationHeaders,
        body: cycleBody,
        response: { 200: cycleResponse, ...problems },
      },
    },
    async (request, reply) => {
      const result = await meter(request).startCycle(request.params.account, {
        ...request.body,
        idempotencyKey: idempotencyKey(request),
        timeoutMs: ctx.timeoutOf(request),
      })
      return answer(reply, 200, result)
    },
  )

  app.delete(
    '/v1/accounts/:account/cycle',
    {
      schema: {
        operationId: 'stopCycle',
        tags,
        summary: 'Stop the recurring grant',
        security,
        params: accountParams,
        headers: mutationHeaders,
        response: { 200: cycleResponse, ...problems },
      },
    },
    async (request, reply) => {
      const result = await meter(request).stopCycle(request.params.account, {
        ...withKey(request),
        timeoutMs: ctx.timeoutOf(request),
      })
      return answer(reply, 200, result)
    },
  )

  app.post(
    '/v1/codes',
    {
      schema: {
        operationId: 'createCodes',
        tags: ['codes'],
        summary: 'Create redeem codes (plaintext shown once)',
        security,
        headers: mutationHeaders,
        body: codesBody,
        response: { 201: codesResponse, ...problems },
      },
    },
    async (request, reply) => {
      const result = await meter(request).createCodes({
        ...request.body,
        ...withKey(request),
      })
      return answer(reply, 201, result)
    },
  )

  app.post(
    '/v1/accounts/:account/redemptions',
    {
      schema: {
        operationId: 'redeemCode',
        tags: ['codes'],
        summary: 'Redeem a code for the account',
        security,
        params: accountParams,
        headers: mutationHeaders,
        body: redeemBody,
        response: { 201: redeemResponse, ...problems },
      },
    },
    async (request, reply) => {
      const tenant = ctx.callerOf(request).tenant
      const { account } = request.params
      // Counted before the await, so concurrent guesses cannot overshoot the limit.
      const attempt = ctx.limiter.begin(tenant, account)
      let failed = false
      try {
        const result = await ctx.meterFor(tenant).redeem(account, request.body.code, {
          ...withKey(request),
          timeoutMs: ctx.timeoutOf(request),
        })
        return answer(reply, 201, result)
      } catch (err) {
        failed = isTollgateError(err) && isFailedRedemption(err)
        throw err
      } finally {
        // Waits for the store to note a failure, so the next guess meets the shared count.
        await attempt.settle(failed)
      }
    },
  )
}

/** `{ idempotencyKey }` when the header was sent, else nothing (strict option schemas). */
function withKey(request: FastifyRequest): { idempotencyKey?: string } {
  const key = idempotencyKey(request)
  return key === undefined ? {} : { idempotencyKey: key }
}

/**
 * GET and PUT of the caller's tenant's stored default settings at `path`: the REST API
 * (`/v1/settings`) and the store protocol (`/v1/store/settings`, for `httpStore`) serve the same
 * pair, so one place keeps their schemas and handlers alike.
 */
export function tenantSettingsRoutes(
  app: App,
  ctx: ServerContext,
  path: string,
  tags: string[],
  text: {
    read: string
    write: string
    description?: string
    /** The OpenAPI `operationId`s of the GET and the PUT. */
    operationIds: { read: string; write: string }
  },
): void {
  const common = { tags, security, headers: tenantHeaders }
  const response = { 200: tenantSettingsResponse, ...problems }
  app.get(
    path,
    { schema: { ...common, operationId: text.operationIds.read, summary: text.read, response } },
    async (request) => ctx.tenantSettings(ctx.callerOf(request).tenant),
  )
  app.put(
    path,
    {
      schema: {
        ...common,
        operationId: text.operationIds.write,
        summary: text.write,
        ...(text.description === undefined ? {} : { description: text.description }),
        body: settingsBody,
        response,
      },
    },
    async (request) => ctx.tenantSettings(ctx.callerOf(request).tenant, request.body),
  )
}
