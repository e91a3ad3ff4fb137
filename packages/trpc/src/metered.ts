/**
 * `metered()`: a tRPC middleware that reserves a call's credits before the resolver runs and
 * settles them once the outcome is known. It maps tRPC's middleware onto the request-metering
 * kit of `@tollgate/core`, which holds the rules shared by every adapter (DESIGN section 3).
 */

import type { InsufficientCreditsError, Meter } from '@tollgate/core'
import {
  type Awaitable,
  type FinishReason,
  type MeteredRequest,
  type MeteringOptions,
  type RequestCredits,
  RequestMeter,
  resolveMeteringOptions,
} from '@tollgate/core/metering'
import { getTRPCErrorFromUnknown, TRPCError, type TRPCMiddlewareFunction } from '@trpc/server'
import { refusalError } from './errors.js'
import {
  isAsyncIterable,
  isObservable,
  meterAsyncIterable,
  meterObservable,
  type StreamEnd,
} from './stream.js'

/** The adapter's name in warnings and errors. */
const ADAPTER = '@tollgate/trpc'

/** What `metered()` adds to the context of the procedures behind it. */
export interface MeteredContext {
  /**
   * The call's credits: `account`, the reserved `cost`, the `hold`, the `balance` after the
   * reserve, and `actual`, what the call is charged on success (set it to charge what the
   * work really cost). `null` when the call is not metered: `skip` returned true, or the
   * ledger was down under `failMode: 'open'`.
   */
  credits: RequestCredits | null
}

/**
 * The procedure metadata `metered()` reads: `.meta({ credits: 5 })` sets the cost of one
 * procedure. Include it in your meta type.
 * @example
 * const t = initTRPC.meta<MeteredMeta & { auth?: boolean }>().create()
 * const summarize = billed.meta({ credits: 5 }).mutation(…)
 */
export interface MeteredMeta {
  /** Credits a call of this procedure reserves (a non-negative safe integer). */
  credits?: number
}

/**
 * What the option callbacks get: tRPC's middleware options (`ctx`, `input`, `meta`, `path`,
 * `type`, `signal`, `batchIndex`, `getRawInput`) without `next`.
 */
export type MeteredCallOptions<
  TContext = object,
  TMeta = object,
  TInput = unknown,
  TContextOverrides = object,
> = Omit<
  Parameters<TRPCMiddlewareFunction<TContext, TMeta, TContextOverrides, MeteredContext, TInput>>[0],
  'next'
>

/** How a call ended, for `shouldCharge`. */
export type MeteredResult = { ok: true; data: unknown } | { ok: false; error: TRPCError }

/**
 * Options of {@link metered}: DESIGN section 3, as they apply to tRPC. `headers` does not
 * apply (a batch has one HTTP response for many calls); read `ctx.credits` instead.
 */
export interface MeteredOptions<
  TContext = object,
  TMeta = object,
  TInput = unknown,
  TContextOverrides = object,
