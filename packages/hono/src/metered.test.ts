/**
 * `metered()` on Hono. DESIGN section 3 is checked by the shared adapter suite, in full, with
 * the app served by `@hono/node-server` as Hono apps run on Node; its `/stream` route uses
 * Hono's `streamText()`. The tests after it cover what only Hono has: `c.body(stream)`,
 * `stream()` and `streamSSE()` settled when they end, `onError` and `HTTPException`, HEAD,
 * mounting (app, sub-app, route), and the typed `c.get('credits')`.
 */
import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { describeAdapterConformance, type MountedAdapter } from '@tollgate/conformance'
import { deferred, meterWith, settledAs } from '@tollgate/conformance/testing'
import { InvalidInputError, type Meter } from '@tollgate/core'
import { type Context, Hono } from 'hono'
import { HTTPException } from 'hono/http-exception'
import { stream, streamSSE, streamText } from 'hono/streaming'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { describe, expect, expectTypeOf, it, onTestFinished, vi } from 'vitest'
import {
  type CreditsVariables,
  type MeteredOptions,
  metered,
  type RequestCredits,
  type TollgateEnv,
} from './index.js'

/** What `serve()` needs of a Hono app, whatever its environment. */
type App = { fetch: (request: Request) => Response | Promise<Response> }

/** Serves `app` with `@hono/node-server` on 127.0.0.1 and an ephemeral port. */
async function serveApp(app: App): Promise<MountedAdapter> {
  const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }) as Server
  if (!server.listening) await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections()
      server.close()
      await once(server, 'close')
    },
  }
}

describeAdapterConformance({
  name: '@tollgate/hono',
  async mount({ meter, options, routes, stream: chunks }) {
    const app = new Hono<TollgateEnv>()
    app.use(
      metered(
        meter,
        options((c: Context) => ({ header: (name) => c.req.header(name) })),
      ),
    )
    for (const [path, route] of Object.entries(routes)) {
      app.get(path, async (c) => {
        const reply = await route(c.get('credits') ?? null)
        return c.text(reply.body, reply.status as ContentfulStatusCode)
      })
    }
    app.get('/stream', (c) =>
      streamText(c, async (s) => {
        const it = chunks(c.get('credits') ?? null)[Symbol.asyncIterator]()
        // The client went away: stop reading the source.
        s.onAbort(() => void it.return?.())
        for (let next = await it.next(); !next.done; next = await it.next())
          await s.write(next.value)
      }),
    )
    // The app's own error handling, as an app has it (Hono's default also logs).
    app.onError((_err, c) => c.text('the route threw', 500))
    return serveApp(app)
  },
})

const byHeader = (c: Context) => c.req.header('x-account') ?? ''

/** Serves `app` for one test; returns its URL. */
async function served(app: App): Promise<string> {
  const server = await serveApp(app)
  onTestFinished(() => server.close())
  return server.url
}

/** A GET as account `u`. */
function get(url: string, init: RequestInit = {}) {
  return fetch(url, { ...init, headers: { 'x-account': 'u', ...init.headers } })
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
  return sofar
}

async function drain(reader: ReadableStreamDefaultReader<Uint8Array>) {
  while (!(await reader.read()).done) {
    // to the end
  }
}

