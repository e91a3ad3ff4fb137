/**
 * `createMetered()`: a method decorator that reserves a call's credits before the method runs
 * and settles them once it resolved, threw or (async generators) finished iterating. It maps
 * a method call onto the request-metering kit of `@tollgate/core`, which holds the rules shared
 * by every adapter (DESIGN section 3). One implementation serves both decorator flavours: TC39
 * standard decorators and TypeScript's `experimentalDecorators`.
 */

import { type InsufficientCreditsError, InvalidInputError, type Meter } from '@tollgate/core'
import {
  type Awaitable,
  type FinishReason,
  type MeteredRequest,
  type MeteringOptions,
  type RequestCredits,
  RequestMeter,
  resolveMeteringOptions,
} from '@tollgate/core/metering'
import { runWithCredits } from './credits.js'

const ADAPTER = '@tollgate/decorators'

/** One call of a metered method, as `onError` reports it. */
export interface MethodCall<Args extends unknown[] = unknown[], This = unknown> {
  /** The arguments the method was called with. */
  readonly args: Args
  /** `this` of the call: the instance, or the class for a static method. */
  readonly self: This
  /** The method's name. */
  readonly method: string
}

/**
 * Options of a metered method: DESIGN section 3, as they apply to a method call. Every
 * callback gets the call's arguments and `this`. `headers` does not apply (no HTTP here).
 */
export interface MeteredMethodOptions<Args extends unknown[] = unknown[], This = unknown> {
  /**
   * The account to charge. Required, in {@link createMetered} or here.
   * @example ([req]) => req.user.id
   * @example (_args, self) => self.accountId
   */
  account?: (args: Args, self: This) => Awaitable<string>
  /**
   * Credits to reserve before the method runs: a number or a function of the call.
   * @default 1
   * @example ([req]) => req.maxTokens
   */
  cost?: number | ((args: Args, self: This) => Awaitable<number>)
  /**
   * Whether a call that returned `result` is charged (committed) or released; a call that
   * threw is always released. For an async generator, `result` is its return value.
   * @default () => true
   */
  shouldCharge?: (result: unknown, args: Args, self: This) => boolean
  /** Hold TTL; a call or stream still running is extended before it lapses. 1 s–24 h. @default 60_000 */
  ttlMs?: number
  /**
   * Called when the account cannot pay, before the `InsufficientCreditsError` is thrown. Throw
   * your own error from it to replace that one (your framework's 402, say).
   */
  onInsufficient?: (error: InsufficientCreditsError, args: Args, self: This) => Awaitable<void>
  /**
   * When the ledger cannot be reached: `'closed'` throws the `StoreUnavailableError` (503),
   * `'open'` runs the method unmetered and reports the failure to `onError`.
   * @default 'closed'
   */
  failMode?: 'closed' | 'open'
  /** Calls for which this returns true are not metered (`currentCredits()` is null). */
  skip?: (args: Args, self: This) => Awaitable<boolean>
  /**
   * Failures that cannot reach the caller: the ledger down under `failMode: 'open'`, a settle
   * or extend that failed, a `shouldCharge` that threw.
   * @default process.emitWarning
   */
  onError?: (error: unknown, call: MethodCall<Args, This>) => void
  /**
   * What a call its caller abandons pays (the `signal` aborted, or an async generator's
   * consumer stopped early): `'release'` frees the hold, `'commit'` charges the actual cost,
   * `'used'` what `credits.use(n)` counted as served.
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
  /**
   * The caller's abort signal, if the call has one: when it aborts before the method settled,
   * the call counts as abandoned (see `onAbort`). The method itself is not stopped.
   * @example ([req]) => req.signal
   */
  signal?: (args: Args, self: This) => AbortSignal | null | undefined
}

/** Options of {@link createMetered}: the defaults of every method it decorates. */
export interface MeteredOptions<Args extends unknown[] = unknown[], This = unknown>
  extends MeteredMethodOptions<Args, This> {
  /** The account to charge. Required. @example ([req]) => req.user.id */
  account: (args: Args, self: This) => Awaitable<string>
}

/** What a metered method may return: it is asynchronous, since the reserve is. */
export type MeteredReturn = PromiseLike<unknown> | AsyncIterable<unknown>

/** A method `@Metered` accepts. */
export type MeteredMethod<This, Args extends unknown[], R extends MeteredReturn> = (
  this: This,
  ...args: Args
) => R

