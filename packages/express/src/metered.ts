/**
 * `metered()`: Express middleware over core's request-metering kit and its Node-response
 * helpers. It only maps Express onto them: `req.credits`, `next()` and `next(err)`. The rules
 * (options, reserve, settle once, the heartbeat for long responses) and the Node response
 * (settling when it ends or aborts, credit headers, problem+json) live in `@tollgate/core`.
 */

import { type InsufficientCreditsError, isTollgateError, type Meter } from '@tollgate/core'
import {
  type Admission,
  createRequestMeter,
  type MeteringOptions,
  type RequestCredits,
  refusalHeaders,
  setCreditHeaders,
  settleOnResponseEnd,
  writeRefusal,
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
 * - pay as you stream: `topUp` (@default 0: off), `onAbort: 'used'`; the handler calls
 *   `credits.use(n)` and watches `credits.signal` (docs/streaming.md)
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

  /** Acts on the admission; true when the request goes on to the next handler. */
  function answer(admission: Admission, req: Request, res: Response, next: NextFunction): boolean {
    switch (admission.type) {
      case 'admitted':
        req.credits = admission.credits
        setCreditHeaders(res, o.headers, admission.credits)
        return true
      case 'skipped':
      case 'unmetered':
        return true
      case 'refused':
        if (
          o.onInsufficient === null ||
          !isTollgateError(admission.error, 'insufficient_credits')
        ) {
          writeRefusal(res, admission, o.headers)
          return false
        }
        if (res.headersSent) return false
        res.set(refusalHeaders(admission, o.headers))
        // What onInsufficient throws or rejects with is the app's error, like a route's.
        new Promise((resolve) => {
          resolve(o.onInsufficient!(admission.error as InsufficientCreditsError, req, res))
        }).then(undefined, (err: unknown) => fail(next, err))
        return false
      case 'finished':
        // The client left while its credits were reserved: released, and nobody to answer.
        return false
    }
  }

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

  return function meteredMiddleware(req: Request, res: Response, next: NextFunction): void {
    const call = rm.start(req)
    settleOnResponseEnd(call, res, res)
    let admission: Admission | Promise<Admission>
    try {
      admission = call.admit()
    } catch (err) {
      // The app's own account/cost/skip threw: Express's error handling, as for any middleware.
      next(err)
      return
    }
    // Served at once (a lease, the memory store): no promise, no extra tick.
    if (!(admission instanceof Promise)) admitted(admission, req, res, next)
    else
      admission.then(
        (a) => admitted(a, req, res, next),
        (err: unknown) => fail(next, err),
      )
  }
}

/** `next(err)` for a rejection: a falsy reason would otherwise read as "carry on". */
function fail(next: NextFunction, err: unknown): void {
  next(err || new Error('Rejected promise'))
}