describe('streams settle when they end', () => {
  it('streamSSE: committed with the actual cost set while it ran, held until then', async () => {
    const meter = await meterWith({ u: 100 })
    const go = deferred()
    const app = new Hono<TollgateEnv>()
    app.get('/sse', metered(meter, { account: byHeader, cost: 50 }), (c) =>
      streamSSE(c, async (sse) => {
        const credits = c.get('credits')!
        await sse.writeSSE({ data: 'one' })
        credits.actual = 1
        await go.promise
        await sse.writeSSE({ data: 'two' })
        credits.actual = 2
      }),
    )
    const res = await get(`${await served(app)}/sse`)
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    expect(res.headers.get('x-credits-cost')).toBe('50')
    expect(res.headers.get('x-credits-remaining')).toBe('50')
    const reader = res.body!.getReader()
    await readUntil(reader, 'data: one')
    expect(await meter.balance('u')).toMatchObject({ total: 100, held: 50 })
    go.resolve()
    await drain(reader)
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(98)
  })

  it('streamSSE: a client that leaves mid-stream releases the hold, and the stream is aborted', async () => {
    const meter = await meterWith({ u: 100 })
    const aborted = deferred()
    const app = new Hono<TollgateEnv>()
    app.get('/sse', metered(meter, { account: byHeader, cost: 50 }), (c) =>
      streamSSE(c, async (sse) => {
        sse.onAbort(() => aborted.resolve())
        await sse.writeSSE({ data: 'one' })
        c.get('credits')!.actual = 1
        await aborted.promise
      }),
    )
    const client = new AbortController()
    const res = await get(`${await served(app)}/sse`, { signal: client.signal })
    await readUntil(res.body!.getReader(), 'data: one')
    client.abort()
    await aborted.promise
    expect((await settledAs(meter, 'u', 'release')).total).toBe(100)
  })

  it("stream(): onAbort 'commit' charges a cancelled stream what it served", async () => {
    const meter = await meterWith({ u: 100 })
    const app = new Hono<TollgateEnv>()
    app.use(metered(meter, { account: byHeader, cost: 50, onAbort: 'commit' }))
    app.get('/bytes', (c) =>
      stream(c, async (s) => {
        let stop = false
        s.onAbort(() => {
          stop = true
        })
        for (let n = 1; !stop; n++) {
          await s.write(`chunk ${n}\n`)
          c.get('credits')!.actual = n
          await s.sleep(5)
        }
      }),
    )
    const client = new AbortController()
    const res = await get(`${await served(app)}/bytes`, { signal: client.signal })
    await readUntil(res.body!.getReader(), 'chunk 3')
    client.abort()
    const balance = await settledAs(meter, 'u', 'commit')
    // At least the three chunks read; what the producer wrote before it saw the abort too.
    expect(balance.total).toBeLessThanOrEqual(97)
    expect(balance.total).toBeGreaterThan(50)
  })

  it('c.body(ReadableStream): committed at its end; a cancel releases and reaches the producer', async () => {
    const meter = await meterWith({ u: 100 })
    const encoder = new TextEncoder()
    const cancelled = deferred<unknown>()
    let feed!: ReadableStreamDefaultController<Uint8Array>
    const app = new Hono<TollgateEnv>()
    app.use(metered(meter, { account: byHeader, cost: 10 }))
    app.get('/body', (c) => {
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          feed = controller
          controller.enqueue(encoder.encode('first '))
        },
        cancel: (reason) => cancelled.resolve(reason),
      })
      return c.body(body)
    })
    const url = await served(app)

    const whole = await get(`${url}/body`)
    const reader = whole.body!.getReader()
    await readUntil(reader, 'first')
    expect((await meter.balance('u')).held).toBe(10)
    feed.enqueue(encoder.encode('last'))
    feed.close()
    await drain(reader)
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(90)

    const client = new AbortController()
    const left = await get(`${url}/body`, { signal: client.signal })
    await readUntil(left.body!.getReader(), 'first')
    client.abort()
    await cancelled.promise
    expect((await settledAs(meter, 'u', 'release')).total).toBe(90)
  })
})

