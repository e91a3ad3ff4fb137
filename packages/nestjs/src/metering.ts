/**
 * The module's options mapped onto core's request-metering kit: one {@link RequestMeter} per
 * `@Credits` (the module's options with the route's on top), built on a route's first request
 * and kept. The kit sees a {@link NestCall}; the app's callbacks see the platform's request (the
 * module's) or the execution context (a route's), as documented.
 */
import type { ExecutionContext } from '@nestjs/common'
import { InvalidInputError, type Meter } from '@tollgate/core'
import { type MeteringOptions, RequestMeter, resolveMeteringOptions } from '@tollgate/core/metering'
import type { CreditsSpec } from './credits.js'
import { statusOf } from './http.js'
import type { TollgateModuleOptions } from './options.js'

/** One HTTP request as the kit sees it. */
export interface NestCall {
  readonly context: ExecutionContext
  /** The platform's request (Express `Request`, `FastifyRequest`). */
  readonly request: unknown
  /** The platform's response (Express `Response`, Fastify reply). */
  readonly response: unknown
}

type Kit = MeteringOptions<NestCall, unknown>
type AnyModuleOptions = TollgateModuleOptions<unknown, unknown>

const ADAPTER = '@tollgate/nestjs'

const DEFAULTS = {
  adapter: ADAPTER,
  shouldCharge: (_call: NestCall, response: unknown) => statusOf(response) < 400,
}

/**
 * Warns about an option the adapter does not know, as core's options kit does for every
 * factory: type `TollgateWarning`, a stable code to tell it apart by.
 * @internal
 */
export function warnUnknownOption(message: string): void {
  process.emitWarning(message, 'TollgateWarning', 'TOLLGATE_UNKNOWN_OPTION')
}

/** DESIGN section 3's keys, which go to the kit; `meter` and `exceptionFilter` are the module's. */
const KIT_KEYS = new Set([
  'account',
  'cost',
  'shouldCharge',
  'ttlMs',
  'headers',
  'standardHeaders',
  'onInsufficient',
  'failMode',
  'skip',
  'onError',
  'onAbort',
  'topUp',
])

/**
 * The module's options as the kit takes them: each callback gets the platform's request. A value
 * that is not a function is passed on as it is, so that the kit's validation names the field.
 */
function fromModule(options: AnyModuleOptions): Kit {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(options)) {
    if (key === 'meter' || key === 'exceptionFilter' || value === undefined) continue
    if (!KIT_KEYS.has(key)) {
      warnUnknownOption(`${ADAPTER} TollgateModule: unknown option "${key}" is ignored`)
      continue
    }
    if (typeof value !== 'function') {
      out[key] = value
      continue
    }
    const f = value as (...args: unknown[]) => unknown
    switch (key) {
      case 'shouldCharge':
        out[key] = (call: NestCall, response: unknown) => f(call.request, response)
        break
      case 'onInsufficient':
        out[key] = (error: unknown, call: NestCall, response: unknown) =>
          f(error, call.request, response)
        break
      case 'onError':
        out[key] = (error: unknown, call: NestCall) => f(error, call.request)
        break
      default: // account, cost, skip
        out[key] = (call: NestCall) => f(call.request)
    }
  }
  return out as unknown as Kit
}

/** A route's `@Credits` as kit options: its callbacks get the execution context. */
function fromRoute(spec: CreditsSpec): Partial<Kit> {
  const out: Record<string, unknown> = {}
  const cost = spec.cost
  if (typeof cost === 'function') out.cost = (call: NestCall) => cost(call.context)
  else if (cost !== undefined) out.cost = cost
  for (const [key, value] of Object.entries(spec.options)) {
    if (value === undefined) continue
    out[key] =
      key === 'account' && typeof value === 'function'
        ? (call: NestCall) => (value as (context: ExecutionContext) => unknown)(call.context)
        : value
  }
  return out as Partial<Kit>
}

/** Validates a route's `@Credits` on its own, when the decorator is made. @internal */
export function checkRoute(spec: CreditsSpec): void {
  resolveMeteringOptions({ account: () => '', ...fromRoute(spec) }, DEFAULTS)
}

/** The module's metering: its options checked once, and a kit per `@Credits`. @internal */
export class CreditsMetering {
  readonly meter: Meter
  readonly exceptionFilter: boolean
  readonly #base: Kit
  readonly #bySpec = new WeakMap<CreditsSpec, RequestMeter<NestCall, unknown>>()

  constructor(options: AnyModuleOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new InvalidInputError('options', `${ADAPTER}: TollgateModule needs { meter, account }`)
    }
    const filter = options.exceptionFilter ?? true
    if (typeof filter !== 'boolean') {
      throw new InvalidInputError('exceptionFilter', 'must be a boolean')
    }
    this.exceptionFilter = filter
    this.#base = fromModule(options)
    // Every option is checked now, and the meter by the kit: a mistake fails at startup.
    new RequestMeter(options.meter, resolveMeteringOptions(this.#base, DEFAULTS))
    this.meter = options.meter
  }

  /** The kit of one `@Credits`, made on its first request. */
  forSpec(spec: CreditsSpec): RequestMeter<NestCall, unknown> {
    let rm = this.#bySpec.get(spec)
    if (rm === undefined) {
      rm = new RequestMeter(
        this.meter,
        resolveMeteringOptions({ ...this.#base, ...fromRoute(spec) }, DEFAULTS),
      )
      this.#bySpec.set(spec, rm)
    }
    return rm
  }
}
