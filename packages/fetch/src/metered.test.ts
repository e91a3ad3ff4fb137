/**
 * `metered()` for fetch handlers. DESIGN section 3 is checked by the shared adapter suite, in
 * full, with the handler served on a real node:http server through `@hono/node-server`'s
 * listener (the runtime's own Request and Response, no stand-ins). The tests after it cover
 * what only web-standard handlers have: bodies given whole or streamed, cancel versus abort
 * signal, immutable headers, HEAD, and the runtime's extra arguments.
 */
import { getRequestListener } from '@hono/node-server'
import { describeAdapterConformance, type SuitePath } from '@tollgate/conformance'
import { deferred, ledgerTypes, listen, meterWith, settledAs } from '@tollgate/conformance/testing'
import { InvalidInputError, type Meter } from '@tollgate/core'
import { describe, expect, expectTypeOf, it, onTestFinished, vi } from 'vitest'
import { type MeteredHandler, type MeteredOptions, metered, type RequestCredits } from './index.js'

const encoder = new TextEncoder()

/** A real HTTP server for a fetch handler, with Node's own Request and Response. */
function serveFetch(handler: (request: Request) => Promise<Response>) {
  return listen(getRequestListener(handler, { overrideGlobalObjects: false }))
}

/** An async iterable of strings as a byte stream; a cancel stops the iterable. */
function textStream(chunks: AsyncIterable<string>): ReadableStream<Uint8Array> {
  const it = chunks[Symbol.asyncIterator]()
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await it.next()
      if (done) controller.close()
      else controller.enqueue(encoder.encode(value))
    },
    async cancel() {
      await it.return?.()
    },
  })
}

describeAdapterConformance({
  name: '@tollgate/fetch',
  async mount({ meter, options, routes, stream }) {
    const view = (req: Request) => ({
      header: (name: string) => req.headers.get(name) ?? undefined,
    })
    const handler = metered(meter, options(view), async (request, credits) => {
      const path = new URL(request.url).pathname
      const text = { 'content-type': 'text/plain' }
      if (path === '/stream') {
        return new Response(textStream(stream(credits ?? null)), { headers: text })
      }
      const route = routes[path as SuitePath]
      if (route === undefined) return new Response('not found', { status: 404, headers: text })
      const reply = await route(credits ?? null)
      return new Response(reply.body, { status: reply.status, headers: text })
    })
    return serveFetch(handler)
  },
})

const byHeader = (req: Request) => req.headers.get('x-account') ?? ''

/** Serves `handler` behind `metered()` for one test. */
async function served(
  meter: Meter,
  options: Partial<MeteredOptions>,
  handler: MeteredHandler,
): Promise<string> {
  const server = await serveFetch(metered(meter, { account: byHeader, ...options }, handler))
  onTestFinished(() => server.close())
  return server.url
}

/** A GET as account `u`. */
function get(url: string, init: RequestInit = {}) {
  return fetch(url, { ...init, headers: { 'x-account': 'u', ...init.headers } })
}

/** A body stream the test feeds by hand, and sees cancelled. */
function producer() {
  let controller!: ReadableStreamDefaultController<Uint8Array>
  const cancelled = deferred<unknown>()
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c
    },
    cancel(reason) {
      cancelled.resolve(reason)
    },
  })
  return {
    stream,
    send: (text: string) => controller.enqueue(encoder.encode(text)),
    end: () => controller.close(),
    fail: (err: Error) => controller.error(err),
    cancelled,
  }
}

/** Reads `reader` until the text so far contains `text`. */
async function readUntil(reader: ReadableStreamDefaultReader<Uint8Array>, text: string) {
  const decoder = new TextDecoder()
  let sofar = ''
  while (!sofar.includes(text)) {
    const { done, value } = await reader.read()
    if (done) throw new Error(`ended before "${text}": ${sofar}`)
    sofar += decoder.decode(value, { stream: true })
  }
}

