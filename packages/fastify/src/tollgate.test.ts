/**
 * `tollgate` on Fastify. DESIGN section 3 is checked by the shared adapter suite, in full; the
 * tests after it cover what only Fastify has: `reply.send(stream)`, per-route `config.credits`,
 * encapsulation, the app's error handler and hooks, and options checked at registration.
 */
import { Readable } from 'node:stream'
import { describeAdapterConformance } from '@tollgate/conformance'
import { deferred, meterWith, settledAs } from '@tollgate/conformance/testing'
import { InvalidInputError, type Meter } from '@tollgate/core'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { type TollgateOptions, tollgate } from './index.js'

/** A Fastify app listening on 127.0.0.1, port 0; `close` drops open connections. */
async function listen(app: FastifyInstance) {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP')
  return { url: `http://127.0.0.1:${address.port}`, close: () => app.close() }
}

function header(req: FastifyRequest, name: string): string | undefined {
  const value = req.headers[name.toLowerCase()]
  return Array.isArray(value) ? value[0] : value
}

describeAdapterConformance({
  name: '@tollgate/fastify',
  async mount({ meter, options, routes, stream }) {
    const app = Fastify({ forceCloseConnections: true })
    await app.register(tollgate, {
      meter,
      ...options((req: FastifyRequest) => ({ header: (name) => header(req, name) })),
    })
    for (const [path, route] of Object.entries(routes)) {
      app.get(path, async (req, reply) => {
        const answer = await route(req.credits ?? null)
        return reply.code(answer.status).type('text/plain').send(answer.body)
      })
    }
    app.get('/stream', (req, reply) =>
      reply.type('text/plain').send(Readable.from(stream(req.credits ?? null))),
    )
    return listen(app)
  },
})

const byHeader = (req: FastifyRequest) => header(req, 'x-account') ?? ''

let open: FastifyInstance[] = []
afterEach(async () => {
  await Promise.all(open.map((app) => app.close()))
  open = []
  vi.restoreAllMocks()
})

/** A fresh app, closed after the test. */
function fastify(): FastifyInstance {
  const app = Fastify({ forceCloseConnections: true })
  open.push(app)
  return app
}

async function get(url: string, init: RequestInit = {}) {
  const res = await fetch(url, {
    ...init,
    headers: { 'x-account': 'u', ...(init.headers as Record<string, string>) },
  })
  return { status: res.status, headers: res.headers, text: await res.text() }
}

/** What one request took from the account, once it settled. */
async function charged(meter: Meter, url: string, init: RequestInit = {}) {
  const before = (await meter.balance('u')).total
  const res = await get(url, init)
  expect(res.status).toBeLessThan(400)
  if (res.headers.get('x-credits-cost') !== null) await settledAs(meter, 'u', 'commit')
  return before - (await meter.balance('u')).total
}

