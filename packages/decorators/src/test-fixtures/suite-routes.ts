/**
 * The adapter suite's routes as `@Metered` methods, compiled by the tests in both decorator
 * modes (like `service.ts`) and served over `node:http`. Each method gets the route to run, the
 * request as the suite sees it (what `account`, `cost` and `skip` read) and the request's abort
 * signal; it runs the route with the call's credits.
 */
import type { SuiteReply, SuiteRequest, SuiteRoute, SuiteStreamRoute } from '@tollgate/conformance'
import type { currentCredits as CurrentCredits, MeteredFactory } from '../index.js'

/** The arguments of every suite method: what the shared options read. */
export type SuiteArgs = [route: unknown, req: SuiteRequest, signal: AbortSignal]

export function defineSuiteRoutes(
  Metered: MeteredFactory<SuiteArgs>,
  currentCredits: typeof CurrentCredits,
) {
  class SuiteRoutes {
    @Metered()
    async call(route: SuiteRoute, _req: SuiteRequest, _signal: AbortSignal): Promise<SuiteReply> {
      return route(currentCredits())
    }

    @Metered()
    async *stream(
      route: SuiteStreamRoute,
      _req: SuiteRequest,
      _signal: AbortSignal,
    ): AsyncGenerator<string> {
      yield* route(currentCredits())
    }
  }
  return SuiteRoutes
}
