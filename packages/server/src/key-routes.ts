/**
 * API key management (`/v1/keys`), for admin keys only. A key is shown once, in the answer that
 * creates it; lists and revocations show ids only.
 */
import { isTollgateError, NotFoundError, StoreUnavailableError } from '@tollgate/core'
import type { FastifyReply } from 'fastify'
import { generateApiKey, hashApiKey, keyInfo } from './api-keys.js'
import type { App, ServerContext } from './context.js'
import { authProblem, sendProblem } from './problems.js'
import {
  createdKeyResponse,
  createKeyBody,
  keyListResponse,
  keyParams,
  listKeysQuery,
  problems,
  revokedKeyResponse,
} from './schemas.js'

const security = [{ apiKey: [] }]
const tags = ['keys']

/**
 * A registry call whose failure is a 503 whatever the registry: a custom one may throw plain
 * errors (the built-in SQL registry already throws {@link StoreUnavailableError}).
 */
async function registry<T>(call: Promise<T>): Promise<T> {
  try {
    return await call
  } catch (err) {
    throw isTollgateError(err)
      ? err
      : new StoreUnavailableError('API keys unavailable', { cause: err })
  }
}

/** Registers `/v1/keys`. */
export function keyRoutes(app: App, ctx: ServerContext): void {
  const { keys, clock } = ctx.options

  // A tenant key gets the same 401 as no key: it learns nothing about the admin API.
  app.addHook('onRequest', async (request, reply: FastifyReply) => {
    if (!request.routeOptions.url?.startsWith('/v1/keys')) return
    if (ctx.callerOf(request).key.role !== 'admin') return sendProblem(reply, authProblem())
  })

  app.post(
    '/v1/keys',
    {
      schema: {
        operationId: 'createKey',
        tags,
        summary: 'Create an API key (admin; the key is shown once)',
        security,
        body: createKeyBody,
        response: { 201: createdKeyResponse, ...problems },
      },
    },
    async (request, reply) => {
      const { id, key } = generateApiKey()
      const record = {
        id,
        tenant: request.body.tenant,
        role: request.body.role ?? 'tenant',
        name: request.body.name ?? '',
        hash: hashApiKey(key),
        createdAt: clock(),
        revokedAt: null,
      } as const
      await registry(keys.createKey(record))
      // Drops a negative-cache entry should someone have tried this (random) id already.
      ctx.verifier.forget(id)
      ctx.sawTenant(record.tenant)
      reply.code(201)
      return { ...keyInfo(record), key }
    },
  )

  app.get(
    '/v1/keys',
    {
      schema: {
        operationId: 'listKeys',
        tags,
        summary: 'List API keys (admin; never the keys themselves)',
        security,
        querystring: listKeysQuery,
        response: { 200: keyListResponse, ...problems },
      },
    },
    async (request) => {
      const list = await registry(keys.listKeys(request.query.tenant ?? null))
      return { keys: list.map(keyInfo) }
    },
  )

  app.delete(
    '/v1/keys/:id',
    {
      schema: {
        operationId: 'revokeKey',
        tags,
        summary: 'Revoke an API key (admin); effective at once',
        security,
        params: keyParams,
        response: { 200: revokedKeyResponse, ...problems },
      },
    },
    async (request) => {
      const at = clock()
      const id = request.params.id
      const revoked = await registry(keys.revokeKey(id, at))
      ctx.verifier.forget(id)
      if (!revoked) throw new NotFoundError('key', id)
      return { id, revokedAt: at }
    },
  )
}