describe('bodies given whole', () => {
  it('keep an exact Content-Length and are committed', async () => {
    const meter = await meterWith({ u: 100 })
    const url = await served(meter, { cost: 4 }, () => Response.json({ hello: 'world' }))
    const res = await get(url)
    const body = await res.text()
    expect(body).toBe('{"hello":"world"}')
    expect(res.headers.get('content-length')).toBe(String(body.length))
    expect(res.headers.get('content-type')).toBe('application/json')
    expect(res.headers.get('x-credits-cost')).toBe('4')
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(96)
  })

  it('a stream whose chunks are all there at once is sent whole', async () => {
    const meter = await meterWith({ u: 100 })
    const url = await served(meter, { cost: 2 }, () => {
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          for (const word of ['one ', 'two ', 'three']) controller.enqueue(encoder.encode(word))
          controller.close()
        },
      })
      return new Response(stream)
    })
    const res = await get(url)
    expect(await res.text()).toBe('one two three')
    expect(res.headers.get('content-length')).toBe('13')
    await settledAs(meter, 'u', 'commit')
  })

  it('a body past 1 MiB is sent as a stream, and committed at its end', async () => {
    const meter = await meterWith({ u: 100 })
    const big = 'x'.repeat(3 * 1024 * 1024)
    const url = await served(meter, { cost: 2 }, () => new Response(big))
    const res = await get(url)
    expect((await res.text()).length).toBe(big.length)
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(98)
  })

  it('an empty body is committed', async () => {
    const meter = await meterWith({ u: 100 })
    const url = await served(meter, { cost: 2 }, () => new Response(''))
    const res = await get(url)
    expect(await res.text()).toBe('')
    expect(res.headers.get('x-credits-cost')).toBe('2')
    await settledAs(meter, 'u', 'commit')
  })
})

describe('streamed bodies', () => {
  it('settle when read to their end, charged the actual cost set while they ran', async () => {
    const meter = await meterWith({ u: 100 })
    const body = producer()
    let seen: RequestCredits | undefined
    const url = await served(meter, { cost: 30 }, (_req, credits) => {
      seen = credits
      body.send('first ')
      return new Response(body.stream, { headers: { 'content-type': 'text/event-stream' } })
    })
    const res = await get(url)
    expect(res.headers.get('x-credits-cost')).toBe('30')
    expect(res.headers.get('x-credits-remaining')).toBe('70')
    const reader = res.body!.getReader()
    await readUntil(reader, 'first')
    // Streaming: still held, nothing settled.
    expect(await meter.balance('u')).toMatchObject({ total: 100, held: 30 })
    body.send('second')
    seen!.actual = 12
    body.end()
    while (!(await reader.read()).done) {
      // to the end
    }
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(88)
  })

  it('a client that cancels mid-stream releases the hold and cancels the producer', async () => {
    const meter = await meterWith({ u: 100 })
    const body = producer()
    const url = await served(meter, { cost: 30 }, () => {
      body.send('first')
      return new Response(body.stream)
    })
    const aborter = new AbortController()
    const res = await get(url, { signal: aborter.signal })
    await readUntil(res.body!.getReader(), 'first')
    expect((await meter.balance('u')).held).toBe(30)
    aborter.abort()
    await body.cancelled.promise
    expect((await settledAs(meter, 'u', 'release')).total).toBe(100)
  })

  it("onAbort 'commit': a cancelled stream is charged what it served", async () => {
    const meter = await meterWith({ u: 100 })
    const body = producer()
    const url = await served(meter, { cost: 30, onAbort: 'commit' }, (_req, credits) => {
      body.send('first')
      credits!.actual = 7
      return new Response(body.stream)
    })
    const aborter = new AbortController()
    const res = await get(url, { signal: aborter.signal })
    await readUntil(res.body!.getReader(), 'first')
    aborter.abort()
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(93)
  })

  it('a producer that breaks off mid-stream is released', async () => {
    // The server logs the broken response body; expected here.
    const quiet = vi.spyOn(console, 'error').mockImplementation(() => {})
    onTestFinished(() => quiet.mockRestore())
    const meter = await meterWith({ u: 100 })
    const body = producer()
    const url = await served(meter, { cost: 30 }, () => {
      body.send('first')
      return new Response(body.stream)
    })
    const res = await get(url)
    const reader = res.body!.getReader()
    await readUntil(reader, 'first')
    body.fail(new Error('the model went away'))
    await expect(
      (async () => {
        while (!(await reader.read()).done) {
          // until the truncated body fails
        }
      })(),
    ).rejects.toThrow()
    expect((await settledAs(meter, 'u', 'release')).total).toBe(100)
  })

  it('a runtime that only aborts request.signal still releases, and stops the producer', async () => {
    // Some runtimes report a client that left on the request's signal and never cancel the
    // body; called directly, as such a runtime calls the handler.
    const meter = await meterWith({ u: 100 })
    const body = producer()
    const handler = metered(meter, { account: byHeader, cost: 30 }, () => {
      body.send('first')
      return new Response(body.stream)
    })
    const client = new AbortController()
    const res = await handler(
      new Request('http://app.test/', { headers: { 'x-account': 'u' }, signal: client.signal }),
    )
    await readUntil(res.body!.getReader(), 'first')
    client.abort()
    await body.cancelled.promise
    expect((await settledAs(meter, 'u', 'release')).total).toBe(100)
  })
})

