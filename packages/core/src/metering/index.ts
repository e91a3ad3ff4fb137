/**
 * `@tollgate/core/metering`: the request-metering kit every framework adapter builds on
 * (DESIGN section 3: options, reserve before the handler, settle exactly once, heartbeats,
 * refusals as problem+json), and the Node-response helpers the adapters over `http.ServerResponse`
 * share (settle when the response ends or aborts, credit headers, problem+json refusals).
 * Imported by `@tollgate/express`, `/koa`, `/trpc`, `/decorators` and every new adapter; apps
 * use the adapters instead.
 */
export { PROBLEM_CONTENT_TYPE, type ProblemDetails, problemDetails } from '../protocol/problem.js'
export {
  type CreditHeaderNames,
  creditHeaderFields,
  DEFAULT_RATE_LIMIT_POLICY,
  resolveCreditHeaders,
} from './credit-headers.js'
export {
  type Admission,
  type Awaitable,
  createRequestMeter,
  type FinishReason,
  MeteredRequest,
  type MeteringDefaults,
  type MeteringOptions,
  type RefusedCredits,
  type RequestCredits,
  RequestMeter,
  type ResolvedMeteringOptions,
  resolveMeteringOptions,
} from './metering.js'
export {
  type Refusal,
  refusalHeaders,
  setCreditHeaders,
  settleOnResponseEnd,
  writeProblem,
  writeRefusal,
} from './node-response.js'
