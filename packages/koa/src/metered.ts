/**
 * `metered()`: Koa middleware over core's request-metering kit and its Node-response helpers.
 * It maps Koa onto them: the context, settlement when the Node response ends (so a streamed
 * body settles when it has been sent, not when the middleware chain returns), and refusals
 * raised with `ctx.throw` so they travel Koa's error path like any HTTP error.
 */

import {
  type InsufficientCreditsError,
  isTollgateError,
  type Meter,
  type ProblemDetails,
} from '@tollgate/core'
import {
  type Admission,
  type Awaitable,
  createRequestMeter,
  type MeteredRequest,
  type MeteringOptions,
  type Refusal,
  type RequestCredits,
  refusalHeaders,
  setCreditHeaders,
  settleOnResponseEnd,
  writeProblem,
} from '@tollgate/core/metering'
import type { Context, Next, ParameterizedContext } from 'koa'

declare module 'koa' {
  interface DefaultState {
    /**
     * This request's credits, set by `metered()` once it is admitted: `account`, `cost`
     * (reserved), `hold`, `actual` (set it to charge what the work really cost) and `balance`.
     * Absent on requests that are not metered (`skip`, or served unmetered under
     * `failMode: 'open'`).
     */
    credits?: RequestCredits
  }
}

/**
 * Options of {@link metered}: DESIGN section 3 with Koa's context in place of request and
 * response.
 *
 * - `account(ctx)` (required), `cost` (number or `(ctx) => number`, sync or async; @default 1)
 * - `shouldCharge(ctx)` (@default `ctx.status < 400`), `ttlMs` (@default 60_000)
 * - `headers` (@default true: `X-Credits-Cost`, `X-Credits-Remaining`)
 * - `onInsufficient(error, ctx)`: answer a refused request yourself (@default a thrown 402)
 * - `failMode` (@default 'closed'), `skip(ctx)`, `onError(error, ctx)`, `onAbort` (@default 'release')
 * - pay as you stream: `topUp` (@default 0: off), `onAbort: 'used'`; the handler calls
 *   `credits.use(n)` and watches `credits.signal` (docs/streaming.md)
 */
export interface MeteredOptions<Ctx = Context>
  extends Omit<MeteringOptions<Ctx, Ctx>, 'shouldCharge' | 'onInsufficient'> {
  /** Whether a finished response is charged (committed) or released. @default ctx.status < 400 */
  shouldCharge?: (ctx: Ctx) => boolean
  /**
   * Answers a request the account cannot pay for (set `ctx.status` and `ctx.body`, or throw),
   * instead of the default thrown 402. The credit headers are already set.
   */
  onInsufficient?: (error: InsufficientCreditsError, ctx: Ctx) => Awaitable<void>
}

/**
 * What `metered()` throws when it refuses a request (402 out of credits, 503 ledger down under
 * `failMode: 'closed'`, 400 invalid account or cost): an `http-errors` HttpError from
 * `ctx.throw`, so an app's error middleware handles it like any other, plus the problem details
 * it is answered with. Render `problem` as `application/problem+json` and set `headers` to give
 * the same answer `metered()` gives when the error reaches Koa unhandled.
 */
export interface MeteredError extends Error {
  status: number
  /** True below 500: the detail is meant for the client. */
  expose: boolean
  /** The credit headers (`X-Credits-Cost`, `X-Credits-Remaining`); empty when not known. */
  headers: Record<string, string>
  /** The RFC 9457 body: `{ type, title, status, detail, code, account, required, available }`. */
  problem: ProblemDetails
  /** The Tollgate error code, e.g. `insufficient_credits`. */
  code: string
}

/** Whether `err` is a refusal thrown by {@link metered}. */
export function isMeteredError(err: unknown): err is MeteredError {
  if (!(err instanceof Error)) return false
  const e = err as Partial<MeteredError>
  return (
    typeof e.status === 'number' &&
    typeof e.problem === 'object' &&
    e.problem !== null &&
    typeof e.headers === 'object'
  )
}

/** The default `shouldCharge`: a response is charged unless it is an error. */
function chargeUnlessError(ctx: ParameterizedContext): boolean {
  return ctx.status < 400
}

