/**
 * What every adapter over Node's `http.ServerResponse` (Express, Koa, Fastify, NestJS on
 * either) does the same way: watch how the response ends to settle the request, put the credit
 * headers on it, and answer a refusal as problem+json. Written once here so those adapters are
 * a mapping of their framework's lifecycle, not a copy of this.
 */
import type { ServerResponse } from 'node:http'
import { PROBLEM_CONTENT_TYPE, type ProblemDetails } from '../protocol/problem.js'
import { type CreditHeaderNames, creditHeaderFields } from './credit-headers.js'
import type { Admission, MeteredRequest, RequestCredits } from './metering.js'

/** A refused admission, as {@link MeteredRequest.admit} reports it. */
export type Refusal = Extract<Admission, { type: 'refused' }>

/**
 * Settles `request` when `res` is done: a response sent whole (`'close'` after `'finish'`) is
 * charged or released as `shouldCharge` decides, one closed before it finished (the client
 * left, the socket failed, a body stream broke off) is an abort. Call it before the first
 * await, so a client that leaves while the credits are reserved is seen. `subject` is what
 * `shouldCharge` receives as the response (Express's `res`, Koa's `ctx`).
 * @example
 * const request = rm.start(req)
 * settleOnResponseEnd(request, res, res)
 * const admission = await request.admit()
 */
export function settleOnResponseEnd<Req, Res>(
  request: MeteredRequest<Req, Res>,
  res: ServerResponse,
  subject: Res,
): void {
  // 'close' comes once a response is done with, whichever way; `writableFinished` says which.
  // One listener function for every response, the request kept on the response itself: no
  // closure and no `once` wrapper per request ('close' is emitted once, and finishResponse
  // settles only once anyway).
  const r = res as MeteredResponse
  if (r[SETTLES] !== undefined) {
    // A second metered middleware on the same response: a listener of its own.
    res.once('close', () => void request.finishResponse(subject, res.writableFinished))
    return
  }
  r[SETTLES] = request as MeteredRequest<unknown, unknown>
  r[SUBJECT] = subject
  res.on('close', settleOnClose)
}

/** Where {@link settleOnResponseEnd} keeps what the response's 'close' settles. */
const SETTLES: unique symbol = Symbol('tollgate.settles')
const SUBJECT: unique symbol = Symbol('tollgate.subject')

type MeteredResponse = ServerResponse & {
  [SETTLES]?: MeteredRequest<unknown, unknown>
  [SUBJECT]?: unknown
}

function settleOnClose(this: MeteredResponse): void {
  // finishResponse never rejects (settle failures go to onError).
  void this[SETTLES]?.finishResponse(this[SUBJECT], this.writableFinished)
}

/**
 * Puts the credit headers of an admitted request on `res`: the reserved cost and what the
 * account has available after the reserve (and its credits, in the `RateLimit` fields when they
 * are on). Nothing when headers are off or already sent (the app answered before the
 * middleware got to it).
 */
export function setCreditHeaders(
  res: ServerResponse,
  names: CreditHeaderNames | null,
  credits: RequestCredits,
): void {
  if (names === null || res.headersSent) return
  const balance = credits.balance
  const available = balance?.available ?? 0
  if (names.policy === null) {
    // The usual pair, set directly: no object of fields per response.
    if (names.cost !== null) res.setHeader(names.cost, String(credits.cost))
    if (names.remaining !== null) res.setHeader(names.remaining, String(available))
    return
  }
  const fields = creditHeaderFields(names, credits.cost, available, balance?.total ?? null)
  for (const name in fields) res.setHeader(name, fields[name]!)
}

/**
 * The credit headers of a refusal (the cost asked for, what was available), as a plain object
 * for frameworks that carry headers on their error; empty when unknown (a 503) or headers are
 * off. A refusal does not know the account's total, so `RateLimit-Policy` is left out.
 */
export function refusalHeaders(
  refusal: Refusal,
  names: CreditHeaderNames | null,
): Record<string, string> {
  const credits = refusal.credits
  if (credits === null) return {}
  return creditHeaderFields(names, credits.cost, credits.available, null)
}

/**
 * Answers `res` with `problem` as `application/problem+json` (RFC 9457), its status and a
 * `Content-Length`, after `headers`. Headers set earlier stay unless these replace them.
 * Nothing when the response has already started: there is no way left to answer.
 */
export function writeProblem(
  res: ServerResponse,
  problem: ProblemDetails,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) return
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value)
  const body = JSON.stringify(problem)
  res.statusCode = problem.status
  res.setHeader('Content-Type', PROBLEM_CONTENT_TYPE)
  res.setHeader('Content-Length', Buffer.byteLength(body))
  res.end(body)
}

/**
 * Answers a refusal the default way (DESIGN section 3): 402, 503 or 400 problem+json with the
 * credit headers when known (both of them on a 402), and no `Retry-After`.
 * @example
 * if (admission.type === 'refused') return writeRefusal(res, admission, rm.options.headers)
 */
export function writeRefusal(
  res: ServerResponse,
  refusal: Refusal,
  names: CreditHeaderNames | null,
): void {
  writeProblem(res, refusal.problem, refusalHeaders(refusal, names))
}
