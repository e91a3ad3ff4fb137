/**
 * `tollgate`: a Fastify plugin over core's request-metering kit and its Node-response helpers.
 * It only maps Fastify onto them: an `onRoute` hook gives every route of the plugin's context a
 * `preHandler` that reserves, `request.credits`, `reply` for the credit headers and refusals,
 * and `reply.raw` for settling once the response is done. The rules (options, reserve, settle
 * once, the heartbeat for long responses) live in `@tollgate/core`.
 */

import { type InsufficientCreditsError, isTollgateError, type Meter } from '@tollgate/core'
import {
  type Admission,
  createRequestMeter,
  type MeteringOptions,
  PROBLEM_CONTENT_TYPE,
  type RequestCredits,
  type RequestMeter,
  refusalHeaders,
  setCreditHeaders,
  settleOnResponseEnd,
} from '@tollgate/core/metering'
import type {
  FastifyInstance,
  FastifyPluginCallback,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
  preHandlerHookHandler,
  RouteOptions,
} from 'fastify'
import fp from 'fastify-plugin'

/** The adapter's name in warnings and errors. */
const ADAPTER = '@tollgate/fastify'

/**
 * The metering options of DESIGN section 3 with Fastify's request and reply, as a route's
 * `config.credits` overrides them.
 */
export type RouteCreditsOptions = Partial<MeteringOptions<FastifyRequest, FastifyReply>>

/**
 * What a route's `config.credits` may be: `false` leaves the route unmetered, a number is its
 * cost, an object overrides any of the plugin's options for that route.
 */
export type RouteCredits = false | number | RouteCreditsOptions

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * This request's credits, set by the `tollgate` plugin once it is admitted: `account`,
     * `cost` (reserved), `hold`, `actual` (set it to charge what the work really cost) and
     * `balance`. Absent on requests that are not metered (outside the plugin's context,
     * `config: { credits: false }`, `skip`, or served unmetered under `failMode: 'open'`).
     */
    credits?: RequestCredits
  }
  interface FastifyContextConfig {
    /**
     * This route's metering: `false` to leave it unmetered, a number for its cost, or options
     * that override the plugin's for this route (`{ cost: (req) => req.body.maxTokens }`).
     * @default the plugin's options
     */
    credits?: RouteCredits
  }
}

/**
 * Options of {@link tollgate}: the meter and DESIGN section 3, with Fastify's request and reply.
 *
 * - `meter` (required), `account(request)` (required), `cost` (number or `(request) => number`,
 *   sync or async; @default 1)
 * - `shouldCharge(request, reply)` (@default `reply.statusCode < 400`), `ttlMs` (@default 60_000)
 * - `headers` (@default true: `X-Credits-Cost`, `X-Credits-Remaining`)
 * - `onInsufficient(error, request, reply)`: answer a refused request yourself (@default 402
 *   problem+json)
 * - `failMode` (@default 'closed'), `skip(request)`, `onError(error, request)`, `onAbort`
 *   (@default 'release')
 * - pay as you stream: `topUp` (@default 0: off), `onAbort: 'used'`; the handler calls
 *   `credits.use(n)` and watches `credits.signal` (docs/streaming.md)
 */
export interface TollgateOptions extends MeteringOptions<FastifyRequest, FastifyReply> {
  /** The meter to charge, from `createMeter()`. Required. */
  meter: Meter
}

/** Keys Fastify itself may leave in a plugin's options; not metering options, not warned about. */
const FASTIFY_KEYS = ['prefix', 'logLevel', 'logSerializers']

/** The default `shouldCharge`: a response is charged unless it is an error. */
function chargeUnlessError(_req: FastifyRequest, reply: FastifyReply): boolean {
  return reply.statusCode < 400
}

type Meterer = RequestMeter<FastifyRequest, FastifyReply>

/** The request meter for `options`; checks them, so a mistake fails at startup. */
function requestMeter(meter: Meter, options: MeteringOptions<FastifyRequest, FastifyReply>) {
  return createRequestMeter<FastifyRequest, FastifyReply>(meter, options, {
    adapter: ADAPTER,
    shouldCharge: chargeUnlessError,
    extraKeys: FASTIFY_KEYS,
  })
}

/** A route's `config.credits`, checked: anything else is a mistake in the route, at startup. */
function routeOverride(value: unknown, url: string): RouteCreditsOptions | false | undefined {
  if (value === undefined || value === false) return value
  if (typeof value === 'number') return { cost: value }
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    return value as RouteCreditsOptions
  }
  throw new TypeError(
    `${ADAPTER}: config.credits of route ${url} must be false, a number or an options object`,
  )
}

/** Answers a refusal: `onInsufficient` when the app gave one, else problem+json via `reply`. */
function refuse(
  rm: Meterer,
  admission: Extract<Admission, { type: 'refused' }>,
  request: FastifyRequest,
  reply: FastifyReply,
  done: HookHandlerDoneFunction,
): void {
  const o = rm.options
  reply.headers(refusalHeaders(admission, o.headers))
  if (o.onInsufficient === null || !isTollgateError(admission.error, 'insufficient_credits')) {
    sendProblem(admission, reply)
    return
  }
  // What onInsufficient throws or rejects with is the app's error, like a route's.
  new Promise((resolve) => {
    resolve(o.onInsufficient!(admission.error as InsufficientCreditsError, request, reply))
  }).then(
    // One that did not answer leaves the default refusal, not a request that hangs.
    () => {
      if (!reply.sent) sendProblem(admission, reply)
    },
    (err: unknown) => done(toError(err)),
  )
}

