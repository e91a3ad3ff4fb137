/**
 * The adapter suite against the smallest adapter there is: plain `node:http` over
 * `@tollgate/core/metering` and its Node-response helpers. It checks the suite itself (every
 * test can pass) and shows what a new adapter maps; the framework adapters run the same suite.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import {
  createRequestMeter,
  setCreditHeaders,
  settleOnResponseEnd,
  writeRefusal,
} from '@tollgate/core/metering'
import { describe, expect, it } from 'vitest'
import { listen } from '../testing/http.js'
import { ADAPTER_TESTS, type AdapterTestName, type SuitePath } from './contract.js'
import { describeAdapterConformance } from './describe-adapter-conformance.js'

describeAdapterConformance({
  name: 'node:http',
  async mount({ meter, options, routes, stream }) {
    const header = (req: IncomingMessage, name: string) => {
      const value = req.headers[name.toLowerCase()]
      return Array.isArray(value) ? value[0] : value
    }
    const rm = createRequestMeter<IncomingMessage, ServerResponse>(
      meter,
      options((req: IncomingMessage) => ({ header: (name) => header(req, name) })),
      { adapter: 'node:http', shouldCharge: (_req, res) => res.statusCode < 400 },
    )
    return listen(async (req, res) => {
      const call = rm.start(req)
      settleOnResponseEnd(call, res, res)
      const admission = await call.admit()
      if (admission.type === 'refused') return writeRefusal(res, admission, rm.options.headers)
      if (admission.type === 'finished') return
      const credits = admission.type === 'admitted' ? admission.credits : null
      if (credits !== null) setCreditHeaders(res, rm.options.headers, credits)
      res.setHeader('Content-Type', 'text/plain')
      if (req.url === '/stream') {
        await pipeline(Readable.from(stream(credits)), res).catch(() => {})
        return
      }
      try {
        const reply = await routes[req.url as SuitePath](credits)
        res.statusCode = reply.status
        res.end(reply.body)
      } catch {
        res.statusCode = 500
        res.end('the handler threw')
      }
    })
  },
})

describe('describeAdapterConformance skips', () => {
  const mount = () => Promise.reject(new Error('not mounted'))

  it('fail on a test the suite does not have, so they cannot rot', () => {
    const tests = ['releases on error'] as unknown as AdapterTestName[]
    expect(() =>
      describeAdapterConformance({ name: 'x', mount, skip: [{ reason: 'renamed', tests }] }),
    ).toThrow('unknown test "releases on error"')
  })

  it('need a reason and at least one test, each skipped once', () => {
    const test = ADAPTER_TESTS[0]
    expect(() =>
      describeAdapterConformance({ name: 'x', mount, skip: [{ reason: ' ', tests: [test] }] }),
    ).toThrow('needs a reason')
    expect(() =>
      describeAdapterConformance({ name: 'x', mount, skip: [{ reason: 'r', tests: [] }] }),
    ).toThrow('names no tests')
    expect(() =>
      describeAdapterConformance({
        name: 'x',
        mount,
        skip: [
          { reason: 'a', tests: [test] },
          { reason: 'b', tests: [test] },
        ],
      }),
    ).toThrow('skipped twice')
  })
})
