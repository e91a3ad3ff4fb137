/**
 * The Node-response helpers on a real `node:http` server: the adapters over
 * `http.ServerResponse` (Express, Koa) rely on them for how a response settles and how a
 * refusal is written, and run the adapter suite on top.
 */
import { once } from 'node:events'
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createMeter, type Meter } from '../meter/meter.js'
import { PROBLEM_CONTENT_TYPE } from '../protocol/problem.js'
import { memoryStore } from '../store/memory-store.js'
import { expectLedgerReplays, fullLedger } from '../test-support.js'
import { type Admission, createRequestMeter, type RequestMeter } from './metering.js'
import {
  type Refusal,
  refusalHeaders,
  setCreditHeaders,
  settleOnResponseEnd,
  writeProblem,
  writeRefusal,
} from './node-response.js'

type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>
const servers: (() => Promise<void>)[] = []

afterEach(async () => {
  for (const close of servers.splice(0)) await close()
})

/** A real server for `handler` on 127.0.0.1, closed after the test. */
async function serve(handler: Handler): Promise<string> {
  const server = createServer((req, res) => void handler(req, res))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  servers.push(async () => {
    server.closeAllConnections()
    server.close()
    await once(server, 'close')
  })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function setup(grant = 100) {
  const meter = createMeter({ store: memoryStore(), cache: false })
  await meter.grant('u', grant)
  const rm = createRequestMeter<IncomingMessage, ServerResponse>(
    meter,
    { account: () => 'u', cost: 3 },
    { adapter: 'test', shouldCharge: (_req, res) => res.statusCode < 400 },
  )
  return { meter, rm }
}

/** Starts metering `req` the way an adapter does: watch the response, then admit. */
async function admit(
  rm: RequestMeter<IncomingMessage, ServerResponse>,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<Admission> {
  const call = rm.start(req)
  settleOnResponseEnd(call, res, res)
  return call.admit()
}

async function types(meter: Meter): Promise<string[]> {
  return (await fullLedger(meter, 'u')).map((e) => e.type)
}

async function settledAs(meter: Meter, type: string, count = 1) {
  await vi.waitFor(
    async () => expect((await types(meter)).filter((t) => t === type)).toHaveLength(count),
    { timeout: 3_000, interval: 10 },
  )
  return expectLedgerReplays(meter, 'u')
}

describe('settleOnResponseEnd', () => {
  it('commits a response sent whole that shouldCharge accepts', async () => {
    const { meter, rm } = await setup()
    const url = await serve(async (req, res) => {
      await admit(rm, req, res)
      res.end('ok')
    })
    expect((await fetch(url)).status).toBe(200)
    expect((await settledAs(meter, 'commit')).total).toBe(97)
  })

  it('releases a response sent whole with an error status', async () => {
    const { meter, rm } = await setup()
    const url = await serve(async (req, res) => {
      await admit(rm, req, res)
      res.statusCode = 500
      res.end()
    })
    expect((await fetch(url)).status).toBe(500)
    expect((await settledAs(meter, 'release')).total).toBe(100)
  })

  it('settles a response closed before it finished as an abort', async () => {
    const { meter, rm } = await setup()
    let started!: () => void
    const inHandler = new Promise<void>((resolve) => {
      started = resolve
    })
    const url = await serve(async (req, res) => {
      await admit(rm, req, res)
      res.write('partial') // started, never finished
      started()
    })
    const aborter = new AbortController()
    const res = await fetch(url, { signal: aborter.signal })
    await inHandler
    expect(res.status).toBe(200)
    aborter.abort()
    expect((await settledAs(meter, 'release')).total).toBe(100)
  })

  it('settles once, however many times the response reports closing', async () => {
    const { meter, rm } = await setup()
    const url = await serve(async (req, res) => {
      await admit(rm, req, res)
      res.on('finish', () => res.emit('close'))
      res.end('ok')
    })
    await (await fetch(url)).text()
    await settledAs(meter, 'commit')
    // Another request after it: had the first settled twice, its second settle would show.
    await (await fetch(url)).text()
    await settledAs(meter, 'commit', 2)
    expect(await types(meter)).toEqual(['grant', 'hold', 'commit', 'hold', 'commit'])
  })

  it('releases a hold made for a client that left while it was being reserved', async () => {
    const { meter, rm } = await setup()
    let admission: Promise<Admission> | undefined
    const url = await serve((req, res) => {
      const call = rm.start(req)
      settleOnResponseEnd(call, res, res)
      // Admission waits for the client to be gone: the early finish must not be lost.
      admission = once(res, 'close').then(() => call.admit())
    })
    const aborter = new AbortController()
    const pending = fetch(url, { signal: aborter.signal }).catch(() => 'aborted')
    await vi.waitFor(() => expect(admission).toBeDefined())
    aborter.abort()
    expect(await pending).toBe('aborted')
    expect(await admission).toEqual({ type: 'finished' })
    expect((await settledAs(meter, 'release')).total).toBe(100)
  })
})

describe('credit headers and refusals', () => {
  const names = { cost: 'X-Credits-Cost', remaining: 'X-Credits-Remaining', policy: null }

  async function refusalFor(grant: number): Promise<Refusal> {
    const { rm } = await setup(grant)
    const admission = await rm.start({} as IncomingMessage).admit()
    if (admission.type !== 'refused') throw new Error(`expected a refusal, got ${admission.type}`)
    return admission
  }

  /** A raw GET, so the test sees the headers exactly as written. */
  async function get(url: string) {
    const req = httpRequest(url)
    req.end()
    const [res] = (await once(req, 'response')) as [IncomingMessage]
    let body = ''
    for await (const chunk of res) body += String(chunk)
    return { status: res.statusCode, headers: res.headers, body }
  }

  it('writeRefusal answers a 402 as problem+json with both credit headers, no Retry-After', async () => {
    const refusal = await refusalFor(2)
    const url = await serve((_req, res) => writeRefusal(res, refusal, names))
    const res = await get(url)
    expect(res.status).toBe(402)
    expect(res.headers).toMatchObject({
      'content-type': PROBLEM_CONTENT_TYPE,
      'content-length': String(Buffer.byteLength(res.body)),
      'x-credits-cost': '3',
      'x-credits-remaining': '2',
    })
    expect(res.headers['retry-after']).toBeUndefined()
    expect(JSON.parse(res.body)).toMatchObject({
      status: 402,
      code: 'insufficient_credits',
      account: 'u',
      required: 3,
      available: 2,
    })
  })

  it('without header names, a refusal carries no credit headers', async () => {
    const refusal = await refusalFor(2)
    expect(refusalHeaders(refusal, null)).toEqual({})
    const url = await serve((_req, res) => writeRefusal(res, refusal, null))
    const res = await get(url)
    expect(res.status).toBe(402)
    expect(res.headers['x-credits-cost']).toBeUndefined()
  })

  it('writeProblem does nothing once the response has started', async () => {
    const refusal = await refusalFor(2)
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' })
      writeProblem(res, refusal.problem)
      res.end('already answered')
    })
    expect(await get(url)).toMatchObject({ status: 200, body: 'already answered' })
  })

  it('setCreditHeaders writes the cost and what is available after the reserve', async () => {
    const { rm } = await setup()
    const url = await serve(async (req, res) => {
      const admission = await rm.start(req).admit()
      if (admission.type !== 'admitted') throw new Error(admission.type)
      setCreditHeaders(res, names, admission.credits)
      setCreditHeaders(res, null, admission.credits) // off: changes nothing
      res.end()
    })
    const res = await get(url)
    expect(res.headers).toMatchObject({ 'x-credits-cost': '3', 'x-credits-remaining': '97' })
    expect(res.headers.ratelimit).toBeUndefined()
  })

  it('with standardHeaders, the RateLimit fields: the account credits as quota, available as r', async () => {
    const { rm } = await setup()
    const standard = { cost: null, remaining: null, policy: 'credits' }
    const url = await serve(async (req, res) => {
      const admission = await rm.start(req).admit()
      if (admission.type !== 'admitted') throw new Error(admission.type)
      setCreditHeaders(res, standard, admission.credits)
      res.end()
    })
    const res = await get(url)
    expect(res.headers['x-credits-cost']).toBeUndefined()
    expect(res.headers['ratelimit-policy']).toBe('"credits";q=100')
    expect(res.headers.ratelimit).toBe('"credits";r=97')
    // A refusal knows what was available, not the account's total: RateLimit alone.
    expect(refusalHeaders(await refusalFor(2), standard)).toEqual({ RateLimit: '"credits";r=2' })
  })
})
