/**
 * Web-standard `Response`s of metering: problem+json refusals and the credit headers. What the
 * Node adapters get from `writeProblem`/`writeRefusal`/`setCreditHeaders` in
 * `@tollgate/core/metering`, for runtimes that answer with a `Response` (Bun, Deno, Workers,
 * Next.js route handlers, Hono). Only web APIs: no Node module, no `Buffer`.
 */
import { type InsufficientCreditsError, isTollgateError, type ProblemDetails } from '@tollgate/core'
import {
  type Awaitable,
  type CreditHeaderNames,
  creditHeaderFields,
  PROBLEM_CONTENT_TYPE,
  type Refusal,
  refusalHeaders,
} from '@tollgate/core/metering'

const encoder = new TextEncoder()

/**
 * `problem` as an `application/problem+json` Response (RFC 9457) with its status, an exact
 * `Content-Length` and `headers`.
 * @example
 * return problemResponse(problemDetails(err), { 'X-Credits-Cost': '5' })
 */
export function problemResponse(
  problem: ProblemDetails,
  headers: Record<string, string> = {},
): Response {
  const body = encoder.encode(JSON.stringify(problem))
  const all = new Headers(headers)
  all.set('Content-Type', PROBLEM_CONTENT_TYPE)
  all.set('Content-Length', String(body.byteLength))
  return new Response(body, { status: problem.status, headers: all })
}

/**
 * A refusal answered the default way (DESIGN section 3): 402, 503 or 400 problem+json with the
 * credit headers when known (both of them on a 402), and no `Retry-After`.
 * @example
 * if (admission.type === 'refused') return refusalResponse(admission, rm.options.headers)
 */
export function refusalResponse(refusal: Refusal, names: CreditHeaderNames | null): Response {
  return problemResponse(refusal.problem, refusalHeaders(refusal, names))
}

/**
 * Answers a refusal: with the app's `onInsufficient` when the account is short and the app gave
 * one (its Response gets the credit headers), else with {@link refusalResponse}. What
 * `onInsufficient` throws or rejects with propagates: it is the app's error.
 */
export async function answerRefusal(
  refusal: Refusal,
  names: CreditHeaderNames | null,
  onInsufficient: ((error: InsufficientCreditsError) => Awaitable<Response>) | null,
): Promise<Response> {
  if (onInsufficient === null || !isTollgateError(refusal.error, 'insufficient_credits')) {
    return refusalResponse(refusal, names)
  }
  const response = await onInsufficient(refusal.error as InsufficientCreditsError)
  return withHeaders(response, refusalHeaders(refusal, names))
}

/** Whether `new Response(body, response)` can copy `response`: a status the constructor takes. */
export function canCopy(response: Response): boolean {
  return response.status >= 200 && response.status <= 599
}

/**
 * `response` with `headers` set. A Response whose headers are immutable (`Response.redirect`,
 * a `fetch()` response passed through) is copied into a new one first, body untouched; one that
 * cannot be copied (a 101 upgrade, `Response.error()`) is returned as it is.
 */
export function withHeaders(response: Response, headers: Record<string, string>): Response {
  const names = Object.keys(headers)
  if (names.length === 0) return response
  try {
    for (const name of names) response.headers.set(name, headers[name]!)
    return response
  } catch {
    if (!canCopy(response)) return response
    const copy = new Response(response.body, response)
    for (const name of names) copy.headers.set(name, headers[name]!)
    return copy
  }
}

/**
 * `response` with the credit headers of a metered request: the reserved cost and what the
 * account has available after the reserve, and with `standardHeaders` the `RateLimit` fields
 * (`total`, the account's credits, is the quota of `RateLimit-Policy`, left out when null).
 * Unchanged when headers are off.
 */
export function withCreditHeaders(
  response: Response,
  names: CreditHeaderNames | null,
  cost: number,
  remaining: number,
  total: number | null = null,
): Response {
  if (names === null) return response
  return withHeaders(response, creditHeaderFields(names, cost, remaining, total))
}
