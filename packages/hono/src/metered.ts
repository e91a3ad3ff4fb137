/**
 * `metered()`: Hono middleware over core's metering kit and `@tollgate/fetch`'s web-standard
 * settlement. It maps Hono onto them: the context for the option functions, `c.set('credits')`,
 * `c.error` for a handler that threw, and `c.res` for the answer, whose body settles when it has
 * been sent (a stream from `c.body(stream)`, `stream()` or `streamSSE()` when it ends).
 */

import type { InsufficientCreditsError, Meter } from '@tollgate/core'
import {
  type Awaitable,
  createRequestMeter,
  type MeteringOptions,
  type RequestCredits,
} from '@tollgate/core/metering'
import { answerRefusal, type BodyGiven, nodeEnvOf, startWebRequest } from '@tollgate/fetch'
import type { Context, Env, MiddlewareHandler } from 'hono'

/**
 * The variables `metered()` sets: `c.get('credits')`, this request's credits (`account`,
 * `cost` reserved, `hold`, `actual`: set it to charge what the work really cost, `balance`,
 * `settlement`). `undefined` on requests that are not metered (`skip`, or `failMode: 'open'`
 * with the ledger down, or a route without `metered()`).
 * @example
 * const app = new Hono<{ Variables: CreditsVariables & { user: User } }>()
 */
export type CreditsVariables = {
  credits: RequestCredits | undefined
}

/**
 * The Hono environment `metered()` adds to: `new Hono<TollgateEnv>()`, or intersect it with
 * your own.
 * @example
 * const app = new Hono<TollgateEnv>()
 * app.get('/v1/answer', (c) => c.text(String(c.get('credits')?.cost)))
 */
export type TollgateEnv = {
  Variables: CreditsVariables
}

declare module 'hono' {
  // Typed on every context, as Hono's own middleware (requestId, jwt) type theirs.
  interface ContextVariableMap extends CreditsVariables {}
}

/**
 * Options of {@link metered}: DESIGN section 3 over Hono's context `c` and the Response.
 *
 * - `account(c)` (required), `cost` (number or `(c) => number`, sync or async; @default 1)
 * - `shouldCharge(c, response)` (@default `response.status < 400`), `ttlMs` (@default 60_000)
 * - `headers` (@default true: `X-Credits-Cost`, `X-Credits-Remaining`)
 * - `onInsufficient(error, c)`: a Response for a request the account cannot pay for
 *   (@default 402 problem+json); the credit headers are added to it
 * - `failMode` (@default 'closed'), `skip(c)`, `onError(error, c)`, `onAbort` (@default 'release')
 * - pay as you stream: `topUp` (@default 0: off), `onAbort: 'used'`; the handler calls
 *   `credits.use(n)` and watches `credits.signal` (docs/streaming.md)
 *
 * `E` is your app's environment, so `c.get`, `c.env` and `c.req.valid` are typed in them.
 */
export interface MeteredOptions<E extends Env = Env>
  extends Omit<MeteringOptions<Context<E>, Response>, 'onInsufficient'> {
  /**
   * Answers a request the account cannot pay for, instead of the default 402 problem+json.
   * The credit headers are set on the Response it returns; the route does not run.
   * @example (err, c) => c.json({ topUp: err.required - err.available }, 402)
   */
  onInsufficient?: (error: InsufficientCreditsError, c: Context<E>) => Awaitable<Response>
}

/** The default `shouldCharge`: a response is charged unless it is an error. */
function chargeUnlessError(_c: Context, response: Response): boolean {
  return response.status > 0 && response.status < 400
}

/**
 * How the body of each Response made by a metered request's `c.body()`, `c.text()`…
 * was given. Knowing it, a body given whole settles without being read and a stream is sent
 * without being looked at first; a Response made any other way is read to find out.
 */
const GIVEN: unique symbol = Symbol('tollgate.bodyGiven')
/** A Response noted by {@link note}: a symbol-keyed property, not a WeakMap (whose entries the
 * garbage collector must trace as ephemerons, one per request). */
type Noted = Response & { [GIVEN]?: BodyGiven }

/** What `c.body(data)` and `c.newResponse(data)` were given, when it says. */
function givenAs(data: unknown): BodyGiven | null {
  if (typeof (data as ReadableStream | null)?.getReader === 'function') return 'stream'
  if (data == null || typeof data === 'string') return 'whole'
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return 'whole'
  return null
}