describe('errors', () => {
  it("a stream helper's callback that throws ends the stream normally: its onError sets what is charged", async () => {
    const meter = await meterWith({ u: 100 })
    const app = new Hono<TollgateEnv>()
    app.use(metered(meter, { account: byHeader, cost: 50 }))
    app.get('/sse', (c) =>
      streamSSE(
        c,
        async (sse) => {
          await sse.writeSSE({ data: 'one' })
          c.get('credits')!.actual = 1
          throw new Error('the model failed')
        },
        async () => {
          // Hono catches the error and closes the stream as if it completed.
          c.get('credits')!.actual = 0
        },
      ),
    )
    const res = await get(`${await served(app)}/sse`)
    expect(await res.text()).toContain('event: error\ndata: the model failed')
    const balance = await settledAs(meter, 'u', 'commit')
    expect(balance.total).toBe(100)
  })

  it("a route that throws is released; the app's onError answers, with the credit headers", async () => {
    const meter = await meterWith({ u: 100 })
    const app = new Hono<TollgateEnv>()
    app.use(metered(meter, { account: byHeader, cost: 3 }))
    app.get('/boom', (c) => {
      c.get('credits')!.actual = 2 // would be charged, had it not failed
      throw new Error('boom')
    })
    app.onError((err, c) => c.json({ error: err.message }, 200))
    const res = await get(`${await served(app)}/boom`)
    // Even answered as a 200, a thrown error is not charged.
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ error: 'boom' })
    expect(res.headers.get('x-credits-cost')).toBe('3')
    expect((await settledAs(meter, 'u', 'release')).total).toBe(100)
  })

  it('an HTTPException from the route is released, answered as Hono answers it', async () => {
    const meter = await meterWith({ u: 100 })
    const app = new Hono<TollgateEnv>()
    app.use(metered(meter, { account: byHeader, cost: 3 }))
    app.get('/teapot', () => {
      throw new HTTPException(418, { message: 'short and stout' })
    })
    const res = await get(`${await served(app)}/teapot`)
    expect(res.status).toBe(418)
    expect(await res.text()).toBe('short and stout')
    await settledAs(meter, 'u', 'release')
  })

  it("an error thrown by the app's own account function goes to onError", async () => {
    const meter = await meterWith({ u: 100 })
    const app = new Hono()
    const account = () => {
      throw new TypeError('no session')
    }
    app.use(metered(meter, { account }))
    app.get('/', (c) => c.text('never'))
    app.onError((err, c) => c.json({ error: err.message }, 500))
    const res = await get(await served(app))
    expect(res.status).toBe(500)
    expect(await res.json()).toEqual({ error: 'no session' })
  })

  it('onInsufficient answers with its own Response, given the credit headers', async () => {
    const meter = await meterWith({ u: 2 })
    const app = new Hono<TollgateEnv>()
    const route = vi.fn((c: Context) => c.text('never'))
    app.use(
      metered(meter, {
        account: byHeader,
        cost: 5,
        onInsufficient: (err, c) => c.json({ topUp: err.required - err.available }, 402),
      }),
    )
    app.get('/', route)
    const res = await get(await served(app))
    expect(res.status).toBe(402)
    expect(await res.json()).toEqual({ topUp: 3 })
    expect(res.headers.get('x-credits-cost')).toBe('5')
    expect(res.headers.get('x-credits-remaining')).toBe('2')
    expect(route).not.toHaveBeenCalled()
  })
})

