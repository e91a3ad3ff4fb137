/**
 * Every refusal as RFC 9457 problem+json with the error `code` (core's `problemDetails`), so
 * `httpStore()`, the CLI and any client parse them one way. Fastify's own errors (bad JSON,
 * oversized bodies, schema failures) are mapped here too.
 */
import { randomUUID } from 'node:crypto'
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
import type { z } from 'zod'

/** The header a request's id comes in (when the client sends a sane one) and goes back in. */
export const REQUEST_ID_HEADER = 'x-request-id'
/**
 * A client's request id the server adopts: 1–128 visible ASCII characters (no spaces or
 * controls), so it cannot forge log lines or bloat them. Anything else is replaced.
 */
const SANE_REQUEST_ID = /^[\x21-\x7e]{1,128}$/

/**
 * The request's id: the client's `X-Request-Id` when it is sane, else a random UUID. Fastify's
 * `genReqId`: it becomes `request.id`, the `requestId` of every log line of the request.
 */
export function requestIdOf(request: {
  headers: Record<string, string | string[] | undefined>
}): string {
  const sent = request.headers[REQUEST_ID_HEADER]
  return typeof sent === 'string' && SANE_REQUEST_ID.test(sent) ? sent : randomUUID()
}

/** The one answer to every failed authentication: it never says why. */
export const AUTH_DETAIL = 'invalid or missing API key'

/**
 * Sends a problem body, stamped with the request's id (`requestId`, also the `X-Request-Id`
 * header) so that a client quoting it can be matched with the server's log lines.
 */
export function sendProblem(reply: FastifyReply, problem: ProblemDetails): FastifyReply {
  const requestId = reply.request.id
  // Refusals before any hook ran (a bad URL) get the header here; the rest already have it.
  reply.header(REQUEST_ID_HEADER, requestId)
  if (problem.code === 'rate_limited' && typeof problem.retryAfterMs === 'number') {
    reply.header('retry-after', String(Math.max(1, Math.ceil(problem.retryAfterMs / 1000))))
  } else if (problem.status === 503) {
    // Saturated, slow or down: every 503 says when to come back (the store's hint, else 1 s).
    const ms = typeof problem.retryAfterMs === 'number' ? problem.retryAfterMs : 1_000
    reply.header('retry-after', String(Math.max(1, Math.ceil(ms / 1000))))
  }
  return reply
    .code(problem.status)
    .type(PROBLEM_CONTENT_TYPE)
    .send(JSON.stringify({ ...problem, requestId }))
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
  if (field === '') {
    field = error.validationContext ?? 'request'
    // A JSON array, string or number where an object belongs: say it in words.
    if (issue.keyword === 'invalid_type') message = 'must be a JSON object'
  }
  if (error.validationContext === 'headers') field = HEADER_NAMES[field] ?? field
  return problemDetails(new InvalidInputError(field, message))
}

/**
 * The 400 of an item a zod schema refused outside Fastify's validation (a batch item): the
 * field as `validationProblem` names it, e.g. `op.amount`.
 */
export function issueProblem(issue: z.core.$ZodIssue): ProblemDetails {
  const path = issue.path.map(String)
  let message = issue.message
  if (issue.code === 'unrecognized_keys' && issue.keys.length > 0) {
    path.push(issue.keys[0]!)
    message = 'is not a known field'
  }
  if (path.length === 0) {
    return problemDetails(
      new InvalidInputError(
        'item',
        issue.code === 'invalid_type' ? 'must be a JSON object' : message,
      ),
    )
  }
  return problemDetails(new InvalidInputError(path.join('.'), message))
}

/** What a 5xx answer says instead of its cause's words (a database's message never leaves). */
const UNAVAILABLE_DETAIL = 'the credits ledger is unavailable; retry later'

/** A 4xx that is not one of the domain's statuses, still problem+json with `invalid_input`. */
function inputProblem(status: number, title: string, field: string, detail: string) {
  return { ...problemDetails(new InvalidInputError(field, detail)), title, status }
}

/**
 * The 413 for a body over `limit` bytes. Thrown by the size checks in front of the parser; the
 * error handler answers it like Fastify's own `FST_ERR_CTP_BODY_TOO_LARGE`.
 */
export class BodyTooLargeError extends Error {
  readonly code = 'FST_ERR_CTP_BODY_TOO_LARGE'
  readonly statusCode = 413
  readonly limit: number
  constructor(limit: number) {
    super(`body larger than ${limit} bytes`)
    this.limit = limit
  }
}

/** The problem details for anything a handler or Fastify threw. */
export function problemOf(error: unknown, bodyLimit: number): ProblemDetails {
  if (isTollgateError(error)) {
    const problem = problemDetails(error)
    // A store failure wraps the driver's error; its message (table names, SQL state, host) is
    // logged by the error handler, never answered.
    if (problem.status >= 500 && (error as Error).cause !== undefined) {
      problem.detail = UNAVAILABLE_DETAIL
    }
    return problem
  }
  const e = error as FastifyError
  if (e.validation) return validationProblem(e)
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE': {
      const limit = error instanceof BodyTooLargeError ? error.limit : bodyLimit
      return inputProblem(413, 'Content too large', 'body', `must be at most ${limit} bytes`)
    }
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return inputProblem(415, 'Unsupported media type', 'Content-Type', 'must be application/json')
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return problemDetails(new InvalidInputError('body', 'is not valid JSON'))
    case 'FST_ERR_BAD_URL':
      return problemDetails(
        new InvalidInputError('path', 'is not a valid URL (bad percent-encoding)'),
      )
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return inputProblem(414, 'URI too long', 'path', 'has a parameter that is too long')
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return problemDetails(new InvalidInputError('request', 'could not be read'))
  }
  return problemDetails(error)
}

/** Statuses Node's HTTP parser refuses a connection with, before any route runs. */
const CLIENT_ERRORS: Record<
  string,
  [status: number, title: string, field: string, detail: string]
> = {
  HPE_HEADER_OVERFLOW: [431, 'Request header fields too large', 'headers', 'are too large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request timeout', 'request', 'did not arrive in time'],
}

/**
 * The raw HTTP answer to a request Node's parser refused (malformed request line or headers,
 * headers too large, timeout): problem+json like every other 4xx, then the connection closes.
 */
export function clientErrorResponse(code: string | undefined): string {
  const [status, title, field, detail] = CLIENT_ERRORS[code ?? ''] ?? [
    400,
    'Bad request',
    'request',
    'is not a well-formed HTTP request',
  ]
  const body = JSON.stringify(inputProblem(status, title, field, detail))
  return (
    `HTTP/1.1 ${status} ${title}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  )
}

/** The 404 for an unknown route. */
export function routeNotFound(request: FastifyRequest): ProblemDetails {
  const path = request.url.split('?')[0] ?? request.url
  return problemDetails(new NotFoundError('route', `${request.method} ${path}`))
}