> {
  /**
   * The account to charge, from the call. Required.
   * @example ({ ctx }) => ctx.user.id
   */
  account: (
    opts: MeteredCallOptions<TContext, TMeta, TInput, TContextOverrides>,
  ) => Awaitable<string>
  /**
   * Credits to reserve. A function decides alone (it can read `opts.meta` itself); a number
   * is the default for procedures without `.meta({ credits })`.
   * @default 1
   * @example ({ input }) => input.maxTokens
   */
  cost?:
    | number
    | ((opts: MeteredCallOptions<TContext, TMeta, TInput, TContextOverrides>) => Awaitable<number>)
  /**
   * Whether a call that ended this way is charged (committed) or released. Streams are judged
   * when they end: `{ ok: true }` when they finished, `{ ok: false, error }` when they threw.
   * @default (opts, result) => result.ok
   */
  shouldCharge?: (
    opts: MeteredCallOptions<TContext, TMeta, TInput, TContextOverrides>,
    result: MeteredResult,
  ) => boolean
  /** Hold TTL; a call or stream still running is extended before it lapses. 1 s–24 h. @default 60_000 */
  ttlMs?: number
  /**
   * Called when the account cannot pay, before the `PAYMENT_REQUIRED` error is thrown. Throw
   * your own error from it to replace that one (a different code or message).
   */
  onInsufficient?: (
    error: InsufficientCreditsError,
    opts: MeteredCallOptions<TContext, TMeta, TInput, TContextOverrides>,
  ) => Awaitable<void>
  /**
   * When the ledger cannot be reached: `'closed'` throws `SERVICE_UNAVAILABLE`, `'open'` runs
   * the procedure unmetered (`ctx.credits` is null) and reports the failure to `onError`.
   * @default 'closed'
   */
  failMode?: 'closed' | 'open'
  /** Calls for which this returns true are not metered (`ctx.credits` is null). */
  skip?: (
    opts: MeteredCallOptions<TContext, TMeta, TInput, TContextOverrides>,
  ) => Awaitable<boolean>
  /**
   * Failures that cannot reach the caller: the ledger down under `failMode: 'open'`, a settle
   * or extend that failed, a `shouldCharge` that threw.
   * @default process.emitWarning
   */
  onError?: (
    error: unknown,
    opts: MeteredCallOptions<TContext, TMeta, TInput, TContextOverrides>,
  ) => void
  /**
   * What a call the client abandons pays (request aborted, subscription stopped): `'release'`
   * frees its hold, `'commit'` charges `ctx.credits.actual` (work that ran anyway), `'used'`
   * what `ctx.credits.use(n)` counted as served.
   * @default 'release'
   */
  onAbort?: 'release' | 'commit' | 'used'
  /**
   * Pay as you stream: grow the hold by this block of credits, in the background, when less
   * than half a block of it is left unused by `credits.use(n)` (see docs/streaming.md). Off (0)
   * by default: `use()` refuses past the reserved cost.
   * @default 0
   * @example topUp: 100
   */
  topUp?: number
}

/** The middleware `metered()` returns, for `.use()`. */
export type MeteredMiddleware<
  TContext = object,
  TMeta = object,
  TInput = unknown,
  TContextOverrides = object,
> = TRPCMiddlewareFunction<TContext, TMeta, TContextOverrides, MeteredContext, TInput>

/** The middleware options as this file handles them, whatever the app's types. */
interface CallOptions {
  meta: unknown
  type: 'query' | 'mutation' | 'subscription'
  signal: AbortSignal | undefined
  next(opts: { ctx: MeteredContext }): Promise<NextResult>
}
type NextResult = MeteredResult & { readonly marker: unknown }

/** The `credits` of a procedure's meta, checked: a bad value is the app's bug, hence a 500. */
function metaCost(meta: unknown): number | undefined {
  const credits = (meta as MeteredMeta | undefined)?.credits
  if (credits === undefined) return undefined
  if (typeof credits !== 'number' || !Number.isSafeInteger(credits) || credits < 0) {
    throw new TypeError(`${ADAPTER}: meta.credits must be a non-negative safe integer`)
  }
  return credits
}

/** The kit's request meter for these options, with the meta-aware cost. */
function requestMeter(
  meter: Meter,
  options: MeteredOptions,
): RequestMeter<CallOptions, MeteredResult> {
  let kitOptions = options as unknown as MeteringOptions<CallOptions, MeteredResult>
  if (typeof options === 'object' && options !== null && 'headers' in options) {
    process.emitWarning(
      `${ADAPTER}: the "headers" option does not apply to tRPC and is ignored; read ctx.credits`,
      'TollgateWarning',
    )
    const { headers: _ignored, ...rest } = kitOptions
    kitOptions = rest
  }
  // Validates every option once, here, so a mistake fails at startup with the field named.
  const resolved = resolveMeteringOptions(kitOptions, {
    adapter: ADAPTER,
    shouldCharge: (_opts, result) => result.ok,
  })
  // A cost function decides alone; otherwise the procedure's meta, then the fixed cost.
  const fixed = resolved.cost
  const costOf = resolved.costOf ?? ((opts: CallOptions) => metaCost(opts.meta) ?? fixed)
  return new RequestMeter(meter, { ...resolved, costOf })
}