/**
 * A method decorator for both compilations: TC39 standard decorators (`value, context`) and
 * `experimentalDecorators` (`target, key, descriptor`).
 */
export interface MeteredDecorator<Args extends unknown[], This, R extends MeteredReturn> {
  (
    value: MeteredMethod<This, Args, R>,
    context: ClassMethodDecoratorContext<This, MeteredMethod<This, Args, R>>,
  ): void
  (
    target: object,
    propertyKey: string | symbol,
    descriptor: { value?: MeteredMethod<This, Args, R> },
  ): void
}

/**
 * The `Metered` decorator factory {@link createMetered} returns. Under standard decorators
 * TypeScript infers `args` and `self` from the decorated method; under
 * `experimentalDecorators` it infers `args`, and `self` needs an annotation (or
 * `Metered<[Req], Service>(…)`).
 */
export type MeteredFactory<SharedArgs extends unknown[] = unknown[], SharedThis = unknown> = <
  Args extends SharedArgs = SharedArgs,
  This extends SharedThis = SharedThis,
  R extends MeteredReturn = MeteredReturn,
>(
  options?: MeteredMethodOptions<Args, This>,
) => MeteredDecorator<Args, This, R>

/** The option keys; anything else in the shared options was already warned about once. */
const KEYS = [
  'account',
  'cost',
  'shouldCharge',
  'ttlMs',
  'onInsufficient',
  'failMode',
  'skip',
  'onError',
  'onAbort',
  'topUp',
  'signal',
] as const

type AnyOptions = MeteredMethodOptions<unknown[], unknown>
type Kit = RequestMeter<MethodCall, unknown>
type SignalOf = (args: unknown[], self: unknown) => AbortSignal | null | undefined

/**
 * Adapts the (args, self) callbacks to the kit's (req) ones. A value that is not a function is
 * passed on as it is, so that the kit's validation names the field.
 */
function toKitOptions(o: AnyOptions): MeteringOptions<MethodCall, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(o)) {
    if (key === 'signal') continue
    if (typeof value !== 'function') {
      out[key] = value
      continue
    }
    const f = value as (...a: unknown[]) => unknown
    switch (key) {
      case 'shouldCharge':
        out[key] = (c: MethodCall, result: unknown) => f(result, c.args, c.self)
        break
      case 'onInsufficient':
        out[key] = (e: unknown, c: MethodCall) => f(e, c.args, c.self)
        break
      case 'onError':
        out[key] = f
        break
      default:
        out[key] = (c: MethodCall) => f(c.args, c.self)
    }
  }
  return out as unknown as MeteringOptions<MethodCall, unknown>
}

function resolve(meter: Meter, o: AnyOptions): { rm: Kit; signalOf: SignalOf | null } {
  if (o.signal !== undefined && typeof o.signal !== 'function') {
    throw new InvalidInputError('signal', 'must be a function: (args, self) => AbortSignal')
  }
  const resolved = resolveMeteringOptions(toKitOptions(o), {
    adapter: ADAPTER,
    shouldCharge: () => true,
    extraKeys: ['signal'],
  })
  return { rm: new RequestMeter(meter, resolved), signalOf: (o.signal as SignalOf) ?? null }
}

/**
 * Creates the `Metered` decorator for a meter. `options` are validated here, once, and are the
 * defaults of every decorated method; `Metered({ cost, … })` overrides them per method (and is
 * validated when the class is defined).
 *
 * A decorated method reserves its cost before it runs and must be async: an `async` method
 * commits `currentCredits().actual` (default: the cost) when it resolves and releases the hold
 * when it throws; an `async *` generator method reserves on the first `next()`, keeps its hold
 * extended while it is iterated, commits when it finishes and releases when it throws or the
 * consumer stops early. A refused call throws the Tollgate error: `InsufficientCreditsError`
 * (402, with `account`, `required`, `available`), `StoreUnavailableError` (503) under
 * `failMode: 'closed'`, `InvalidInputError` (400) for a bad account or cost.
 * @example
 * const Metered = createMetered(meter, { account: ([req]: [Request]) => req.user.id })
 * class Completions {
 *   \@Metered({ cost: ([req]) => req.body.maxTokens })
 *   async *complete(req: Request) {
 *     for await (const token of model.stream(req.body)) {
 *       const credits = currentCredits()
 *       if (credits) credits.actual += 1
 *       yield token
 *     }
 *   }
 * }
 */