describe('reply.send(stream)', () => {
  it('settles when the stream ends, at the actual cost it reached', async () => {
    const meter = await meterWith({ u: 100 })
    const app = fastify()
    await app.register(tollgate, { meter, account: byHeader, cost: 30 })
    const gate = deferred()
    app.get('/tokens', (req, reply) => {
      async function* tokens() {
        yield 'first '
        await gate.promise
        for (let i = 1; i <= 5; i++) {
          if (req.credits) req.credits.actual = i * 2
          yield `t${i} `
        }
      }
      return reply.type('text/plain').send(Readable.from(tokens()))
    })
    const { url } = await listen(app)
    const res = await fetch(`${url}/tokens`, { headers: { 'x-account': 'u' } })
    expect(res.headers.get('x-credits-cost')).toBe('30')
    expect(res.headers.get('x-credits-remaining')).toBe('70')
    const reader = res.body!.getReader()
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('first ')
    // Mid-stream the hold is still there: nothing is settled before the body ends.
    expect(await meter.balance('u')).toMatchObject({ total: 100, held: 30 })
    gate.resolve()
    let rest = ''
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      rest += new TextDecoder().decode(r.value)
    }
    expect(rest).toBe('t1 t2 t3 t4 t5 ')
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(90)
  })

  it('a handler that writes reply.raw itself gets the credit headers and settles at its end', async () => {
    const meter = await meterWith({ u: 100 })
    const app = fastify()
    await app.register(tollgate, { meter, account: byHeader, cost: 10 })
    app.get('/sse', (req, reply) => {
      reply.hijack()
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream' })
      let sent = 0
      const timer = setInterval(() => {
        reply.raw.write(`data: ${++sent}\n\n`)
        if (req.credits) req.credits.actual = sent
        if (sent === 3) {
          clearInterval(timer)
          reply.raw.end()
        }
      }, 5)
    })
    const { url } = await listen(app)
    const res = await get(`${url}/sse`)
    expect(res.headers.get('x-credits-cost')).toBe('10')
    expect(res.headers.get('x-credits-remaining')).toBe('90')
    expect(res.text).toBe('data: 1\n\ndata: 2\n\ndata: 3\n\n')
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(97)
  })

  it('a stream that breaks off mid-body is released', async () => {
    const meter = await meterWith({ u: 100 })
    const app = fastify()
    await app.register(tollgate, { meter, account: byHeader, cost: 30 })
    app.get('/broken', (_req, reply) => {
      async function* broken() {
        yield 'partial '
        throw new Error('model crashed')
      }
      return reply.type('text/plain').send(Readable.from(broken()))
    })
    const { url } = await listen(app)
    await expect(get(`${url}/broken`)).rejects.toThrow()
    expect((await settledAs(meter, 'u', 'release')).total).toBe(100)
  })
})

describe('per-route config.credits', () => {
  async function app(meter: Meter) {
    const app = fastify()
    await app.register(tollgate, { meter, account: byHeader, cost: 2 })
    app.get('/default', async () => 'ok')
    app.get('/five', { config: { credits: 5 } }, async () => 'ok')
    app.get('/free', { config: { credits: false } }, async (req) => ({
      credits: req.credits ?? null,
    }))
    app.post(
      '/priced',
      // The plugin reserves in preHandler, after the body is parsed: the cost may read it.
      { config: { credits: { cost: (req) => (req.body as { tokens: number }).tokens } } },
      async () => 'ok',
    )
    app.get(
      '/other-headers',
      { config: { credits: { headers: { cost: 'X-Price', remaining: 'X-Left' } } } },
      async () => 'ok',
    )
    return listen(app)
  }

  it('a number is the route cost, an object overrides the options, false skips', async () => {
    const meter = await meterWith({ u: 100 })
    const { url } = await app(meter)
    expect(await charged(meter, `${url}/default`)).toBe(2)
    expect(await charged(meter, `${url}/five`)).toBe(5)
    const json = { method: 'POST', headers: { 'content-type': 'application/json' } }
    expect(await charged(meter, `${url}/priced`, { ...json, body: '{"tokens":42}' })).toBe(42)
    const free = await get(`${url}/free`)
    expect(JSON.parse(free.text)).toEqual({ credits: null })
    expect(free.headers.get('x-credits-cost')).toBeNull()
    const other = await get(`${url}/other-headers`)
    expect(other.headers.get('x-price')).toBe('2')
    expect(other.headers.get('x-credits-cost')).toBeNull()
    await settledAs(meter, 'u', 'commit')
    expect((await meter.balance('u')).total).toBe(100 - 2 - 5 - 42 - 2)
  })

  it('a bad config.credits fails when the route is declared, naming the route', async () => {
    const meter = await meterWith()
    const app = fastify()
    await app.register(tollgate, { meter, account: byHeader })
    const credits = 'lots' as unknown as number
    expect(() => app.get('/bad', { config: { credits } }, async () => 'ok')).toThrow(
      /config\.credits of route \/bad/,
    )
  })

  it('a bad route option fails when the route is declared, naming the field', async () => {
    const meter = await meterWith()
    const app = fastify()
    await app.register(tollgate, { meter, account: byHeader })
    expect(() => app.get('/bad', { config: { credits: { cost: -1 } } }, async () => 'ok')).toThrow(
      InvalidInputError,
    )
  })
})

