/**
 * Every refusal as RFC 9457 problem+json with the error `code` (core's `problemDetails`), so
 * `httpStore()`, the CLI and any client parse them one way. Fastify's own errors (bad JSON,
 * oversized bodies, schema failures) are mapped here too.
 */
import {
  AuthError,
  InvalidInputError,
  isTollgateError,
  NotFoundError,
  PROBLEM_CONTENT_TYPE,
  type ProblemDetails,
  problemDetails,
} from '@tollgate/core'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod'

/** The one answer to every failed authentication: it never says why. */
export const AUTH_DETAIL = 'invalid or missing API key'

/** Sends a problem body. */
export function sendProblem(reply: FastifyReply, problem: ProblemDetails): FastifyReply {
  if (problem.code === 'rate_limited' && typeof problem.retryAfterMs === 'number') {
    reply.header('retry-after', String(Math.max(1, Math.ceil(problem.retryAfterMs / 1000))))
  } else if (problem.status === 503) {
    // Saturated, slow or down: every 503 says when to come back (the store's hint, else 1 s).
    const ms = typeof problem.retryAfterMs === 'number' ? problem.retryAfterMs : 1_000
    reply.header('retry-after', String(Math.max(1, Math.ceil(ms / 1000))))
  }
  return reply.code(problem.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem))
}

/** The 401 every authentication failure gets, byte for byte. */
export function authProblem(): ProblemDetails {
  return problemDetails(new AuthError(AUTH_DETAIL))
}

const HEADER_NAMES: Record<string, string> = {
  'idempotency-key': 'Idempotency-Key',
  'tollgate-tenant': 'Tollgate-Tenant',
  'tollgate-deadline-ms': 'Tollgate-Deadline-Ms',
}

/** The field a zod issue names: its path, or the unknown key itself. */
function validationProblem(error: FastifyError): ProblemDetails {
  if (!hasZodFastifySchemaValidationErrors(error)) {
    return problemDetails(new InvalidInputError('request', error.message))
  }
  const issue = error.validation[0]!
  const path = issue.instancePath.split('/').filter((p) => p !== '')
  const keys = issue.params.keys
  let message = issue.message ?? 'is invalid'
  if (issue.keyword === 'unrecognized_keys' && Array.isArray(keys) && keys.length > 0) {
    path.push(String(keys[0]))
    message = 'is not a known field'
  }
  let field: string = path.join('.')
  if (field === '') field = error.validationContext ?? 'request'
  if (error.validationContext === 'headers') field = HEADER_NAMES[field] ?? field
  return problemDetails(new InvalidInputError(field, message))
}

/** The problem details for anything a handler or Fastify threw. */
export function problemOf(error: unknown, bodyLimit: number): ProblemDetails {
  if (isTollgateError(error)) return problemDetails(error)
  const e = error as FastifyError
  if (e.validation) return validationProblem(e)
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return {
        ...problemDetails(new InvalidInputError('body', `must be at most ${bodyLimit} bytes`)),
        title: 'Content too large',
        status: 413,
      }
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return {
        ...problemDetails(new InvalidInputError('Content-Type', 'must be application/json')),
        title: 'Unsupported media type',
        status: 415,
      }
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return problemDetails(new InvalidInputError('body', 'is not valid JSON'))
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return problemDetails(new InvalidInputError('request', 'could not be read'))
  }
  return problemDetails(error)
}

/** The 404 for an unknown route. */
export function routeNotFound(request: FastifyRequest): ProblemDetails {
  const path = request.url.split('?')[0] ?? request.url
  return problemDetails(new NotFoundError('route', `${request.method} ${path}`))
}
