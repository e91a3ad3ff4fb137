/**
 * RFC 9457 problem details for Tollgate errors: one shape for the middleware's 402/503 and the
 * server's error responses, so clients parse every refusal the same way.
 */
import { type ErrorCode, isTollgateError, type TollgateError } from '../errors.js'

/** The media type of a problem details body. */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json'

/** An RFC 9457 body: the standard members plus the error's `code` and its own fields. */
export interface ProblemDetails {
  /** A URI naming the problem type; one per error `code`. */
  type: string
  title: string
  status: number
  detail: string
  /** The error's stable code; `internal` for an error that is not Tollgate's. */
  code: ErrorCode | 'internal'
  [extension: string]: unknown
}

const TITLES: Record<ErrorCode, string> = {
  invalid_input: 'Invalid input',
  auth: 'Authentication failed',
  insufficient_credits: 'Insufficient credits',
  code_unavailable: 'Code unavailable',
  not_found: 'Not found',
  idempotency_conflict: 'Idempotency key reused with different input',
  hold_resolved: 'Hold already resolved',
  hold_expired: 'Hold expired',
  overage: 'Commit exceeds the hold',
  rate_limited: 'Too many attempts',
  store_unavailable: 'Credits ledger unavailable',
}

/** The problem type URI of an error code. */
export function problemType(code: ErrorCode): string {
  return `https://tollgate.dev/problems/${code.replaceAll('_', '-')}`
}

/**
 * The problem details body for an error. A Tollgate error keeps its fields (`account`,
 * `required`, `available`, `field`, `reason`…); anything else becomes a 500 whose detail does
 * not leak the error's message.
 * @example res.status(402).type(PROBLEM_CONTENT_TYPE).send(problemDetails(err))
 */
export function problemDetails(error: unknown): ProblemDetails {
  if (!isTollgateError(error)) {
    return {
      type: 'about:blank',
      title: 'Internal Server Error',
      status: 500,
      detail: 'the request could not be completed',
      code: 'internal',
    }
  }
  const e = error as TollgateError
  const body: ProblemDetails = {
    type: problemType(e.code),
    title: TITLES[e.code],
    status: e.status,
    detail: e.message,
    code: e.code,
  }
  for (const [key, value] of Object.entries(e)) {
    // `name` is the class, an implementation detail; clients dispatch on `code`.
    if (key !== 'name' && value !== undefined && !(key in body)) {
      body[key] = value
    }
  }
  return body
}