/**
 * Meters the requests it sees in credits of `meter`: reserves the cost before `next()`,
 * commits `ctx.state.credits.actual` once the response has been sent with a status
 * `shouldCharge` accepts (a streamed body when its stream ends), and releases the hold
 * otherwise (an error status, an error thrown downstream, a client that went away). A refusal
 * is thrown with `ctx.throw(status, detail, { headers, problem })`: see {@link MeteredError}.
 * Options are checked here, once: a mistake throws at startup. `Ctx` is the context type the
 * option functions take (a router's, say); it defaults to Koa's `Context`.
 *
 * @example
 * app.use(
 *   metered(meter, {
 *     account: (ctx) => ctx.get('x-account'),
 *     cost: (ctx) => ctx.request.body.maxTokens,
 *   }),
 * )
 * app.use(async (ctx) => {
 *   ctx.body = completionStream(ctx, (used) => {
 *     if (ctx.state.credits) ctx.state.credits.actual = used // charge what was produced
 *   })
 * })
 */
export function metered<Ctx extends ParameterizedContext = Context>(
  meter: Meter,
  options: MeteredOptions<Ctx>,
): (ctx: Ctx, next: Next) => Promise<void> {
  const rm = createRequestMeter<Ctx, Ctx>(meter, options as MeteringOptions<Ctx, Ctx>, {
    adapter: '@tollgate/koa',
    shouldCharge: chargeUnlessError,
  })
  const o = rm.options
  const names = o.headers
  const onInsufficient = options.onInsufficient ?? null

  async function refuse(ctx: Ctx, refusal: Refusal) {
    const headers = refusalHeaders(refusal, names)
    if (onInsufficient !== null && isTollgateError(refusal.error, 'insufficient_credits')) {
      ctx.set(headers)
      await onInsufficient(refusal.error as InsufficientCreditsError, ctx)
      return
    }
    const problem = refusal.problem
    // Koa's own ctx.onerror would answer text/plain; for this request only, answer the problem
    // as problem+json instead, unless the app installed an error renderer of its own.
    if (!Object.hasOwn(ctx.app.context, 'onerror')) {
      ;(ctx as unknown as { onerror: (err: unknown) => void }).onerror = renderProblem
    }
    ctx.throw(problem.status, problem.detail, {
      headers,
      expose: problem.status < 500,
      problem,
      code: problem.code,
    })
  }

  /** Acts on the admission: runs the rest of the chain, or answers the refusal. */
  function proceed(
    admission: Admission,
    call: MeteredRequest<Ctx, Ctx>,
    ctx: Ctx,
    next: Next,
  ): Promise<void> {
    switch (admission.type) {
      case 'admitted': {
        const credits = admission.credits
        ;(ctx.state as { credits?: RequestCredits }).credits = credits
        // Straight to Node: ctx.set would stringify and check again, on every request.
        setCreditHeaders(ctx.res, names, credits)
        // koa-compose's next() never throws; it rejects.
        return next().then(undefined, (err: unknown) => {
          // Thrown downstream: not charged, whatever the app's error handling answers.
          void call.finish('failure')
          throw err
        })
      }
      case 'skipped':
      case 'unmetered':
        return next()
      case 'refused':
        return refuse(ctx, admission)
      case 'finished':
        // The client left while its credits were reserved; the hold is released and there is
        // nobody to answer.
        return DONE
    }
  }

  // Not an async function: a request admitted at once goes on to next() without a suspended
  // frame or an await of its own.
  return function meteredMiddleware(ctx: Ctx, next: Next): Promise<void> {
    const call = rm.start(ctx)
    settleOnResponseEnd(call, ctx.res, ctx)
    let admitting: Admission | Promise<Admission>
    try {
      admitting = call.admit()
    } catch (err) {
      // What the app's own account/cost/skip throw propagates: Koa's error handling.
      return Promise.reject(err)
    }
    // Served at once (a lease, the memory store): no extra tick.
    if (admitting instanceof Promise) return admitting.then((a) => proceed(a, call, ctx, next))
    return proceed(admitting, call, ctx, next)
  }
}

/** What a request that is answered already resolves to. */
const DONE: Promise<void> = Promise.resolve()

/**
 * Installed as `ctx.onerror` on a refused request: Koa's default handler forces text/plain, so
 * a refusal that reaches it unhandled is answered here as problem+json, the way Koa answers
 * any error otherwise (emit 'error', drop the headers set so far, keep the error's own).
 * Anything else goes to the handler this one shadows.
 */
function renderProblem(this: Context, err: unknown): void {
  const shadowed = Object.getPrototypeOf(this).onerror as (this: Context, err: unknown) => void
  if (err == null || !isMeteredError(err) || this.headerSent || !this.writable) {
    shadowed.call(this, err)
    return
  }
  this.app.emit('error', err, this)
  const res = this.res
  for (const name of res.getHeaderNames()) res.removeHeader(name)
  writeProblem(res, err.problem, err.headers)
}