describe('mounting', () => {
  async function charged(url: string, meter: Meter, init: RequestInit = {}) {
    const before = (await meter.balance('u')).total
    const res = await get(url, init)
    await res.arrayBuffer()
    if (res.headers.get('x-credits-cost') !== null) {
      await settledAs(meter, 'u', res.status < 400 ? 'commit' : 'release')
    }
    return { status: res.status, paid: before - (await meter.balance('u')).total }
  }

  it('app.use meters the routes after it; per route with a price of its own; sub-apps', async () => {
    const meter = await meterWith({ u: 100 })
    const app = new Hono()
    app.get('/health', (c) => c.text('ok'))
    const api = new Hono<TollgateEnv>()
    api.use(metered(meter, { account: byHeader, cost: 2 }))
    api.get('/thing', (c) => c.json({ cost: c.get('credits')?.cost }))
    app.route('/api', api)
    app.get('/cheap', metered(meter, { account: byHeader, cost: 1 }), (c) => c.text('cheap'))
    app.get('/dear', metered(meter, { account: byHeader, cost: 9 }), (c) => c.text('dear'))
    const url = await served(app)
    expect(await charged(`${url}/health`, meter)).toEqual({ status: 200, paid: 0 })
    expect(await charged(`${url}/api/thing`, meter)).toEqual({ status: 200, paid: 2 })
    expect(await charged(`${url}/cheap`, meter)).toEqual({ status: 200, paid: 1 })
    expect(await charged(`${url}/dear`, meter)).toEqual({ status: 200, paid: 9 })
    // Unrouted under the metered sub-app: a 404, released.
    expect(await charged(`${url}/api/nothing`, meter)).toEqual({ status: 404, paid: 0 })
  })

  it('HEAD on a GET route is settled as it is answered, with the credit headers', async () => {
    const meter = await meterWith({ u: 100 })
    const app = new Hono<TollgateEnv>()
    app.use(metered(meter, { account: byHeader, cost: 4 }))
    app.get('/', (c) => c.text('a body HEAD does not send'))
    const res = await get(await served(app), { method: 'HEAD' })
    expect(res.status).toBe(200)
    expect(res.headers.get('x-credits-cost')).toBe('4')
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(96)
  })

  it("keeps the route's own headers and status; a plain body keeps its Content-Length", async () => {
    const meter = await meterWith({ u: 100 })
    const app = new Hono<TollgateEnv>()
    app.use(metered(meter, { account: byHeader, cost: 1 }))
    app.get('/', (c) => {
      c.header('x-route', 'yes')
      return c.json({ created: true }, 201)
    })
    const res = await get(await served(app))
    expect(res.status).toBe(201)
    expect(res.headers.get('x-route')).toBe('yes')
    expect(res.headers.get('content-length')).toBe(String('{"created":true}'.length))
    await settledAs(meter, 'u', 'commit')
  })

  it('sends a body made by c.json() or c.text() as it is, unread; one made otherwise is read to find out', async () => {
    // In process (app.request): which Response object leaves the app is not visible over HTTP.
    const meter = await meterWith({ u: 100 })
    const app = new Hono<TollgateEnv>()
    const made: Response[] = []
    app.use(metered(meter, { account: byHeader, cost: 1 }))
    app.get('/json', (c) => made[made.push(c.json({ ok: true })) - 1]!)
    app.get('/text', (c) => made[made.push(c.text('ok', 201)) - 1]!)
    app.get('/raw', () => made[made.push(new Response('ok')) - 1]!)
    const headers = { 'x-account': 'u' }
    for (const [path, sameObject] of [
      ['/json', true],
      ['/text', true],
      ['/raw', false],
    ] as const) {
      const res = await app.request(path, { headers })
      expect(res === made.at(-1)).toBe(sameObject)
      expect(made.at(-1)!.bodyUsed).toBe(!sameObject)
      expect(res.headers.get('x-credits-cost')).toBe('1')
      await res.arrayBuffer()
    }
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(97)
  })

  it('checks its options once, at creation', async () => {
    const meter = await meterWith()
    expect(() => metered(meter, {} as MeteredOptions)).toThrow(InvalidInputError)
    expect(() => metered(meter, { account: byHeader, cost: -1 })).toThrow(/cost/)
    expect(() => metered({} as Meter, { account: byHeader })).toThrow(/meter/)
  })
})

describe('types', () => {
  it("c.get('credits') is typed, and the option functions see the app's own variables", async () => {
    type AppEnv = { Variables: { user: string } }
    const meter = await meterWith({ alice: 10 })
    const app = new Hono<AppEnv & TollgateEnv>()
    app.use(async (c, next) => {
      c.set('user', 'alice')
      await next()
    })
    // The option functions take the app's context: c.get('user') is a string.
    app.use(metered<AppEnv>(meter, { account: (c) => c.get('user'), cost: 3 }))
    app.get('/', (c) => {
      const credits = c.get('credits')
      expectTypeOf(credits).toEqualTypeOf<RequestCredits | undefined>()
      expectTypeOf(c.var.credits).toEqualTypeOf<RequestCredits | undefined>()
      if (credits) credits.actual = 2
      // Never called: only compiled.
      const _readonly = (c: RequestCredits) => {
        // @ts-expect-error the reserved cost is read-only
        c.cost = 1
      }
      return c.text(`${c.get('user')} ${credits?.cost}`)
    })
    expectTypeOf<TollgateEnv['Variables']>().toEqualTypeOf<CreditsVariables>()
    const res = await fetch(await served(app))
    expect(await res.text()).toBe('alice 3')
    expect((await settledAs(meter, 'alice', 'commit')).total).toBe(8)
  })

  it("is typed without declaring the environment, through Hono's ContextVariableMap", () => {
    const app = new Hono()
    app.get('/', (c) => {
      expectTypeOf(c.get('credits')).toEqualTypeOf<RequestCredits | undefined>()
      return c.text('ok')
    })
  })
})