function sendProblem(admission: Extract<Admission, { type: 'refused' }>, reply: FastifyReply) {
  // A Buffer: Fastify sends it as it is, past the app's JSON serializer, and without the
  // `; charset=utf-8` it appends to the type of a string body.
  reply
    .code(admission.problem.status)
    .header('content-type', PROBLEM_CONTENT_TYPE)
    .send(Buffer.from(JSON.stringify(admission.problem)))
}

/** A rejection as an Error: Fastify's error handling expects one. */
function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err ?? 'Rejected promise'))
}

/** The `preHandler` that meters one route with `rm`. */
function meteringHook(rm: Meterer): preHandlerHookHandler {
  const o = rm.options

  function admitted(
    admission: Admission,
    request: FastifyRequest,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
  ): void {
    switch (admission.type) {
      case 'admitted': {
        const credits = admission.credits
        request.credits = credits
        // On the raw response, not reply.header(): a handler that writes to reply.raw itself
        // (SSE with reply.raw.writeHead, a hijacked reply) sends those too, and Fastify's own
        // writeHead merges them with the reply's headers.
        setCreditHeaders(reply.raw, o.headers, credits)
        done()
        return
      }
      case 'skipped':
      case 'unmetered':
        done()
        return
      case 'refused':
        refuse(rm, admission, request, reply, done)
        return
      case 'finished':
        // The client left while its credits were reserved: released, and nobody to answer.
        return
    }
  }

  return function tollgatePreHandler(request, reply, done) {
    const call = rm.start(request)
    // Before anything is awaited, so a client that leaves while we reserve is seen. 'close' on
    // the raw response also covers a body streamed by reply.send(stream): it comes once the
    // stream has been written out (finished) or broke off (an abort).
    settleOnResponseEnd(call, reply.raw, reply)
    let admission: Admission | Promise<Admission>
    try {
      admission = call.admit()
    } catch (err) {
      // The app's own account/cost/skip threw: Fastify's error handling, as for any hook.
      done(toError(err))
      return
    }
    // Served at once (a lease, the memory store): no promise, no extra tick.
    if (!(admission instanceof Promise)) admitted(admission, request, reply, done)
    else
      admission.then(
        (a) => admitted(a, request, reply, done),
        (err: unknown) => done(toError(err)),
      )
  }
}

/** Puts `hook` first among a route's own `preHandler` hooks. */
function withPreHandler(route: RouteOptions, hook: preHandlerHookHandler): void {
  const existing = route.preHandler
  const rest = existing === undefined ? [] : Array.isArray(existing) ? existing : [existing]
  route.preHandler = [hook, ...rest]
}

const plugin: FastifyPluginCallback<TollgateOptions> = (
  app: FastifyInstance,
  options: TollgateOptions,
  done,
) => {
  const { meter, ...metering } = (options ?? {}) as TollgateOptions
  let shared: Meterer
  try {
    // Checked here, once: a mistake fails app.register() with the field named.
    shared = requestMeter(meter, metering)
  } catch (err) {
    done(toError(err))
    return
  }
  // Declared up front so every request has the same shape; a parent context may have done it.
  if (!app.hasRequestDecorator('credits')) app.decorateRequest('credits', undefined)
  const sharedHook = meteringHook(shared)
  app.addHook('onRoute', (route) => {
    const override = routeOverride(route.config?.credits, route.url)
    if (override === false) return
    // A route with options of its own gets its own request meter, made and checked now, not
    // per request.
    const hook =
      override === undefined
        ? sharedHook
        : meteringHook(requestMeter(meter, { ...metering, ...override }))
    withPreHandler(route as RouteOptions, hook)
  })
  done()
}

/**
 * Meters the routes of the Fastify context it is registered in, in credits of `meter`: a
 * `preHandler` reserves the cost before the handler runs (after the body is parsed, so `cost`
 * may read `request.body`), the credit headers go on the reply, and the response settles the
 * request once it has been sent: `request.credits.actual` is committed when `shouldCharge`
 * accepts it, the hold released on an error status, a thrown error or a client that went away.
 * A body sent as a stream settles when the stream ends, its hold extended while it runs. A
 * refusal is a 402 (400, 503) `application/problem+json` with both credit headers.
 *
 * It is wrapped with `fastify-plugin`, so its hooks belong to the context that registers it:
 * registered on the root, it meters every route; registered inside a plugin, only that
 * plugin's routes (and its children's). Register it before the routes it meters. Per route,
 * `config: { credits: false }` skips the route, `config: { credits: 5 }` sets its cost and
 * `config: { credits: { ...options } }` overrides any option. Options are checked when it is
 * registered: a mistake fails `register()`.
 *
 * @example
 * await app.register(async (api) => {
 *   await api.register(tollgate, {
 *     meter,
 *     account: (request) => request.headers['x-account'] as string,
 *     cost: 1,
 *   })
 *   api.post('/v1/completions', {
 *     config: { credits: { cost: (request) => (request.body as { maxTokens: number }).maxTokens } },
 *   }, async (request) => {
 *     const answer = await complete(request.body)
 *     if (request.credits) request.credits.actual = answer.tokens
 *     return answer
 *   })
 *   api.get('/v1/balance', { config: { credits: false } }, (request) => balanceOf(request))
 * })
 */
export const tollgate = fp(plugin, { fastify: '5.x', name: ADAPTER })
