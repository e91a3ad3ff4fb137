/**
 * The module's options (DESIGN section 3, with the platform's request and response) and their
 * injection tokens.
 */
import type { InjectionToken, ModuleMetadata, OptionalFactoryDependency } from '@nestjs/common'
import type { InsufficientCreditsError, Meter } from '@tollgate/core'
import type { Awaitable, MeteringOptions } from '@tollgate/core/metering'
import type { HttpRequest } from './http.js'

/**
 * Options of `TollgateModule.forRoot()`: the meter and DESIGN section 3's options. The callbacks
 * get the platform's request object, as `@nestjs/throttler`'s `getTracker` does: Express's
 * `Request` on `@nestjs/platform-express`, `FastifyRequest` on `@nestjs/platform-fastify`.
 * Annotate the parameter to use your platform's type (and what your guards add to it):
 * `account: (req: Request) => req.user.id`.
 *
 * - `meter` (required), `account(req)` (required)
 * - `cost`: the default of `@Credits()` written without a cost (@default 1)
 * - `shouldCharge(req, res)` (@default status < 400), `ttlMs` (@default 60_000)
 * - `headers` (@default true: `X-Credits-Cost`, `X-Credits-Remaining`), `standardHeaders`
 *   (@default false: the IETF `RateLimit-Policy` / `RateLimit` fields)
 * - `onInsufficient(error, req, res)`, `failMode` (@default 'closed'), `skip(req)`,
 *   `onError(error, req)`, `onAbort` (@default 'release')
 * - pay as you stream: `topUp` (@default 0: off), `onAbort: 'used'`; the handler calls
 *   `credits.use(n)` and watches `credits.signal` (docs/streaming.md)
 * - `exceptionFilter` (@default true): register {@link CreditsExceptionFilter} globally
 */
export interface TollgateModuleOptions<Req = HttpRequest, Res = unknown>
  extends Omit<MeteringOptions<Req, Res>, 'onInsufficient'> {
  /** The meter whose credits the routes spend. Required. @example createMeter({ store }) */
  meter: Meter
  /**
   * Called when the account cannot pay, before the refusal is thrown. Throw your own exception
   * from it to replace the `CreditsRefusedException` (a 402 of your own making, say); when it
   * returns, the refusal is thrown as usual.
   */
  onInsufficient?: (error: InsufficientCreditsError, req: Req, res: Res) => Awaitable<void>
  /**
   * Register {@link CreditsExceptionFilter} as a global filter, so that a refusal nobody else
   * handles is answered as `application/problem+json` on both platforms. `false` when your own
   * filters answer every `CreditsRefusedException`.
   * @default true
   */
  exceptionFilter?: boolean
}

/**
 * Options of `TollgateModule.forRootAsync()`: a factory for the options, run by Nest's injector
 * with `inject` from `imports`, as `ConfigModule`-based setups need.
 */
export interface TollgateModuleAsyncOptions<Req = HttpRequest, Res = unknown> {
  /** Modules that export what `inject` names. */
  imports?: ModuleMetadata['imports']
  /** Providers handed to `useFactory`, in order. */
  inject?: (InjectionToken | OptionalFactoryDependency)[]
  /** Builds the options. @example (config: ConfigService) => ({ meter, account }) */
  useFactory: (
    ...args: never[]
  ) => Awaitable<Omit<TollgateModuleOptions<Req, Res>, 'exceptionFilter'>>
  /**
   * Given here rather than by the factory, since it decides which providers the module has.
   * @default true
   */
  exceptionFilter?: boolean
}

/** Injects the options the module was given (the factory's result under `forRootAsync`). */
export const TOLLGATE_OPTIONS = Symbol.for('tollgate.nestjs.options')

/**
 * Injects the module's meter, for routes that read balances or grant credits:
 * `constructor(@Inject(TOLLGATE_METER) private readonly meter: Meter) {}`.
 */
export const TOLLGATE_METER = Symbol.for('tollgate.nestjs.meter')
