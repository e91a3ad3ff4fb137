/**
 * `metered()`: Express middleware over core's request-metering kit. It only maps Express onto
 * the kit: the request and response, the response lifecycle ('close' after or before
 * 'finish'), and how a refusal is answered. The rules (options, reserve, settle once, the
 * heartbeat for long responses) live in `@tollgate/core`.
 */

import {
  type InsufficientCreditsError,
  isTollgateError,
  type Meter,
  PROBLEM_CONTENT_TYPE,
} from '@tollgate/core'
import {
  type Admission,
  createRequestMeter,
  type MeteringOptions,
  type RequestCredits,
  type RequestMeter,
} from '@tollgate/core/metering'
import type { NextFunction, Request, RequestHandler, Response } from 'express'

declare global {
  namespace Express {
    interface Request {
      /**
       * This request's credits, set by `metered()` once it is admitted: `account`, `cost`
       * (reserved), `hold`, `actual` (set it to charge what the work really cost) and
       * `balance`. Absent on requests that are not metered (`skip`, or served unmetered under
       * `failMode: 'open'`).
       */
      credits?: RequestCredits
    }
  }
}

/**
 * Options of {@link metered}: DESIGN section 3, with Express's request and response.
 *
 * - `account(req)` (required), `cost` (number or `(req) => number`, sync or async; @default 1)
 * - `shouldCharge(req, res)` (@default `res.statusCode < 400`), `ttlMs` (@default 60_000)
 * - `headers` (@default true: `X-Credits-Cost`, `X-Credits-Remaining`)
 * - `onInsufficient(error, req, res)`: answer a refused request yourself (@default 402 problem+json)
 * - `failMode` (@default 'closed'), `skip(req)`, `onError(error, req)`, `onAbort` (@default 'release')
 */
export type MeteredOptions = MeteringOptions<Request, Response>

/** The default `shouldCharge`: a response is charged unless it is an error. */
function chargeUnlessError(_req: Request, res: Response): boolean {
  return res.statusCode < 400
}

/**
 * Meters the requests it sees in credits of `meter`: reserves the cost before the handler runs,
 * commits `req.credits.actual` when the response finishes with a status `shouldCharge` accepts,
 * and releases the hold otherwise (an error status, a thrown error, a client that went away).
 * Works as `app.use(...)`, on a router, or per route. Mount it after `express.json()` when the
 * cost depends on the body. Options are checked here, once: a mistake throws at startup.
 *
 * @example
 * app.use(express.json())
 * app.post(
 *   '/v1/completions',
 *   metered(meter, { account: (req) => req.get('x-account') ?? '', cost: (req) => req.body.maxTokens }),
 *   async (req, res) => {
 *     const answer = await complete(req.body)
 *     if (req.credits) req.credits.actual = answer.tokens // before the response ends
 *     res.json(answer)
 *   },
 * )
 */
export function metered(meter: Meter, options: MeteredOptions): RequestHandler {
  const rm = createRequestMeter<Request, Response>(meter, options, {
    adapter: '@tollgate/express',
    shouldCharge: chargeUnlessError,
  })
  const o = rm.options
  const costHeader = o.headers?.cost ?? null
  const remainingHeader = o.headers?.remaining ?? null

  function admitted(admission: Admission, req: Request, res: Response, next: NextFunction) {
    let proceed: boolean
    try {
      proceed = answer(admission, req, res, next)
    } catch (err) {
      next(err)
      return
    }
    // Outside the try: what the rest of the chain throws is Express's to handle, not ours.
    if (proceed) next()
  }

  /** Acts on the admission; true when the request goes on to the next handler. */
  function answer(admission: Admission, req: Request, res: Response, next: NextFunction): boolean {
    switch (admission.type) {
      case 'admitted': {
        const credits = admission.credits
        req.credits = credits
        if (costHeader !== null && !res.headersSent) {
          res.setHeader(costHeader, credits.cost)
          res.setHeader(remainingHeader!, credits.balance?.available ?? 0)
        }
        return true
      }
      case 'skipped':
      case 'unmetered':
        return true
      case 'refused':
        refuse(rm, admission, req, res, next)
        return false
      case 'finished':
        // The client left while its credits were reserved; the hold is released and there is
        // nobody to answer.
        return false
    }
  }

  return function meteredMiddleware(req: Request, res: Response, next: NextFunction): void {
    const call = rm.start(req)
    // Before anything is awaited: a client that leaves during the reserve is still seen.
    // 'close' follows 'finish' on a response that was sent whole; before it, the client left.
    // finishResponse never rejects: settle failures go to onError.
    res.on('close', () => void call.finishResponse(res, res.writableFinished))
    let admission: Admission | Promise<Admission>
    try {
      admission = call.admit()
    } catch (err) {
      // The app's own account/cost/skip threw: Express's error handling, as for any middleware.
      next(err)
      return
    }
    // Served at once (a lease, the memory store): no promise, no extra tick.
    if (!(admission instanceof Promise)) {
      admitted(admission, req, res, next)
      return
    }
    admission.then(
      (a) => admitted(a, req, res, next),
      (err: unknown) => next(err || new Error('Rejected promise')),
    )
  }
}

function refuse(
  rm: RequestMeter<Request, Response>,
  refusal: Extract<Admission, { type: 'refused' }>,
  req: Request,
  res: Response,
  next: NextFunction,
): void {
  const o = rm.options
  if (res.headersSent) return
  const credits = refusal.credits
  if (credits !== null && o.headers !== null) {
    res.setHeader(o.headers.cost, credits.cost)
    res.setHeader(o.headers.remaining, credits.available)
  }
  if (o.onInsufficient !== null && isTollgateError(refusal.error, 'insufficient_credits')) {
    let answered: unknown
    try {
      answered = o.onInsufficient(refusal.error as InsufficientCreditsError, req, res)
    } catch (err) {
      next(err)
      return
    }
    // An async onInsufficient that rejects is the app's error, like an async route's.
    if (isThenable(answered)) {
      answered.then(undefined, (err: unknown) => next(err || new Error('Rejected promise')))
    }
    return
  }
  const body = JSON.stringify(refusal.problem)
  res.statusCode = refusal.problem.status
  res.setHeader('Content-Type', PROBLEM_CONTENT_TYPE)
  res.setHeader('Content-Length', Buffer.byteLength(body))
  res.end(body)
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}
