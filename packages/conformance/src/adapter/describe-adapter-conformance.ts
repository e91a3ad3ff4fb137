/**
 * `describeAdapterConformance`: the middleware contract of DESIGN section 3 as one vitest suite
 * every framework adapter runs over real HTTP, the way every store runs the store suite.
 */
import { describe, it } from 'vitest'
import {
  ADAPTER_TESTS,
  type AdapterConformanceOptions,
  type AdapterSkip,
  type AdapterTestName,
} from './contract.js'
import { ADAPTER_TEST_BODIES } from './tests.js'

/** Long enough for the stream test (a few heartbeats) on a loaded machine. */
const TEST_TIMEOUT_MS = 20_000

/**
 * The skips by test name, after checking them: each names tests of the suite, gives a reason,
 * and no test is skipped twice. A skip that names a test the suite does not have (renamed,
 * removed, mistyped) throws, so a skip list cannot outlive what it skips.
 */
function skipsByTest(skips: readonly AdapterSkip[]): Map<string, string> {
  const known = new Set<string>(ADAPTER_TESTS)
  const byTest = new Map<string, string>()
  for (const skip of skips) {
    if (typeof skip.reason !== 'string' || skip.reason.trim() === '') {
      throw new Error('describeAdapterConformance: every skip needs a reason')
    }
    if (!Array.isArray(skip.tests) || skip.tests.length === 0) {
      throw new Error(`describeAdapterConformance: the skip "${skip.reason}" names no tests`)
    }
    for (const test of skip.tests) {
      if (!known.has(test)) {
        throw new Error(`describeAdapterConformance: skip names an unknown test "${test}"`)
      }
      if (byTest.has(test)) {
        throw new Error(`describeAdapterConformance: "${test}" is skipped twice`)
      }
      byTest.set(test, skip.reason)
    }
  }
  return byTest
}

/**
 * Registers the adapter suite: one test per promise of DESIGN section 3, each against the
 * adapter mounted afresh by `mount` on a real HTTP server, requests sent with `fetch`. Reserve
 * before the handler, commit the actual cost, release on an error status, a thrown error and a
 * client abort, streams settled at their end and kept alive past their TTL, 402 problem+json
 * with both credit headers, `failMode`, `skip`, cost functions, and 200 concurrent requests on
 * 50 credits. Test names are stable ({@link ADAPTER_TESTS}); a test that does not apply to an
 * adapter is skipped by name with a reason, and a skip naming an unknown test throws here.
 * @example
 * describeAdapterConformance({
 *   name: '@tollgate/express',
 *   async mount({ meter, options, routes, stream }) {
 *     const app = express()
 *     app.use(metered(meter, options((req: Request) => ({ header: (n) => req.get(n) }))))
 *     for (const [path, route] of Object.entries(routes)) {
 *       app.get(path, async (req, res) => {
 *         const reply = await route(req.credits ?? null)
 *         res.status(reply.status).type('text').send(reply.body)
 *       })
 *     }
 *     app.get('/stream', (req, res) => {
 *       pipeline(Readable.from(stream(req.credits ?? null)), res.type('text'), () => {})
 *     })
 *     return listen(app)
 *   },
 * })
 */
export function describeAdapterConformance(options: AdapterConformanceOptions): void {
  const skips = skipsByTest(options.skip ?? [])
  describe(`adapter conformance: ${options.name}`, () => {
    for (const name of ADAPTER_TESTS) {
      const reason = skips.get(name)
      if (reason !== undefined) {
        it(name, (ctx) => ctx.skip(reason))
        continue
      }
      it(name, () => ADAPTER_TEST_BODIES[name as AdapterTestName](options), TEST_TIMEOUT_MS)
    }
  })
}