/**
 * A tRPC middleware that meters the procedures behind it in credits. Before the resolver it
 * reserves the cost (from `cost`, else the procedure's `.meta({ credits })`, else 1); after
 * it, it commits `ctx.credits.actual` when the call succeeded and releases the hold when it
 * failed or the client went away. A streaming output (subscription or async-generator query)
 * is settled when the stream ends, and its hold is extended while it runs.
 *
 * Refusals are `TRPCError`s: `PAYMENT_REQUIRED` with the `InsufficientCreditsError` (`account`,
 * `required`, `available`) as `cause`; `SERVICE_UNAVAILABLE` when the ledger is down under
 * `failMode: 'closed'`; `BAD_REQUEST` when the call's account or cost is invalid.
 *
 * Put it after `.input()` when the cost depends on the input: middlewares before it see no
 * parsed input.
 *
 * Called as `metered(meter, options)`, TypeScript infers the option callbacks' `ctx` and `meta`
 * only in some positions; {@link createMetered} binds them to your `t`, so they never need
 * annotations.
 * @example
 * const t = initTRPC.context<{ user: { id: string } }>().meta<MeteredMeta>().create()
 * const metered = createMetered(t)
 * const billed = t.procedure.use(metered(meter, { account: ({ ctx }) => ctx.user.id }))
 * export const router = t.router({
 *   summarize: billed.meta({ credits: 5 }).query(({ input }) => summarize(input)),
 *   complete: t.procedure
 *     .input(z.object({ prompt: z.string(), maxTokens: z.number().int() }))
 *     .use(metered(meter, {
 *       account: ({ ctx }) => ctx.user.id,
 *       cost: ({ input }) => input.maxTokens,
 *     }))
 *     .subscription(async function* ({ input, ctx }) {
 *       for await (const token of model.stream(input)) {
 *         if (ctx.credits) ctx.credits.actual = token.index + 1
 *         yield token.text
 *       }
 *     }),
 * })
 */
export function metered<
  TContext extends object = object,
  TMeta extends object = object,
  TInput = unknown,
  TContextOverrides = object,
>(
  meter: Meter,
  options: MeteredOptions<TContext, TMeta, TInput, TContextOverrides>,
): MeteredMiddleware<TContext, TMeta, TInput, TContextOverrides> {
  const rm = requestMeter(meter, options as unknown as MeteredOptions)
  const middleware = (opts: CallOptions) => meterCall(rm, opts)
  return middleware as unknown as MeteredMiddleware<TContext, TMeta, TInput, TContextOverrides>
}

/**
 * What a tRPC root object (`initTRPC…create()`) carries of its types: the context and the meta.
 * Only the types are read; the object itself is not used.
 */
export interface MeteredRoot {
  _config: { $types: { ctx: object; meta: object } }
}

/**
 * {@link metered} with the context and meta fixed to those of one tRPC root object: what
 * {@link createMetered} returns. The input and the context added by earlier middlewares are
 * still inferred where it is used.
 */
export type MeteredBuilder<TContext extends object, TMeta extends object> = <
  TInput = unknown,
  TContextOverrides = object,
>(
  meter: Meter,
  options: MeteredOptions<TContext, TMeta, TInput, TContextOverrides>,
) => MeteredMiddleware<TContext, TMeta, TInput, TContextOverrides>

