/**
 * The adapter suite's tests: DESIGN section 3 checked over real HTTP against whatever the
 * adapter mounted. Each test sets up its own run (meter, routes, server) through `start`.
 */
import { isTollgateError, PROBLEM_CONTENT_TYPE } from '@tollgate/core'
import { expect } from 'vitest'
import { sleep } from '../testing/async.js'
import { ledgerOldestFirst } from '../testing/ledger.js'
import type { AdapterConformanceOptions, AdapterTestName } from './contract.js'
import { ACCOUNT, type Run, readUntil, start } from './harness.js'

type Test = (adapter: AdapterConformanceOptions) => Promise<void>

const COST = 'x-credits-cost'
const REMAINING = 'x-credits-remaining'

/** The credit headers of a response, as one object to compare. */
function creditHeaders(res: Response, names: [string, string] = [COST, REMAINING]) {
  return { cost: res.headers.get(names[0]), remaining: res.headers.get(names[1]) }
}

/** The IETF RateLimit fields of a response (draft-ietf-httpapi-ratelimit-headers). */
function rateLimitFields(res: Response) {
  return { policy: res.headers.get('ratelimit-policy'), limit: res.headers.get('ratelimit') }
}

/** The problem+json body of a response, after checking its media type and length. */
async function problemOf(res: Response): Promise<Record<string, unknown>> {
  expect(res.headers.get('content-type')).toBe(PROBLEM_CONTENT_TYPE)
  const text = await res.text()
  expect(Number(res.headers.get('content-length'))).toBe(Buffer.byteLength(text))
  return JSON.parse(text) as Record<string, unknown>
}

/** A GET whose body is read (so the connection is free again); returns status and headers. */
async function fetched(run: Run, path: string, headers: Record<string, string> = {}) {
  const res = await run.get(path, headers)
  await res.arrayBuffer()
  return res
}

/** A request to `path` the client abandons once the handler has started. */
async function abandon(run: Run, path: '/slow'): Promise<void> {
  const aborter = new AbortController()
  const pending = run.get(path, {}, aborter.signal)
  // Observe the rejection now, so it is never unhandled while we wait for the handler.
  const outcome = pending.then(
    () => 'answered',
    () => 'aborted',
  )
  await run.entered.promise
  expect((await run.balance()).held).toBe(run.seen.credits?.cost)
  aborter.abort()
  expect(await outcome).toBe('aborted')
}

/** Opens `/stream` and reads it until the first chunk arrived. */
async function openStream(run: Run, signal?: AbortSignal) {
  run.chunks.push('chunk-1')
  const res = await run.get('/stream', {}, signal)
  expect(res.status).toBe(200)
  const reader = res.body!.getReader()
  const sofar = { text: '' }
  await readUntil(reader, sofar, 'chunk-1')
  return { res, reader, sofar }
}