export function createMetered<SharedArgs extends unknown[] = unknown[], SharedThis = unknown>(
  meter: Meter,
  options: MeteredOptions<SharedArgs, SharedThis>,
): MeteredFactory<SharedArgs, SharedThis> {
  if (typeof options === 'object' && options !== null && 'headers' in options) {
    process.emitWarning(
      `${ADAPTER}: the "headers" option does not apply to method calls and is ignored`,
      'TollgateWarning',
    )
  }
  const shared = options as unknown as AnyOptions
  // Validate the shared options now, so that a mistake fails at startup.
  resolve(meter, shared)
  const defaults: AnyOptions = {}
  for (const key of KEYS) {
    if (shared[key] !== undefined) (defaults as Record<string, unknown>)[key] = shared[key]
  }
  const factory = (methodOptions: AnyOptions = {}) => {
    if (typeof methodOptions !== 'object' || methodOptions === null) {
      throw new InvalidInputError('options', `${ADAPTER}: Metered() takes an options object`)
    }
    const { rm, signalOf } = resolve(meter, { ...defaults, ...methodOptions })
    return function decorate(...params: unknown[]): unknown {
      const [value, context, descriptor] = params
      if (params.length === 2 && isMethodContext(context)) {
        if (context.kind !== 'method' || typeof value !== 'function') {
          throw new TypeError(`@Metered decorates methods, not ${String(context.kind)}s`)
        }
        return wrap(value as Method, String(context.name), rm, signalOf)
      }
      if (isDescriptor(descriptor) && typeof descriptor.value === 'function') {
        descriptor.value = wrap(descriptor.value as Method, String(context), rm, signalOf)
        return descriptor
      }
      throw new TypeError('@Metered decorates methods')
    }
  }
  return factory as unknown as MeteredFactory<SharedArgs, SharedThis>
}

type Method = (this: unknown, ...args: unknown[]) => unknown

function isMethodContext(value: unknown): value is { kind: unknown; name: unknown } {
  return typeof value === 'object' && value !== null && 'kind' in value && 'name' in value
}

function isDescriptor(value: unknown): value is PropertyDescriptor {
  return typeof value === 'object' && value !== null
}

function isAsyncGeneratorFunction(fn: Method): boolean {
  return Object.prototype.toString.call(fn) === '[object AsyncGeneratorFunction]'
}

function wrap(original: Method, name: string, rm: Kit, signalOf: SignalOf | null): Method {
  const wrapped: Method = isAsyncGeneratorFunction(original)
    ? function (this: unknown, ...args: unknown[]) {
        return meterGenerator(rm, signalOf, original, { args, self: this, method: name })
      }
    : function (this: unknown, ...args: unknown[]) {
        return meterCall(rm, signalOf, original, { args, self: this, method: name })
      }
  // Keep the name for stack traces and framework reflection.
  Object.defineProperty(wrapped, 'name', { value: original.name, configurable: true })
  carryOver(original, wrapped)
  return wrapped
}

/** The part of the `reflect-metadata` API used here, when an app has loaded it. */
interface ReflectMetadata {
  getOwnMetadataKeys(target: object): unknown[]
  getOwnMetadata(key: unknown, target: object): unknown
  defineMetadata(key: unknown, value: unknown, target: object): void
}

/**
 * Carries what other decorators stored on the method over to its wrapper, so that the order of
 * `@Metered` and a framework's decorators does not matter. Route decorators (NestJS's `@Get`,
 * `@Post`, `@Sse`…) keep their metadata in `reflect-metadata`, keyed by the method's function:
 * one applied before `@Metered` (written below it) would otherwise mark a function the class no
 * longer has, and the route would silently disappear. Own properties (markers some libraries
 * set on the function) come along too.
 */
function carryOver(from: Method, to: Method): void {
  for (const key of Reflect.ownKeys(from)) {
    if (key === 'length' || key === 'name' || key === 'prototype') continue
    const descriptor = Object.getOwnPropertyDescriptor(from, key)
    if (descriptor !== undefined) Object.defineProperty(to, key, descriptor)
  }
  const reflect = Reflect as unknown as Partial<ReflectMetadata>
  if (
    typeof reflect.getOwnMetadataKeys !== 'function' ||
    typeof reflect.getOwnMetadata !== 'function' ||
    typeof reflect.defineMetadata !== 'function'
  ) {
    return
  }
  for (const key of reflect.getOwnMetadataKeys(from)) {
    reflect.defineMetadata(key, reflect.getOwnMetadata(key, from), to)
  }
}

