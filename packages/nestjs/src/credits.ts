/**
 * `@Credits()` prices a controller or a route; `@CurrentCredits()` hands the route its credits.
 * `@Credits` only records metadata on the class or on the method's function, where Nest's own
 * route decorators (`@Get`, `@Post`, `@Sse`) keep theirs: no wrapper, so the order in which
 * they are written does not matter.
 */
import {
  type CustomDecorator,
  createParamDecorator,
  type ExecutionContext,
  SetMetadata,
} from '@nestjs/common'
import { InvalidInputError } from '@tollgate/core'
import type { Awaitable, RequestCredits } from '@tollgate/core/metering'
import { checkRoute, warnUnknownOption } from './metering.js'

/** The metadata key `@Credits` writes and the interceptor reads. */
export const CREDITS_METADATA = 'tollgate:credits'

/** A route's price: a number of credits, or a function of the execution context (sync or async). */
export type CreditsCost = number | ((context: ExecutionContext) => Awaitable<number>)

/** What one controller or route may change of the module's options. */
export interface CreditsOptions {
  /**
   * The account to charge for these routes, instead of the module's `account(req)`.
   * @example (ctx) => ctx.switchToHttp().getRequest().headers['x-team']
   */
  account?: (context: ExecutionContext) => Awaitable<string>
  /** Hold TTL for these routes (1 s–24 h); a request still running is extended. @default the module's */
  ttlMs?: number
  /** What a request the client abandons pays. @default the module's ('release') */
  onAbort?: 'release' | 'commit' | 'used'
  /**
   * Pay as you stream: the block by which the hold of these routes grows (see the module's
   * `topUp`). @default the module's (0: off)
   * @example @Credits(100, { topUp: 100 })
   */
  topUp?: number
  /** The ledger unreachable: 503 (`'closed'`) or serve unmetered (`'open'`). @default the module's */
  failMode?: 'closed' | 'open'
}

/** What `@Credits` records. @internal */
export interface CreditsSpec {
  readonly cost: CreditsCost | undefined
  readonly options: Readonly<CreditsOptions>
}

const ROUTE_KEYS = new Set(['account', 'ttlMs', 'onAbort', 'failMode', 'topUp'])

/**
 * Meters a route, or every route of a controller: the cost is reserved before the handler runs
 * (after guards, so `account` may read what an auth guard put on the request) and settled when
 * the response has been sent: committed (`credits.actual`, the cost unless the handler changed
 * it) for a status below 400, released for an error status, a thrown error or a client that
 * went away. Observables, `@Sse()` streams and `StreamableFile`s settle when they end, their
 * hold extended while they run. A method's `@Credits` replaces its controller's; `@Credits(false)`
 * leaves a route of a metered controller free. Written above or below `@Get()`/`@Post()`/`@Sse()`,
 * alike. Needs `TollgateModule.forRoot()` in the app.
 *
 * @param cost Credits to reserve, or `(ctx) => credits`. @default the module's `cost` (1)
 * @example
 * \@Controller('completions')
 * export class CompletionsController {
 *   \@Post()
 *   \@Credits((ctx) => ctx.switchToHttp().getRequest().body.maxTokens)
 *   async complete(\@Body() body: Prompt, \@CurrentCredits() credits: RequestCredits | null) {
 *     const answer = await this.model.complete(body)
 *     if (credits) credits.actual = answer.usage.totalTokens
 *     return answer
 *   }
 * }
 */
export function Credits(
  cost?: CreditsCost | false,
  options: CreditsOptions = {},
): CustomDecorator<string> {
  if (cost === false) return SetMetadata(CREDITS_METADATA, false)
  if (typeof options !== 'object' || options === null) {
    throw new InvalidInputError('options', '@Credits(cost, options) takes an options object')
  }
  const kept: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(options)) {
    if (ROUTE_KEYS.has(key)) kept[key] = value
    else {
      warnUnknownOption(`@tollgate/nestjs @Credits(): unknown option "${key}" is ignored`)
    }
  }
  const spec: CreditsSpec = Object.freeze({ cost, options: Object.freeze(kept) })
  // A mistake (a negative cost, a TTL out of range) fails when the class is defined.
  checkRoute(spec)
  return SetMetadata(CREDITS_METADATA, spec)
}

/**
 * The route's credits, as a handler parameter: `account`, the reserved `cost`, the `hold`, the
 * `balance` after the reserve, and `actual`, what the request is charged when it succeeds (set
 * it to charge what the work really cost). `null` on a route that is not metered, and on a
 * metered one served unmetered (`skip`, or `failMode: 'open'` with the ledger down).
 * @example
 * \@Get('report')
 * \@Credits(10)
 * async report(\@CurrentCredits() credits: RequestCredits | null) {
 *   const rows = await this.reports.build()
 *   if (credits) credits.actual = Math.ceil(rows.length / 100)
 *   return rows
 * }
 */
export const CurrentCredits: () => ParameterDecorator = createParamDecorator(
  (_data: unknown, context: ExecutionContext): RequestCredits | null =>
    context.switchToHttp().getRequest<{ credits?: RequestCredits }>().credits ?? null,
)
