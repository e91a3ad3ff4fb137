/**
 * The interceptor that meters `@Credits` routes. Nest runs it after the guards (so `account` can
 * read what an auth guard set) and before the pipes and the handler. It reserves, then settles
 * on the Node response's lifecycle rather than on the handler's Observable: the response is
 * sent after the interceptors are done (a `StreamableFile` is piped, an `@Sse()` stream written,
 * an exception answered by a filter), and only the response says how it ended.
 */

import type { ServerResponse } from 'node:http'
import {
  type CallHandler,
  type ExecutionContext,
  Inject,
  Injectable,
  type NestInterceptor,
} from '@nestjs/common'
import { Reflector } from '@nestjs/core'
import { type InsufficientCreditsError, isTollgateError } from '@tollgate/core'
import {
  type Admission,
  type MeteredRequest,
  type Refusal,
  type RequestMeter,
  refusalHeaders,
  setCreditHeaders,
  settleOnResponseEnd,
} from '@tollgate/core/metering'
import { EMPTY, type Observable, of, tap } from 'rxjs'
import { CREDITS_METADATA, type CreditsSpec } from './credits.js'
import { CreditsRefusedException } from './credits-exception.js'
import { nodeResponse } from './http.js'
import { CreditsMetering, type NestCall } from './metering.js'

/**
 * Marks a request some interceptor already meters: `TollgateModule` imported twice must not
 * charge twice. A registered symbol, so two copies of this package agree.
 */
const METERED = Symbol.for('tollgate.nestjs.metered')

/** Nest's `SSE_METADATA` (`@nestjs/common/constants`), the same from Nest 7 to 12. */
const SSE_METADATA = '__sse__'

type MeteredCall = MeteredRequest<NestCall, unknown>

/**
 * Meters every route marked with `@Credits`. `TollgateModule` registers it as a global
 * interceptor; you do not use it directly.
 */
@Injectable()
export class CreditsInterceptor implements NestInterceptor {
  readonly #reflector: Reflector
  readonly #metering: CreditsMetering

  constructor(
    @Inject(Reflector) reflector: Reflector,
    @Inject(CreditsMetering) metering: CreditsMetering,
  ) {
    this.#reflector = reflector
    this.#metering = metering
  }

  intercept(
    context: ExecutionContext,
    next: CallHandler,
  ): Observable<unknown> | Promise<Observable<unknown>> {
    if (context.getType() !== 'http') return next.handle()
    const spec = this.#reflector.getAllAndOverride<CreditsSpec | false | undefined>(
      CREDITS_METADATA,
      [context.getHandler(), context.getClass()],
    )
    if (!spec) return next.handle()
    const http = context.switchToHttp()
    const request = http.getRequest<Record<PropertyKey, unknown>>()
    if (request[METERED] === true) return next.handle()
    request[METERED] = true
    const response = http.getResponse<unknown>()
    const raw = nodeResponse(response)
    if (raw === null) {
      throw new TypeError(
        '@tollgate/nestjs meters HTTP routes on @nestjs/platform-express and @nestjs/platform-fastify; this response has no Node ServerResponse',
      )
    }
    const rm = this.#metering.forSpec(spec)
    if (raw.destroyed) return this.#gone(context)
    const call = rm.start({ context, request, response })
    // Before anything is awaited, so a client that leaves during the reserve is still seen.
    settleOnResponseEnd(call, raw, response)
    // What the app's own account/cost/skip throw propagates: Nest's exception filters get it.
    const admission = call.admit()
    if (admission instanceof Promise) {
      return admission.then((a) => this.#proceed(a, rm, call, context, next, raw))
    }
    return this.#proceed(admission, rm, call, context, next, raw)
  }

  #proceed(
    admission: Admission,
    rm: RequestMeter<NestCall, unknown>,
    call: MeteredCall,
    context: ExecutionContext,
    next: CallHandler,
    raw: ServerResponse,
  ): Observable<unknown> | Promise<Observable<unknown>> {
    switch (admission.type) {
      case 'admitted': {
        const credits = admission.credits
        ;(call.req.request as { credits?: unknown }).credits = credits
        // On the Node response, under both platforms: Fastify's reply and Nest's SSE writer
        // both merge them into the head they write.
        setCreditHeaders(raw, rm.options.headers, credits)
        return next.handle().pipe(
          tap({
            // The handler (or an interceptor after this one) failed: release now, whatever a
            // filter then answers; the response's end settles nothing more (once only).
            error: () => void call.finish('failure'),
          }),
        )
      }
      case 'skipped':
      case 'unmetered':
        return next.handle()
      case 'refused':
        return refuse(rm, call, admission, raw)
      case 'finished':
        // The client left while its credits were reserved: the hold is released, the handler
        // does not run, and there is nobody to answer.
        return this.#gone(context)
    }
  }

  /** What a route whose client is gone returns instead of running: nothing to send. */
  #gone(context: ExecutionContext): Observable<unknown> {
    // An SSE route is given a stream that ends at once; another route a value, since an empty
    // Observable would reach the exception filters as an error.
    return this.#reflector.get(SSE_METADATA, context.getHandler()) ? EMPTY : of(undefined)
  }
}

/**
 * Sets the credit headers of a refusal, lets `onInsufficient` speak, then throws the refusal
 * for the exception filters.
 */
function refuse(
  rm: RequestMeter<NestCall, unknown>,
  call: MeteredCall,
  refusal: Refusal,
  raw: ServerResponse,
): Promise<never> | never {
  const o = rm.options
  if (!raw.headersSent) {
    for (const [name, value] of Object.entries(refusalHeaders(refusal, o.headers))) {
      raw.setHeader(name, value)
    }
  }
  const exception = new CreditsRefusedException(refusal.problem, refusal.error)
  if (o.onInsufficient !== null && isTollgateError(refusal.error, 'insufficient_credits')) {
    // It may throw an exception of its own instead; when it returns, the refusal is thrown.
    const answered = o.onInsufficient(
      refusal.error as InsufficientCreditsError,
      call.req,
      call.req.response,
    )
    if (isThenable(answered)) {
      return Promise.resolve(answered).then(() => {
        throw exception
      })
    }
  }
  throw exception
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}
