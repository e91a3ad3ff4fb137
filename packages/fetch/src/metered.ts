/**
 * `metered()` for web-standard handlers, `(request: Request) => Response`: Next.js route
 * handlers, Bun.serve, Deno.serve, Workers-style `fetch` exports, `@hono/node-server`'s
 * `serve({ fetch })`. It maps the Request and the returned Response onto core's metering kit;
 * how a Response settles (whole now, a stream at its end) is in `web-request.ts`.
 */
import { type InsufficientCreditsError, InvalidInputError, type Meter } from '@tollgate/core'
import {
  type Awaitable,
  createRequestMeter,
  type MeteringOptions,
  type RequestCredits,
} from '@tollgate/core/metering'
import { answerRefusal } from './responses.js'
import { nodeEnvOf, startWebRequest } from './web-request.js'

/**
 * Options of {@link metered}: DESIGN section 3 over the web `Request` and `Response`.
 *
 * - `account(request)` (required), `cost` (number or `(request) => number`, sync or async; @default 1)
 * - `shouldCharge(request, response)` (@default `response.status < 400`), `ttlMs` (@default 60_000)
 * - `headers` (@default true: `X-Credits-Cost`, `X-Credits-Remaining`)
 * - `onInsufficient(error, request)`: a Response for a request the account cannot pay for
 *   (@default 402 problem+json); the credit headers are added to it
 * - `failMode` (@default 'closed'), `skip(request)`, `onError(error, request)`,
 *   `onAbort` (@default 'release')
 * - pay as you stream: `topUp` (@default 0: off), `onAbort: 'used'`; the handler calls
 *   `credits.use(n)` and watches `credits.signal` (docs/streaming.md)
 */
export interface MeteredOptions extends Omit<MeteringOptions<Request, Response>, 'onInsufficient'> {
  /**
   * Answers a request the account cannot pay for, instead of the default 402 problem+json.
   * The credit headers are set on the Response it returns.
   * @example (err) => Response.json({ topUp: err.required - err.available }, { status: 402 })
   */
  onInsufficient?: (error: InsufficientCreditsError, request: Request) => Awaitable<Response>
}

/**
 * A metered handler: the request, its credits (`undefined` when it is not metered: `skip`, or
 * `failMode: 'open'` with the ledger down) and whatever else the runtime passes (Workers'
 * `env` and `ctx`, Next.js's `{ params }`). Set `credits.actual` to charge what the work
 * really cost: before returning a body given whole, before a streamed body ends.
 */
export type MeteredHandler<Args extends unknown[] = []> = (
  request: Request,
  credits: RequestCredits | undefined,
  ...args: Args
) => Awaitable<Response>

/** The default `shouldCharge`: a response is charged unless it is an error. */
function chargeUnlessError(_request: Request, response: Response): boolean {
  return response.status > 0 && response.status < 400
}

/** What a client that left while its credits were reserved is answered: nobody reads it. */
function clientGone(): Response {
  return new Response(null, { status: 499 })
}

/**
 * Wraps `handler` so every request it serves is metered in credits of `meter`: the cost is
 * reserved before the handler runs, and once the response is known `credits.actual` is
 * committed (when `shouldCharge` accepts it) or the hold is released (an error status, a
 * thrown error, a client that went away). A body given whole settles as it is returned; a
 * streamed body (`ReadableStream`, SSE) settles when it has been read to its end, its hold
 * kept alive meanwhile, and is released (or follows `onAbort`) when the client cancels it.
 * Refusals are 402/503/400 `application/problem+json`; every metered response carries
 * `X-Credits-Cost` and `X-Credits-Remaining`. Options are checked here, once.
 *
 * @example
 * // app/api/complete/route.ts (Next.js), or `export default { fetch: … }` (Bun, Deno, Workers)
 * export const POST = metered(
 *   meter,
 *   { account: (req) => req.headers.get('x-account') ?? '', cost: 100 },
 *   async (req, credits) => {
 *     const answer = await complete(await req.json())
 *     if (credits) credits.actual = answer.tokens // charge what it really cost
 *     return Response.json(answer)
 *   },
 * )
 */
export function metered<Args extends unknown[] = []>(
  meter: Meter,
  options: MeteredOptions,
  handler: MeteredHandler<Args>,
): (request: Request, ...args: Args) => Promise<Response> {
  const rm = createRequestMeter<Request, Response>(
    meter,
    options as MeteringOptions<Request, Response>,
    { adapter: '@tollgate/fetch', shouldCharge: chargeUnlessError },
  )
  if (typeof handler !== 'function') {
    throw new InvalidInputError('handler', 'must be a function (request, credits) => Response')
  }
  const names = rm.options.headers
  const onInsufficient = options.onInsufficient ?? null

  return async function meteredHandler(request: Request, ...args: Args): Promise<Response> {
    // Under `@hono/node-server` the first extra argument is Node's request and response.
    const web = startWebRequest(rm, request, request, nodeEnvOf(args[0]))
    // What the app's own account/cost/skip throw propagates, as the handler's errors do.
    const admitting = web.admit()
    // Served at once (a lease, the memory store): no extra tick.
    const admission = admitting instanceof Promise ? await admitting : admitting
    let credits: RequestCredits | undefined
    switch (admission.type) {
      case 'refused':
        return answerRefusal(
          admission,
          names,
          onInsufficient && ((error) => onInsufficient(error, request)),
        )
      case 'finished':
        return clientGone()
      case 'admitted':
        credits = admission.credits
        break
      case 'skipped':
      case 'unmetered':
        break
    }
    let response: Response
    try {
      response = await handler(request, credits, ...args)
    } catch (err) {
      web.fail()
      throw err
    }
    return web.respond(response)
  }
}