describe('responses', () => {
  it('a Response with immutable headers (Response.redirect) is copied to carry the credit headers', async () => {
    const meter = await meterWith({ u: 100 })
    const url = await served(meter, { cost: 1 }, () =>
      Response.redirect('http://app.test/next', 303),
    )
    const res = await get(url, { redirect: 'manual' })
    expect(res.status).toBe(303)
    expect(res.headers.get('location')).toBe('http://app.test/next')
    expect(res.headers.get('x-credits-cost')).toBe('1')
    expect(res.headers.get('x-credits-remaining')).toBe('99')
    await settledAs(meter, 'u', 'commit')
  })

  it('a proxied fetch() Response (immutable headers, streamed body) is metered to its end', async () => {
    const upstream = await listen((_req, res) => {
      res.setHeader('content-type', 'text/plain')
      res.write('from ')
      setTimeout(() => res.end('upstream'), 20).unref()
    })
    onTestFinished(() => upstream.close())
    const meter = await meterWith({ u: 100 })
    const url = await served(meter, { cost: 3 }, () => fetch(upstream.url))
    const res = await get(url)
    expect(await res.text()).toBe('from upstream')
    expect(res.headers.get('x-credits-cost')).toBe('3')
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(97)
  })

  it('HEAD is settled as it is returned, with the credit headers', async () => {
    const meter = await meterWith({ u: 100 })
    const url = await served(meter, { cost: 2 }, () => new Response('a body HEAD does not send'))
    const res = await get(url, { method: 'HEAD' })
    expect(res.status).toBe(200)
    expect(res.headers.get('x-credits-cost')).toBe('2')
    await settledAs(meter, 'u', 'commit')
  })

  it('a handler that answers something else than a Response is an error, and released', async () => {
    const meter = await meterWith({ u: 100 })
    const url = await served(meter, { cost: 2 }, () => ({ ok: true }) as unknown as Response)
    expect((await get(url)).status).toBe(500)
    await settledAs(meter, 'u', 'release')
  })

  it('onInsufficient answers with its own Response, given the credit headers', async () => {
    const meter = await meterWith({ u: 2 })
    const onInsufficient = (err: { required: number; available: number }) =>
      Response.json({ topUp: err.required - err.available }, { status: 402 })
    const url = await served(meter, { cost: 5, onInsufficient }, () => new Response('never'))
    const res = await get(url)
    expect(res.status).toBe(402)
    expect(await res.json()).toEqual({ topUp: 3 })
    expect(res.headers.get('x-credits-cost')).toBe('5')
    expect(res.headers.get('x-credits-remaining')).toBe('2')
  })

  it("an error thrown by the app's account function reaches the runtime", async () => {
    const meter = await meterWith({ u: 100 })
    const account = () => {
      throw new TypeError('no session')
    }
    const handler = metered(meter, { account }, () => new Response('never'))
    await expect(handler(new Request('http://app.test/'))).rejects.toThrow('no session')
  })
})

