/**
 * The contract between the adapter suite and an adapter under test: what `mount` receives (a
 * meter, the options of the test, the routes), what it returns (a base URL and `close`), and
 * the names of the suite's tests, which `skip` entries refer to.
 */
import type { Meter } from '@tollgate/core'
import type { Awaitable, RequestCredits } from '@tollgate/core/metering'

/**
 * Every test of the adapter suite, by its stable name: DESIGN section 3, one test per promise.
 * A `skip` entry names tests from this list; the names do not change without a major version.
 */
export const ADAPTER_TESTS = [
  'reserves before the handler, which sees its hold',
  'commits the actual cost the handler set',
  'an actual cost above the hold follows the overage policy',
  'releases on an error status',
  'releases when the handler throws',
  'releases when the client aborts mid-request',
  "onAbort 'commit' charges an abandoned request its actual cost",
  'a stream settles when it ends, its hold extended past the TTL while it runs',
  'a stream the client abandons is released',
  'refuses with 402 when the account cannot pay, without running the handler',
  'the 402 is problem+json with both credit headers and no Retry-After',
  'sets both credit headers on every metered response',
  'credit headers take other names, or none',
  'standardHeaders adds the RateLimit fields: the account credits as quota, available as r',
  'the 402 carries RateLimit with what was available when standardHeaders is on',
  'an invalid account or cost from the request is a 400, without running the handler',
  'the 400 is problem+json naming the field',
  "failMode 'closed': a store that is down is a 503, without running the handler",
  "failMode 'closed': the 503 is problem+json",
  "failMode 'open': a store that is down serves the request unmetered",
  'skip serves the request unmetered',
  'cost as a sync function of the request',
  'cost as an async function of the request',
  'a cost of 0 reserves nothing',
  '200 concurrent requests on 50 credits serve exactly 50',
  'a stream that outgrows its hold tops up and finishes',
  'an account that runs dry mid-stream stops within one block, charged exactly what was served',
  'three concurrent streams on one account never serve more than it holds',
  "a client that disconnects under onAbort 'used' pays what it was served",
] as const

/** The name of one test of the adapter suite. */
export type AdapterTestName = (typeof ADAPTER_TESTS)[number]

/** What the suite's option callbacks read of a request: its headers. */
export interface SuiteRequest {
  /** A request header by name (any case); undefined when the request has none. */
  header(name: string): string | undefined
}

/** How an adapter shows the suite one of its framework's requests. */
export type RequestView<Req> = (req: Req) => SuiteRequest

/**
 * The metering options of one test, typed for the adapter's own request `Req` (Express's
 * `req`, Koa's `ctx`, tRPC's call options, a decorated method's arguments). Only the options
 * the test sets are present; pass the object to the adapter as it is.
 */
export interface SuiteMeteringOptions<Req> {
  account: (req: Req) => string
  cost?: number | ((req: Req) => Awaitable<number>)
  skip?: (req: Req) => boolean
  ttlMs?: number
  headers?: boolean | { cost: string; remaining: string }
  standardHeaders?: boolean | { policy: string }
  failMode?: 'closed' | 'open'
  /** Takes the error only: every adapter's `onError(error, …)` accepts it. */
  onError?: (error: unknown) => void
  onAbort?: 'release' | 'commit' | 'used'
  topUp?: number
}

/** What a body route answers: a status (200, 400, 404 or 500) and a `text/plain` body. */
export interface SuiteReply {
  status: number
  body: string
}

/**
 * A route of the suite, behind the metering: it gets the credits the handler sees
 * (`req.credits`, `ctx.state.credits`, `ctx.credits`, `currentCredits()`; null when the request
 * is not metered) and answers a {@link SuiteReply}, or throws (`/throw`): let that reach the
 * framework's error handling, as any handler's error would.
 */
export type SuiteRoute = (credits: RequestCredits | null) => Promise<SuiteReply>

/**
 * The streaming route, served at `/stream`: answer 200 and send each string of the iterable as
 * it comes (SSE framing is fine, the suite looks for the strings). Stop reading it when the
 * client goes away. In the pay-as-you-stream tests the iterable calls `credits.use(n)` for each
 * chunk and, once that refuses (`credits.signal` aborted), yields an SSE `event: error` with
 * the problem and ends: the route sends it and ends the response as usual.
 */
export type SuiteStreamRoute = (credits: RequestCredits | null) => AsyncIterable<string>

/** The paths of the body routes, each answered by {@link SuiteRoute}. */
export const SUITE_PATHS = ['/ok', '/actual', '/fail', '/throw', '/slow'] as const

/** One of {@link SUITE_PATHS}. */
export type SuitePath = (typeof SUITE_PATHS)[number]

/** What `mount` receives for one test. */
export interface AdapterMountContext {
  /** The meter to meter with (a fresh memory store or a store that is down, a fake clock). */
  meter: Meter
  /**
   * The metering options of this test, with callbacks over `view(req)`.
   * @example metered(meter, options((req: Request) => ({ header: (name) => req.get(name) })))
   */
  options<Req>(view: RequestView<Req>): SuiteMeteringOptions<Req>
  /** The body routes, by path: serve each with GET behind the metering. */
  routes: Readonly<Record<SuitePath, SuiteRoute>>
  /** The streaming route: serve it with GET at `/stream` behind the metering. */
  stream: SuiteStreamRoute
}

/** A mounted adapter: where the suite sends requests, and how it shuts it down. */
export interface MountedAdapter {
  /** `http://127.0.0.1:<port>` with the routes under it; no trailing slash. */
  url: string
  /** Closes the server, dropping connections still open. */
  close(): Promise<void>
}

/** Tests an adapter does not run, and why. */
export interface AdapterSkip {
  /** Why these tests do not apply to the adapter (shown with each skipped test). */
  reason: string
  /** Names from {@link ADAPTER_TESTS}; an unknown name fails the suite, so skips cannot rot. */
  tests: readonly AdapterTestName[]
}

/** Options of `describeAdapterConformance`. */
export interface AdapterConformanceOptions {
  /** Shown in the suite's name, e.g. `'@tollgate/express'`. */
  name: string
  /**
   * Serves the routes behind the adapter's metering on a real HTTP server (127.0.0.1, port 0).
   * Called once per test.
   */
  mount(context: AdapterMountContext): Promise<MountedAdapter>
  /** Tests that do not apply to this adapter, each group with its reason. @default [] */
  skip?: readonly AdapterSkip[]
}