/** `made` (a Response, or a promise of one from `c.html()`), noted as given `how`. */
function note(made: unknown, how: BodyGiven | null): unknown {
  if (how === null || typeof made !== 'object' || made === null) return made
  if (typeof (made as { then?: unknown }).then === 'function') {
    return (made as PromiseLike<unknown>).then((res) => note(res, how))
  }
  ;(made as Noted)[GIVEN] = how
  return made
}

type Maker = (...args: unknown[]) => unknown

/** Wraps this context's response helpers so the Response they make says how it was given. */
function watchResponses(c: Context): void {
  const ctx = c as unknown as Record<'body' | 'newResponse' | 'text' | 'json' | 'html', Maker>
  for (const name of ['body', 'newResponse'] as const) {
    const make = ctx[name]
    ctx[name] = (data, ...rest) => note(make(data, ...rest), givenAs(data))
  }
  // Strings, JSON, HTML: whole.
  for (const name of ['text', 'json', 'html'] as const) {
    const make = ctx[name]
    ctx[name] = (...args) => note(make(...args), 'whole')
  }
}

/**
 * Meters the requests it sees in credits of `meter`: reserves the cost before `next()`,
 * commits `c.get('credits').actual` once the response has been sent with a status
 * `shouldCharge` accepts (a streamed body when its stream ends, its hold kept alive meanwhile),
 * and releases the hold otherwise (an error status, a handler that threw, a client that went
 * away or cancelled the stream). Refusals are 402/503/400 `application/problem+json`; every
 * metered response carries `X-Credits-Cost` and `X-Credits-Remaining`. Works as `app.use()`,
 * on a sub-app or per route. Options are checked here, once: a mistake throws at startup.
 *
 * @example
 * const app = new Hono<TollgateEnv>()
 * app.post(
 *   '/v1/completions',
 *   metered(meter, { account: (c) => c.req.header('x-account') ?? '', cost: 100 }),
 *   (c) =>
 *     streamSSE(c, async (sse) => {
 *       let tokens = 0
 *       for await (const token of model.stream()) {
 *         await sse.writeSSE({ data: token })
 *         c.get('credits')!.actual = ++tokens // charged when the stream ends
 *       }
 *     }),
 * )
 */
export function metered<E extends Env = Env>(
  meter: Meter,
  options: MeteredOptions<E>,
): MiddlewareHandler<E & TollgateEnv> {
  const rm = createRequestMeter<Context<E>, Response>(
    meter,
    options as MeteringOptions<Context<E>, Response>,
    { adapter: '@tollgate/hono', shouldCharge: chargeUnlessError },
  )
  const names = rm.options.headers
  const onInsufficient = options.onInsufficient ?? null

  return async function tollgate(c, next) {
    const ctx = c as unknown as Context<E>
    // On Node (`@hono/node-server`), `c.env` is Node's request and response.
    const web = startWebRequest(rm, ctx, c.req.raw, nodeEnvOf(c.env))
    // What the app's own account/cost/skip throw propagates: Hono's onError.
    const admitting = web.admit()
    // Served at once (a lease, the memory store): no extra tick.
    const admission = admitting instanceof Promise ? await admitting : admitting
    switch (admission.type) {
      case 'refused':
        return answerRefusal(
          admission,
          names,
          onInsufficient && ((error) => onInsufficient(error, ctx)),
        )
      case 'finished':
        // The client left while its credits were reserved: released, and nobody to answer.
        return new Response(null, { status: 499 })
      case 'admitted':
        c.set('credits', admission.credits)
        // Only a request holding credits waits for its body: knowing how it was given spares
        // reading it.
        if (admission.credits.hold !== null) watchResponses(c)
        break
      case 'skipped':
      case 'unmetered':
        break
    }
    try {
      await next()
    } catch (err) {
      // Only what Hono does not catch itself (a thrown non-Error) arrives here.
      web.fail()
      throw err
    }
    // Hono turns a handler's error into c.res through onError and records it in c.error:
    // not charged, whatever onError answered.
    if (c.error !== undefined) web.fail()
    const res = c.res
    const responding = web.respond(res, (res as Noted)[GIVEN])
    // A body given whole is answered at once: no extra tick.
    const answered = responding instanceof Promise ? await responding : responding
    if (answered !== res) {
      // Cleared first: set over a Response, Hono would copy the new one again (body as a
      // stream, headers merged), and `answered` already is `res` with its headers.
      c.res = undefined
      c.res = answered
    }
  }
}