describe('the handler', () => {
  it("gets the runtime's own arguments after its credits (Workers' env and ctx)", async () => {
    const meter = await meterWith({ u: 100 })
    const handler = metered(
      meter,
      { account: byHeader, cost: 1 },
      (_req, credits, env: { GREETING: string }, ctx: { id: number }) =>
        new Response(`${env.GREETING} ${ctx.id} ${credits?.cost}`),
    )
    const res = await handler(
      new Request('http://app.test/', { headers: { 'x-account': 'u' } }),
      {
        GREETING: 'hi',
      },
      { id: 7 },
    )
    expect(await res.text()).toBe('hi 7 1')
    await settledAs(meter, 'u', 'commit')
    expectTypeOf(handler).parameters.toEqualTypeOf<
      [Request, { GREETING: string }, { id: number }]
    >()
  })

  it('does not run for a client that left while its credits were reserved; the hold is released', async () => {
    const meter = await meterWith({ u: 100 })
    const ran = vi.fn(() => new Response('never'))
    const client = new AbortController()
    // An async account function: the reserve is still in flight when the client leaves.
    const handler = metered(meter, { account: async (req) => byHeader(req), cost: 5 }, ran)
    const pending = handler(
      new Request('http://app.test/', { headers: { 'x-account': 'u' }, signal: client.signal }),
    )
    client.abort()
    expect((await pending).status).toBe(499)
    expect(ran).not.toHaveBeenCalled()
    await vi.waitFor(async () => expect((await meter.balance('u')).held).toBe(0))
    expect(await ledgerTypes(meter, 'u')).toEqual(['grant', 'hold', 'release'])
  })

  it('keeps each hold alive with a timer of its own, stopped when the request settles', async () => {
    const meter = await meterWith({ u: 100 })
    const set = vi.spyOn(globalThis, 'setInterval')
    const clear = vi.spyOn(globalThis, 'clearInterval')
    onTestFinished(() => {
      set.mockRestore()
      clear.mockRestore()
    })
    const handler = metered(meter, { account: byHeader, cost: 5 }, (req) => {
      const kind = new URL(req.url).pathname
      if (kind === '/throw') throw new Error('boom')
      if (kind === '/whole') return new Response('whole')
      const body = producer()
      body.send('first')
      if (kind === '/stream') setTimeout(() => body.end(), 5)
      return new Response(body.stream)
    })
    const call = (path: string) =>
      handler(new Request(`http://app.test${path}`, { headers: { 'x-account': 'u' } }))
    await (await call('/whole')).text()
    await (await call('/stream')).text()
    await (await call('/cancel')).body!.cancel()
    await expect(call('/throw')).rejects.toThrow('boom')
    expect(await ledgerTypes(meter, 'u')).toEqual([
      'grant',
      ...['hold', 'commit', 'hold', 'commit', 'hold', 'release', 'hold', 'release'],
    ])
    // Four requests held credits, each with a heartbeat of its own, all stopped; what may be
    // left is the kit's one shared heartbeat, which stops at its next beat.
    const cleared = new Set(clear.mock.calls.map(([timer]) => timer))
    const live = set.mock.results.filter((created) => !cleared.has(created.value))
    expect(set.mock.calls.length).toBeGreaterThanOrEqual(4)
    expect(live.length).toBeLessThanOrEqual(1)
  })

  it('checks the options and the handler once, at creation', async () => {
    const meter = await meterWith()
    const ok = () => new Response('ok')
    expect(() => metered(meter, {} as MeteredOptions, ok)).toThrow(InvalidInputError)
    expect(() => metered(meter, { account: byHeader, cost: -1 }, ok)).toThrow(/cost/)
    expect(() => metered({} as Meter, { account: byHeader }, ok)).toThrow(/meter/)
    expect(() => metered(meter, { account: byHeader }, 'ok' as unknown as MeteredHandler)).toThrow(
      /handler/,
    )
  })
})
