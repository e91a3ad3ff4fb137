/**
 * Webhook endpoints and their deliveries (`/v1/webhooks`), scoped to the caller's tenant like
 * every `/v1` route. The signing secret is shown once, in the answer that creates the endpoint.
 * See docs/webhooks.md.
 */
import {
  InvalidInputError,
  isTollgateError,
  NotFoundError,
  StoreUnavailableError,
} from '@tollgate/core'
import {
  newId,
  type WebhookDelivery,
  type WebhookEndpoint,
  type WebhookRegistry,
} from '@tollgate/core/store'
import type { FastifyRequest } from 'fastify'
import type { App, ServerContext } from './context.js'
import {
  createdWebhookResponse,
  createWebhookBody,
  deletedWebhookResponse,
  deliveriesQuery,
  deliveryListResponse,
  deliveryParams,
  deliveryResponse,
  problems,
  tenantHeaders,
  webhookListResponse,
  webhookParams,
  webhookResponse,
} from './schemas.js'
import { generateWebhookSecret } from './webhook-send.js'
import { checkTargetUrl } from './webhook-targets.js'

const security = [{ apiKey: [] }]
const tags = ['webhooks']
const DEFAULT_DELIVERIES_PAGE = 50

/** An endpoint as the API shows it: never the secret. */
function webhookInfo(e: WebhookEndpoint) {
  return { id: e.id, url: e.url, events: e.events, createdAt: e.createdAt }
}

/** A delivery as the API shows it: the event's figures stay in the message. */
function deliveryInfo(d: WebhookDelivery) {
  return {
    id: d.id,
    webhookId: d.webhookId,
    eventId: d.eventId,
    eventSeq: d.eventSeq,
    account: d.account,
    type: d.type,
    at: d.at,
    status: d.status,
    attempts: d.attempts,
    nextAt: d.nextAt,
    lastAttemptAt: d.lastAttemptAt,
    lastStatus: d.lastStatus,
    lastError: d.lastError,
    deliveredAt: d.deliveredAt,
  }
}

/** A registry call whose plain failure is a 503 (a custom registry may throw plain errors). */
async function registry<T>(call: Promise<T>): Promise<T> {
  try {
    return await call
  } catch (err) {
    throw isTollgateError(err)
      ? err
      : new StoreUnavailableError('webhooks unavailable', { cause: err })
  }
}

/** Registers `/v1/webhooks`. */
export function webhookRoutes(app: App, ctx: ServerContext): void {
  const { store, clock, webhooks: options } = ctx.options
  /** The registry, when this server's store can deliver webhooks (it has an outbox too). */
  const registryOf = (): WebhookRegistry => {
    if (store.webhooks === undefined || store.events === undefined) {
      throw new StoreUnavailableError(
        `webhooks need a store with an outbox and a webhook registry; the ${store.kind} store has none`,
      )
    }
    return store.webhooks
  }
  const tenantOf = (request: FastifyRequest) => ctx.callerOf(request).tenant

  app.post(
    '/v1/webhooks',
    {
      schema: {
        operationId: 'createWebhook',
        tags,
        summary: 'Register a webhook endpoint (the signing secret is shown once)',
        security,
        headers: tenantHeaders,
        body: createWebhookBody,
        response: { 201: createdWebhookResponse, ...problems },
      },
    },
    async (request, reply) => {
      const webhooks = registryOf()
      const tenant = tenantOf(request)
      const url = checkTargetUrl(request.body.url, options)
      const events = [...new Set(request.body.events ?? ['*'])]
      const existing = await registry(webhooks.listWebhooks(tenant))
      if (existing.length >= options.maxPerTenant) {
        throw new InvalidInputError(
          'url',
          `this tenant has ${existing.length} webhooks already, the most this server allows`,
        )
      }
      const now = clock()
      const endpoint: WebhookEndpoint = {
        id: newId('wh', now),
        tenant,
        url,
        events: events.includes('*') ? ['*'] : events,
        secret: generateWebhookSecret(),
        createdAt: now,
      }
      await registry(webhooks.createWebhook(endpoint))
      ctx.wakeWebhooks()
      reply.code(201)
      return { ...webhookInfo(endpoint), secret: endpoint.secret }
    },
  )

  app.get(
    '/v1/webhooks',
    {
      schema: {
        operationId: 'listWebhooks',
        tags,
        summary: "List the tenant's webhook endpoints (never their secrets)",
        security,
        headers: tenantHeaders,
        response: { 200: webhookListResponse, ...problems },
      },
    },
    async (request) => {
      const list = await registry(registryOf().listWebhooks(tenantOf(request)))
      return { webhooks: list.map(webhookInfo) }
    },
  )

  app.get(
    '/v1/webhooks/:id',
    {
      schema: {
        operationId: 'getWebhook',
        tags,
        summary: 'Read a webhook endpoint',
        security,
        headers: tenantHeaders,
        params: webhookParams,
        response: { 200: webhookResponse, ...problems },
      },
    },
    async (request) => {
      const { id } = request.params
      const endpoint = await registry(registryOf().findWebhook(tenantOf(request), id))
      if (endpoint === null) throw new NotFoundError('webhook', id)
      return webhookInfo(endpoint)
    },
  )

  app.delete(
    '/v1/webhooks/:id',
    {
      schema: {
        operationId: 'deleteWebhook',
        tags,
        summary: 'Delete a webhook endpoint and its deliveries',
        security,
        headers: tenantHeaders,
        params: webhookParams,
        response: { 200: deletedWebhookResponse, ...problems },
      },
    },
    async (request) => {
      const { id } = request.params
      const deleted = await registry(registryOf().deleteWebhook(tenantOf(request), id))
      if (!deleted) throw new NotFoundError('webhook', id)
      return { id, deleted: true as const }
    },
  )

  app.get(
    '/v1/webhooks/:id/deliveries',
    {
      schema: {
        operationId: 'listWebhookDeliveries',
        tags,
        summary: "An endpoint's deliveries, newest event first",
        security,
        headers: tenantHeaders,
        params: webhookParams,
        querystring: deliveriesQuery,
        response: { 200: deliveryListResponse, ...problems },
      },
    },
    async (request) => {
      const webhooks = registryOf()
      const tenant = tenantOf(request)
      const { id } = request.params
      if ((await registry(webhooks.findWebhook(tenant, id))) === null) {
        throw new NotFoundError('webhook', id)
      }
      const limit = request.query.limit ?? DEFAULT_DELIVERIES_PAGE
      const list = await registry(
        webhooks.listDeliveries(tenant, id, {
          limit,
          beforeSeq: request.query.before ?? null,
          status: request.query.status ?? null,
        }),
      )
      return {
        deliveries: list.map(deliveryInfo),
        nextBefore: list.length === limit ? list[list.length - 1]!.eventSeq : null,
      }
    },
  )

  app.post(
    '/v1/webhooks/:id/deliveries/:deliveryId/retry',
    {
      schema: {
        operationId: 'retryWebhookDelivery',
        tags,
        summary: 'Deliver again now (a failed or delivered delivery, or a pending one early)',
        security,
        headers: tenantHeaders,
        params: deliveryParams,
        response: { 200: deliveryResponse, ...problems },
      },
    },
    async (request) => {
      const { id, deliveryId } = request.params
      const delivery = await registry(
        registryOf().redeliver(tenantOf(request), id, deliveryId, clock()),
      )
      if (delivery === null) throw new NotFoundError('delivery', deliveryId)
      ctx.wakeWebhooks()
      return deliveryInfo(delivery)
    },
  )
}