export const ADAPTER_TEST_BODIES: Record<AdapterTestName, Test> = {
  async 'reserves before the handler, which sees its hold'(adapter) {
    const run = await start(adapter, { options: { cost: 3 } })
    const res = await fetched(run, '/ok')
    expect(res.status).toBe(200)
    expect(run.seen.credits).toMatchObject({ account: ACCOUNT, cost: 3, actual: 3 })
    expect(run.seen.credits?.hold).not.toBeNull()
    // Held while the handler ran: the reserve came first.
    expect(run.seen.heldDuring).toBe(3)
    expect((await run.settled({ commits: 1 })).total).toBe(97)
    expect(await run.types()).toEqual(['grant', 'hold', 'commit'])
  },

  async 'commits the actual cost the handler set'(adapter) {
    const run = await start(adapter, { options: { cost: 10 } })
    run.control.actual = 4
    expect((await fetched(run, '/actual')).status).toBe(200)
    expect((await run.settled({ commits: 1 })).total).toBe(96)
    expect((await ledgerOldestFirst(run.meter, ACCOUNT)).at(-1)?.delta).toBe(-4)
  },

  async 'an actual cost above the hold follows the overage policy'(adapter) {
    // The meter's default policy, clamp: the hold plus what is available, no debt.
    const run = await start(adapter, { grant: 12, options: { cost: 10 } })
    run.control.actual = 15
    expect((await fetched(run, '/actual')).status).toBe(200)
    expect(await run.settled({ commits: 1 })).toMatchObject({ total: 0, debt: 0 })
  },

  async 'releases on an error status'(adapter) {
    const run = await start(adapter, { options: { cost: 3 } })
    const statuses = [400, 404, 500]
    for (const [i, status] of statuses.entries()) {
      run.control.failStatus = status
      expect((await fetched(run, '/fail')).status).toBe(status)
      expect((await run.settled({ releases: i + 1 })).total).toBe(100)
    }
  },

  async 'releases when the handler throws'(adapter) {
    const run = await start(adapter, { options: { cost: 3 } })
    expect((await fetched(run, '/throw')).status).toBe(500)
    expect(run.seen.calls['/throw']).toBe(1)
    expect((await run.settled({ releases: 1 })).total).toBe(100)
  },

  async 'releases when the client aborts mid-request'(adapter) {
    const run = await start(adapter, { options: { cost: 3 } })
    await abandon(run, '/slow')
    expect((await run.settled({ releases: 1 })).total).toBe(100)
  },

  async "onAbort 'commit' charges an abandoned request its actual cost"(adapter) {
    const run = await start(adapter, { options: { cost: 10, onAbort: 'commit' } })
    run.control.actual = 4
    await abandon(run, '/slow')
    expect((await run.settled({ commits: 1 })).total).toBe(96)
  },

  async 'a stream settles when it ends, its hold extended past the TTL while it runs'(adapter) {
    const ttlMs = 1_000
    const run = await start(adapter, { options: { cost: 30, ttlMs } })
    const { reader, sofar } = await openStream(run)
    // The meter's clock moves while the stream runs, 0.6 TTL at a time: 1.8 TTL in all, so the
    // hold lapses unless the heartbeat extends it, which it does once per step.
    for (let step = 1; step <= 3; step++) {
      run.advance(0.6 * ttlMs)
      await run.waitFor(() => expect(run.extends).toBeGreaterThanOrEqual(step))
      run.chunks.push(`chunk-${step + 1}`)
      await readUntil(reader, sofar, `chunk-${step + 1}`)
    }
    expect((await run.balance()).held).toBe(30)
    run.chunks.end()
    await readUntil(reader, sofar, 'chunk-4')
    while (!(await reader.read()).done) {
      // Drain to the end of the response: the stream settles when it has been sent.
    }
    // Four chunks at 5 credits each, committed once when the stream ended.
    expect((await run.settled({ commits: 1 })).total).toBe(80)
    expect(await run.types()).toEqual(['grant', 'hold', 'commit'])
    expect(run.errors).toEqual([])
  },

  async 'a stream the client abandons is released'(adapter) {
    const run = await start(adapter, { options: { cost: 30 } })
    const aborter = new AbortController()
    const { reader } = await openStream(run, aborter.signal)
    expect((await run.balance()).held).toBe(30)
    aborter.abort()
    await reader.read().catch(() => undefined)
    expect((await run.settled({ releases: 1 })).total).toBe(100)
  },

  async 'refuses with 402 when the account cannot pay, without running the handler'(adapter) {
    const run = await start(adapter, { grant: 2, options: { cost: 5 } })
    expect((await fetched(run, '/ok')).status).toBe(402)
    expect(run.seen.calls['/ok']).toBe(0)
    expect(await run.types()).toEqual(['grant'])
    expect((await run.balance()).held).toBe(0)
  },

  async 'the 402 is problem+json with both credit headers and no Retry-After'(adapter) {
    const run = await start(adapter, { grant: 2, options: { cost: 5 } })
    const res = await run.get('/ok')
    expect(res.status).toBe(402)
    expect(await problemOf(res)).toMatchObject({
      type: 'https://tollgate.dev/problems/insufficient-credits',
      title: 'Insufficient credits',
      status: 402,
      detail: expect.any(String),
      account: ACCOUNT,
      required: 5,
      available: 2,
    })
    expect(creditHeaders(res)).toEqual({ cost: '5', remaining: '2' })
    expect(res.headers.get('retry-after')).toBeNull()
  },

  async 'sets both credit headers on every metered response'(adapter) {
    const run = await start(adapter, { options: { cost: 3 } })
    // Remaining is what the account has available once this request's cost is held; each
    // request settles before the next, so the figures do not depend on timing.
    expect(creditHeaders(await fetched(run, '/ok'))).toEqual({ cost: '3', remaining: '97' })
    await run.settled({ commits: 1 })
    expect(creditHeaders(await fetched(run, '/fail'))).toEqual({ cost: '3', remaining: '94' })
    await run.settled({ commits: 1, releases: 1 })
    expect(creditHeaders(await fetched(run, '/actual'))).toEqual({ cost: '3', remaining: '94' })
    await run.settled({ commits: 2, releases: 1 })
    run.chunks.end()
    expect(creditHeaders(await fetched(run, '/stream'))).toEqual({ cost: '3', remaining: '91' })
    await run.settled({ commits: 3, releases: 1 })
    const free = await start(adapter, { options: { cost: 0 } })
    expect(creditHeaders(await fetched(free, '/ok'))).toEqual({ cost: '0', remaining: '100' })
  },

  async 'credit headers take other names, or none'(adapter) {
    const headers = { cost: 'X-Price', remaining: 'X-Left' }
    const named = await start(adapter, { options: { cost: 2, headers } })
    const res = await fetched(named, '/ok')
    expect(creditHeaders(res, ['x-price', 'x-left'])).toEqual({ cost: '2', remaining: '98' })
    expect(creditHeaders(res)).toEqual({ cost: null, remaining: null })
    const none = await start(adapter, { options: { cost: 2, headers: false } })
    const bare = await fetched(none, '/ok')
    expect(bare.status).toBe(200)
    expect(creditHeaders(bare)).toEqual({ cost: null, remaining: null })
    await none.settled({ commits: 1 })
  },

  async 'standardHeaders adds the RateLimit fields: the account credits as quota, available as r'(
    adapter,
  ) {
    // Off unless asked.
    const plain = await start(adapter, { options: { cost: 3 } })
    expect(rateLimitFields(await fetched(plain, '/ok'))).toEqual({ policy: null, limit: null })
    await plain.settled({ commits: 1 })
    // Beside the credit headers: q is the account's credits (the held 3 included), r what is
    // available after the reserve.
    const run = await start(adapter, { options: { cost: 3, standardHeaders: true } })
    const first = await fetched(run, '/ok')
    expect(creditHeaders(first)).toEqual({ cost: '3', remaining: '97' })
    expect(rateLimitFields(first)).toEqual({
      policy: '"credits";q=100',
      limit: '"credits";r=97',
    })
    await run.settled({ commits: 1 })
    expect(rateLimitFields(await fetched(run, '/ok'))).toEqual({
      policy: '"credits";q=97',
      limit: '"credits";r=94',
    })
    await run.settled({ commits: 2 })
    // Instead of them, under a policy name of the app's.
    const options = { cost: 2, headers: false, standardHeaders: { policy: 'prepaid' } }
    const alone = await start(adapter, { options })
    const res = await fetched(alone, '/ok')
    expect(res.status).toBe(200)
    expect(creditHeaders(res)).toEqual({ cost: null, remaining: null })
    expect(rateLimitFields(res)).toEqual({
      policy: '"prepaid";q=100',
      limit: '"prepaid";r=98',
    })
    await alone.settled({ commits: 1 })
  },

  async 'the 402 carries RateLimit with what was available when standardHeaders is on'(adapter) {
    const run = await start(adapter, { grant: 2, options: { cost: 5, standardHeaders: true } })
    const res = await fetched(run, '/ok')
    expect(res.status).toBe(402)
    expect(creditHeaders(res)).toEqual({ cost: '5', remaining: '2' })
    // A refusal learns what was available, not the account's total: no RateLimit-Policy.
    expect(rateLimitFields(res)).toEqual({ policy: null, limit: '"credits";r=2' })
    expect(run.seen.calls['/ok']).toBe(0)
  },

  async 'an invalid account or cost from the request is a 400, without running the handler'(
    adapter,
  ) {
    const cost = (req: { header(name: string): string | undefined }) =>
      Number(req.header('x-cost') ?? 1)
    const run = await start(adapter, { options: { cost } })
    // No account: the account function answers ''.
    const anonymous = await fetch(`${run.url}/ok`)
    await anonymous.arrayBuffer()
    expect(anonymous.status).toBe(400)
    expect((await fetched(run, '/ok', { 'x-cost': '-3' })).status).toBe(400)
    expect((await fetched(run, '/ok', { 'x-cost': '1.5' })).status).toBe(400)
    expect(run.seen.calls['/ok']).toBe(0)
    expect(await run.types()).toEqual(['grant'])
  },

  async 'the 400 is problem+json naming the field'(adapter) {
    const cost = (req: { header(name: string): string | undefined }) =>
      Number(req.header('x-cost') ?? 1)
    const run = await start(adapter, { options: { cost } })
    const anonymous = await fetch(`${run.url}/ok`)
    expect(anonymous.status).toBe(400)
    expect(await problemOf(anonymous)).toMatchObject({
      status: 400,
      code: 'invalid_input',
      field: 'account',
    })
    const negative = await run.get('/ok', { 'x-cost': '-3' })
    expect(await problemOf(negative)).toMatchObject({
      status: 400,
      code: 'invalid_input',
      field: expect.any(String),
    })
  },

  async "failMode 'closed': a store that is down is a 503, without running the handler"(adapter) {
    const run = await start(adapter, { down: true })
    expect((await fetched(run, '/ok')).status).toBe(503)
    expect(run.seen.calls['/ok']).toBe(0)
  },

  async "failMode 'closed': the 503 is problem+json"(adapter) {
    const run = await start(adapter, { down: true, options: { failMode: 'closed' } })
    const res = await run.get('/ok')
    expect(res.status).toBe(503)
    expect(await problemOf(res)).toMatchObject({ status: 503, code: 'store_unavailable' })
  },

  async "failMode 'open': a store that is down serves the request unmetered"(adapter) {
    const run = await start(adapter, { down: true, options: { failMode: 'open' } })
    const res = await fetched(run, '/ok')
    expect(res.status).toBe(200)
    expect(run.seen.credits).toBeNull()
    expect(creditHeaders(res)).toEqual({ cost: null, remaining: null })
    expect(run.errors).toHaveLength(1)
    expect(isTollgateError(run.errors[0], 'store_unavailable')).toBe(true)
  },

  async 'skip serves the request unmetered'(adapter) {
    const skip = (req: { header(name: string): string | undefined }) =>
      req.header('x-skip') === 'yes'
    // Too few credits to pay: only skipping lets the request through.
    const run = await start(adapter, { grant: 1, options: { cost: 5, skip } })
    const res = await fetched(run, '/ok', { 'x-skip': 'yes' })
    expect(res.status).toBe(200)
    expect(run.seen.credits).toBeNull()
    expect(creditHeaders(res)).toEqual({ cost: null, remaining: null })
    expect((await fetched(run, '/ok')).status).toBe(402)
    expect(await run.types()).toEqual(['grant'])
  },

  async 'cost as a sync function of the request'(adapter) {
    const cost = (req: { header(name: string): string | undefined }) => Number(req.header('x-cost'))
    const run = await start(adapter, { options: { cost } })
    expect((await fetched(run, '/ok', { 'x-cost': '7' })).status).toBe(200)
    expect(run.seen.credits?.cost).toBe(7)
    expect((await run.settled({ commits: 1 })).total).toBe(93)
  },

  async 'cost as an async function of the request'(adapter) {
    const cost = async (req: { header(name: string): string | undefined }) => {
      await sleep(1)
      return Number(req.header('x-cost'))
    }
    const run = await start(adapter, { options: { cost } })
    expect((await fetched(run, '/ok', { 'x-cost': '8' })).status).toBe(200)
    expect(run.seen.credits?.cost).toBe(8)
    expect((await run.settled({ commits: 1 })).total).toBe(92)
  },

  async 'a cost of 0 reserves nothing'(adapter) {
    const run = await start(adapter, { options: { cost: 0 } })
    expect((await fetched(run, '/ok')).status).toBe(200)
    expect(run.seen.credits).toMatchObject({ account: ACCOUNT, cost: 0, hold: null })
    expect(run.seen.credits?.balance?.available).toBe(100)
    expect(await run.types()).toEqual(['grant'])
  },

  async '200 concurrent requests on 50 credits serve exactly 50'(adapter) {
    const run = await start(adapter, { grant: 50, options: { cost: 1 } })
    const statuses = await Promise.all(
      Array.from({ length: 200 }, async () => (await fetched(run, '/ok')).status),
    )
    expect(statuses.filter((s) => s === 200)).toHaveLength(50)
    expect(statuses.filter((s) => s === 402)).toHaveLength(150)
    expect(run.seen.calls['/ok']).toBe(50)
    const balance = await run.settled({ commits: 50 })
    expect(balance).toMatchObject({ total: 0, available: 0, held: 0 })
  },

  async 'a stream that outgrows its hold tops up and finishes'(adapter) {
    const run = await start(adapter, { grant: 1_000, options: { cost: 10, topUp: 20 } })
    // 50 chunks at 2 credits: 100 credits through a hold of 10, grown 20 at a time.
    Object.assign(run.control, { paid: true, perChunk: 2, generate: 50 })
    const res = await run.get('/stream')
    expect(res.status).toBe(200)
    const text = await res.text()
    expect(served(text)).toBe(50)
    expect(text).not.toContain('event: error')
    expect((await run.settled({ commits: 1 })).total).toBe(900)
    // The reserve, then the top-ups (each a `hold` entry), then one commit.
    const holds = (await run.types()).filter((t) => t === 'hold').length
    expect(holds).toBeGreaterThanOrEqual(1 + Math.ceil((100 - 10) / 20))
    expect(run.seen.credits?.used).toBe(100)
    expect(run.errors).toEqual([])
  },

  async 'an account that runs dry mid-stream stops within one block, charged exactly what was served'(
    adapter,
  ) {
    const block = 10
    const run = await start(adapter, { grant: 100, options: { cost: 10, topUp: block } })
    Object.assign(run.control, { paid: true, perChunk: 3, generate: 1_000 })
    const res = await run.get('/stream')
    expect(res.status).toBe(200)
    const text = await res.text()
    const n = served(text)
    // It stopped in-band, with the problem, within one block of the account's last credit.
    expect(problemEvent(text)).toMatchObject({ status: 402, account: ACCOUNT, required: 3 })
    expect(3 * n).toBeLessThanOrEqual(100)
    expect(100 - 3 * n).toBeLessThan(block)
    const balance = await run.settled({ commits: 1 })
    expect(balance).toMatchObject({ total: 100 - 3 * n, debt: 0 })
    expect(run.seen.credits?.used).toBe(3 * n)
  },

  async 'three concurrent streams on one account never serve more than it holds'(adapter) {
    const block = 10
    const run = await start(adapter, { grant: 100, options: { cost: 10, topUp: block } })
    Object.assign(run.control, { paid: true, perChunk: 1, generate: 1_000 })
    const texts = await Promise.all(
      [1, 2, 3].map(async () => {
        const res = await run.get('/stream')
        expect(res.status).toBe(200)
        return res.text()
      }),
    )
    const each = texts.map(served)
    const total = each.reduce((a, b) => a + b, 0)
    expect(total).toBeLessThanOrEqual(100)
    // Each stopped in-band once the account could pay no more, within a block of its end.
    for (const text of texts) expect(problemEvent(text)).toMatchObject({ status: 402 })
    expect(100 - total).toBeLessThanOrEqual(3 * block)
    // Charged exactly what was served, never overdrawn.
    const balance = await run.settled({ commits: 3 })
    expect(balance).toMatchObject({ total: 100 - total, debt: 0 })
  },

  async "a client that disconnects under onAbort 'used' pays what it was served"(adapter) {
    const run = await start(adapter, { options: { cost: 10, topUp: 10, onAbort: 'used' } })
    Object.assign(run.control, { paid: true, perChunk: 5 })
    const aborter = new AbortController()
    const { reader, sofar } = await openStream(run, aborter.signal)
    for (let i = 2; i <= 5; i++) {
      run.chunks.push(`chunk-${i}`)
      await readUntil(reader, sofar, `chunk-${i}`)
    }
    // Five chunks at 5 credits served through a hold of 10 that grew as they went.
    expect((await run.balance()).held).toBeGreaterThanOrEqual(25)
    aborter.abort()
    await reader.read().catch(() => undefined)
    expect((await run.settled({ commits: 1 })).total).toBe(75)
    expect(run.seen.credits?.used).toBe(25)
  },
}

/** How many `data: chunk-<i>` events a paying stream served. */
function served(text: string): number {
  return text.match(/data: chunk-\d+/g)?.length ?? 0
}

/**
 * The problem an SSE `event: error` of a paying stream carries. An adapter that frames each
 * chunk as JSON of its own (tRPC's SSE) escapes it: read it unescaped.
 */
function problemEvent(text: string): Record<string, unknown> {
  const plain = text.replaceAll('\\n', '\n').replaceAll('\\"', '"')
  const match = /event: error\ndata: (.*)\n\n/.exec(plain)
  if (match === null) throw new Error(`no error event in the stream: ${text.slice(-200)}`)
  return JSON.parse(match[1]!) as Record<string, unknown>
}