/**
 * {@link metered}, bound to the context and meta types of your tRPC root object, so `ctx` and
 * `meta` are typed in every option callback without annotations (a bare `metered()` cannot
 * always infer them from `.use()`). `createMetered(t)` and `createMetered<typeof t>()` are the
 * same; `t` is only read for its type.
 * @example
 * const t = initTRPC.context<{ user: { id: string } }>().meta<MeteredMeta>().create()
 * const metered = createMetered(t)
 * const billed = t.procedure.use(
 *   metered(meter, {
 *     account: ({ ctx }) => ctx.user.id, // ctx: { user: { id: string } }
 *     cost: ({ meta }) => meta?.credits ?? 1, // meta: MeteredMeta | undefined
 *   }),
 * )
 */
export function createMetered<TRoot extends MeteredRoot>(
  _t?: TRoot,
): MeteredBuilder<TRoot['_config']['$types']['ctx'], TRoot['_config']['$types']['meta']> {
  return metered
}

async function meterCall(
  rm: RequestMeter<CallOptions, MeteredResult>,
  opts: CallOptions,
): Promise<NextResult> {
  const call = rm.start(opts)
  // Listen before the first await, so an abort while reserving is not missed.
  const signal = opts.signal
  const onAbort = () => void call.finish('abort')
  signal?.addEventListener('abort', onAbort, { once: true })
  if (signal?.aborted) onAbort()
  let streaming = false
  try {
    const admission = await call.admit()
    switch (admission.type) {
      case 'skipped':
      case 'unmetered':
        return await opts.next({ ctx: { credits: null } })
      case 'finished':
        // The client left while the credits were being reserved; they are released already.
        throw new TRPCError({
          code: 'CLIENT_CLOSED_REQUEST',
          message: 'the client went away before the call was admitted',
        })
      case 'refused': {
        const error = refusalError(admission)
        const { onInsufficient } = rm.options
        if (onInsufficient !== null && admission.error.code === 'insufficient_credits') {
          // It may throw its own error instead; if it returns, the default one goes out.
          await onInsufficient(admission.error as InsufficientCreditsError, opts, {
            ok: false,
            error,
          })
        }
        throw error
      }
    }
    let result: NextResult
    try {
      result = await opts.next({ ctx: { credits: admission.credits } })
    } catch (err) {
      // tRPC turns a throwing resolver into an error result; this is a middleware bug.
      await call.finish('failure')
      throw err
    }
    // Observables only stream from subscriptions; a query may return an object that merely
    // has a `subscribe` method.
    const observed = result.ok && opts.type === 'subscription' && isObservable(result.data)
    if (result.ok && (isAsyncIterable(result.data) || observed)) {
      streaming = true
      const hooks = {
        startWithinMs: rm.options.ttlMs,
        settle: async (end: StreamEnd) => {
          signal?.removeEventListener('abort', onAbort)
          await call.finish(streamReason(rm, call, end))
        },
      }
      const data = observed
        ? meterObservable(result.data as Parameters<typeof meterObservable>[0], hooks)
        : meterAsyncIterable(result.data as AsyncIterable<unknown>, hooks)
      return { ...result, data }
    }
    await call.finish(reasonOf(rm, call, result))
    return result
  } finally {
    if (!streaming) signal?.removeEventListener('abort', onAbort)
  }
}

/** `shouldCharge` decides; one that throws is reported and the default rule applies. */
function reasonOf(
  rm: RequestMeter<CallOptions, MeteredResult>,
  call: MeteredRequest<CallOptions, MeteredResult>,
  result: MeteredResult,
): FinishReason {
  let charge = result.ok
  try {
    charge = rm.options.shouldCharge(call.req, result)
  } catch (err) {
    rm.options.onError(err, call.req)
  }
  return charge ? 'success' : 'failure'
}

function streamReason(
  rm: RequestMeter<CallOptions, MeteredResult>,
  call: MeteredRequest<CallOptions, MeteredResult>,
  end: StreamEnd,
): FinishReason {
  if (end.type === 'abort') return 'abort'
  return reasonOf(
    rm,
    call,
    end.type === 'end'
      ? { ok: true, data: undefined }
      : { ok: false, error: getTRPCErrorFromUnknown(end.error) },
  )
}