describe('routes Fastify makes', () => {
  it('the HEAD route Fastify adds beside a GET is metered once, as the GET is', async () => {
    const meter = await meterWith({ u: 100 })
    const app = fastify()
    await app.register(tollgate, { meter, account: byHeader, cost: 3 })
    app.get('/', async () => 'ok')
    const { url } = await listen(app)
    const res = await fetch(`${url}/`, { method: 'HEAD', headers: { 'x-account': 'u' } })
    expect(res.status).toBe(200)
    expect(res.headers.get('x-credits-cost')).toBe('3')
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(97)
    expect((await meter.ledger('u')).entries.map((e) => e.type)).toEqual([
      'commit',
      'hold',
      'grant',
    ])
  })
})

describe('encapsulation', () => {
  it('meters the routes of the context that registers it, and its children, only', async () => {
    const meter = await meterWith({ u: 100 })
    const app = fastify()
    app.get('/health', async () => 'ok')
    await app.register(
      async (api) => {
        await api.register(tollgate, { meter, account: byHeader, cost: 3 })
        api.get('/thing', async () => 'ok')
        await api.register(async (nested) => {
          nested.get('/nested', async () => 'ok')
        })
      },
      { prefix: '/api' },
    )
    await app.register(async (sibling) => {
      sibling.get('/sibling', async (req) => ({ credits: req.credits ?? null }))
    })
    app.get('/after', async () => 'ok')
    const { url } = await listen(app)
    expect(await charged(meter, `${url}/api/thing`)).toBe(3)
    expect(await charged(meter, `${url}/api/nested`)).toBe(3)
    expect(await charged(meter, `${url}/health`)).toBe(0)
    expect(await charged(meter, `${url}/after`)).toBe(0)
    const sibling = await get(`${url}/sibling`)
    expect(JSON.parse(sibling.text)).toEqual({ credits: null })
    expect(sibling.headers.get('x-credits-cost')).toBeNull()
    expect((await get(`${url}/missing`)).headers.get('x-credits-cost')).toBeNull()
  })

  it('two contexts may each register it with their own options', async () => {
    const meter = await meterWith({ u: 100 })
    const app = fastify()
    await app.register(tollgate, { meter, account: byHeader, cost: 1 })
    app.get('/root', async () => 'ok')
    await app.register(async (premium) => {
      await premium.register(tollgate, { meter, account: byHeader, cost: 10 })
      premium.get('/premium', async () => 'ok')
    })
    const { url } = await listen(app)
    expect(await charged(meter, `${url}/root`)).toBe(1)
    // Both contexts' hooks run on a child's route: each reserves, so it pays both prices.
    expect(await charged(meter, `${url}/premium`)).toBe(11)
  })
})