/** Listens for the caller's abort; returns the function that stops listening. */
function watchAbort(
  signalOf: SignalOf | null,
  req: MethodCall,
  call: MeteredRequest<MethodCall, unknown>,
): { signal: AbortSignal | null; stop(): void } {
  const signal = signalOf?.(req.args, req.self) ?? null
  if (signal === null) return { signal, stop: () => {} }
  const onAbort = () => void call.finish('abort')
  signal.addEventListener('abort', onAbort, { once: true })
  if (signal.aborted) onAbort()
  return { signal, stop: () => signal.removeEventListener('abort', onAbort) }
}

/**
 * Admits a call. Returns its credits (null when it runs unmetered) or throws the refusal; a
 * call abandoned while it was being admitted throws the signal's reason.
 */
async function admit(
  rm: Kit,
  call: MeteredRequest<MethodCall, unknown>,
  signal: AbortSignal | null,
): Promise<RequestCredits | null> {
  const admission = await call.admit()
  switch (admission.type) {
    case 'admitted':
      return admission.credits
    case 'skipped':
    case 'unmetered':
      return null
    case 'finished':
      throw signal?.reason ?? new Error('the call was abandoned before it was admitted')
    case 'refused': {
      const { onInsufficient } = rm.options
      if (onInsufficient !== null && admission.error.code === 'insufficient_credits') {
        // It may throw its own error instead; if it returns, the Tollgate error goes out.
        await onInsufficient(admission.error as InsufficientCreditsError, call.req, undefined)
      }
      throw admission.error
    }
  }
}

/** `shouldCharge` decides; one that throws is reported and the call is charged. */
function reasonOf(rm: Kit, req: MethodCall, result: unknown): FinishReason {
  try {
    return rm.options.shouldCharge(req, result) ? 'success' : 'failure'
  } catch (err) {
    rm.options.onError(err, req)
    return 'success'
  }
}

async function meterCall(
  rm: Kit,
  signalOf: SignalOf | null,
  original: Method,
  req: MethodCall,
): Promise<unknown> {
  // Synchronous up to admit(): the abort listener is attached before anything is awaited.
  const call = rm.start(req)
  const watch = watchAbort(signalOf, req, call)
  try {
    const credits = await admit(rm, call, watch.signal)
    let result: unknown
    try {
      // Even an unmetered call runs in its own context, so it cannot reach an outer call's credits.
      result = await runWithCredits(credits, () => original.apply(req.self, req.args))
    } catch (err) {
      await call.finish('failure')
      throw err
    }
    await call.finish(reasonOf(rm, req, result))
    return result
  } finally {
    watch.stop()
  }
}

/**
 * An async generator method: reserve on the first `next()`, settle when iteration ends. A
 * native generator wrapping the method's, driving it by hand so that each resumption runs
 * with the call's credits and `throw()` reaches the method's own `try`.
 */
async function* meterGenerator(
  rm: Kit,
  signalOf: SignalOf | null,
  original: Method,
  req: MethodCall,
): AsyncGenerator<unknown, unknown, unknown> {
  const call = rm.start(req)
  const watch = watchAbort(signalOf, req, call)
  try {
    const credits = await admit(rm, call, watch.signal)
    const source = runWithCredits(credits, () =>
      original.apply(req.self, req.args),
    ) as AsyncGenerator<unknown, unknown, unknown>
    /** How iteration ended; null while running, and when the consumer stopped early. */
    let outcome: FinishReason | null = null
    let resume: { throw: false; value: unknown } | { throw: true; error: unknown } = {
      throw: false,
      value: undefined,
    }
    try {
      for (;;) {
        let step: IteratorResult<unknown, unknown>
        try {
          const r = resume
          step = await runWithCredits(
            credits,
            (): Promise<IteratorResult<unknown, unknown>> =>
              r.throw ? source.throw(r.error) : source.next(r.value),
          )
        } catch (err) {
          outcome = 'failure'
          throw err
        }
        if (step.done) {
          outcome = reasonOf(rm, req, step.value)
          return step.value
        }
        try {
          resume = { throw: false, value: yield step.value }
        } catch (error) {
          resume = { throw: true, error }
        }
      }
    } finally {
      if (outcome === null) {
        // The consumer stopped early (break, return()): let the method clean up, then settle.
        try {
          await runWithCredits(credits, () => source.return(undefined))
        } finally {
          await call.finish('abort')
        }
      } else {
        await call.finish(outcome)
      }
    }
  } finally {
    watch.stop()
  }
}