describe("the app's errors and hooks", () => {
  it("a thrown error reaches the app's error handler, and is released", async () => {
    const meter = await meterWith({ u: 100 })
    const app = fastify()
    const seen: string[] = []
    app.setErrorHandler((err: Error, _req, reply) => {
      seen.push(err.message)
      return reply.code(500).send({ error: err.message })
    })
    await app.register(tollgate, { meter, account: byHeader, cost: 3 })
    app.get('/', async (req) => {
      req.credits!.actual = 2 // would be charged, had it not failed
      throw new Error('boom')
    })
    const { url } = await listen(app)
    const res = await get(`${url}/`)
    expect(res.status).toBe(500)
    expect(seen).toEqual(['boom'])
    expect((await settledAs(meter, 'u', 'release')).available).toBe(100)
  })

  it("an error thrown by the app's account function goes to the error handler", async () => {
    const meter = await meterWith({ u: 100 })
    const app = fastify()
    const account = () => {
      throw Object.assign(new Error('no session'), { statusCode: 401 })
    }
    await app.register(tollgate, { meter, account })
    app.get('/', async () => 'ok')
    const { url } = await listen(app)
    const res = await get(`${url}/`)
    expect(res.status).toBe(401)
    expect(JSON.parse(res.text)).toMatchObject({ message: 'no session' })
  })

  it('an onRequest hook that answers first leaves the request unmetered', async () => {
    const meter = await meterWith({ u: 100 })
    const app = fastify()
    app.addHook('onRequest', async (req, reply) => {
      if (req.headers.authorization === undefined) return reply.code(401).send('log in')
    })
    await app.register(tollgate, { meter, account: byHeader, cost: 3 })
    app.get('/', async () => 'ok')
    const { url } = await listen(app)
    const res = await get(`${url}/`)
    expect(res.status).toBe(401)
    expect(res.headers.get('x-credits-cost')).toBeNull()
    expect((await meter.ledger('u')).entries.map((e) => e.type)).toEqual(['grant'])
  })

  it('onInsufficient answers through reply, with the credit headers already set', async () => {
    const meter = await meterWith({ u: 2 })
    const app = fastify()
    await app.register(tollgate, {
      meter,
      account: byHeader,
      cost: 5,
      onInsufficient: (err, _req, reply) => {
        reply.code(402).send({ message: `top up: ${err.required - err.available} more` })
      },
    })
    app.get('/', async () => 'ok')
    const { url } = await listen(app)
    const res = await get(`${url}/`)
    expect(res.status).toBe(402)
    expect(JSON.parse(res.text)).toEqual({ message: 'top up: 3 more' })
    expect(res.headers.get('x-credits-cost')).toBe('5')
    expect(res.headers.get('x-credits-remaining')).toBe('2')
  })

  it('an onInsufficient that throws goes to the error handler', async () => {
    const meter = await meterWith({ u: 2 })
    const app = fastify()
    const onInsufficient = async () => {
      throw Object.assign(new Error('top up first'), { statusCode: 403 })
    }
    await app.register(tollgate, { meter, account: byHeader, cost: 5, onInsufficient })
    app.get('/', async () => 'ok')
    const { url } = await listen(app)
    const res = await get(`${url}/`)
    expect(res.status).toBe(403)
    expect(JSON.parse(res.text)).toMatchObject({ message: 'top up first' })
  })

  it('an onInsufficient that does not answer leaves the default 402', async () => {
    const meter = await meterWith({ u: 2 })
    const app = fastify()
    const onInsufficient = vi.fn()
    await app.register(tollgate, { meter, account: byHeader, cost: 5, onInsufficient })
    app.get('/', async () => 'ok')
    const { url } = await listen(app)
    const res = await get(`${url}/`)
    expect(onInsufficient).toHaveBeenCalledOnce()
    expect(res.status).toBe(402)
    expect(res.headers.get('content-type')).toBe('application/problem+json')
    expect(JSON.parse(res.text)).toMatchObject({ status: 402, required: 5, available: 2 })
  })

  it('a custom shouldCharge reads the reply', async () => {
    const meter = await meterWith({ u: 100 })
    const app = fastify()
    await app.register(tollgate, {
      meter,
      account: byHeader,
      cost: 3,
      shouldCharge: (_req, reply) => reply.statusCode !== 201,
    })
    app.get('/', async (_req, reply) => reply.code(201).send('created'))
    const { url } = await listen(app)
    expect((await get(`${url}/`)).status).toBe(201)
    await settledAs(meter, 'u', 'release')
  })
})

describe('options', () => {
  it('are checked once, when the plugin is registered', async () => {
    const meter = await meterWith()
    await expect(fastify().register(tollgate, { meter } as TollgateOptions)).rejects.toThrow(
      InvalidInputError,
    )
    await expect(
      fastify().register(tollgate, { meter, account: byHeader, cost: -1 }),
    ).rejects.toThrow(/cost/)
    await expect(
      fastify().register(tollgate, { meter: {} as Meter, account: byHeader }),
    ).rejects.toThrow(/meter/)
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    await fastify().register(tollgate, { meter, account: byHeader, costs: 2 } as TollgateOptions)
    expect(warn).toHaveBeenCalledWith(
      expect.stringContaining('"costs"'),
      'TollgateWarning',
      'TOLLGATE_UNKNOWN_OPTION',
    )
  })
})
