import {
  downStore,
  ledgerTypes as entryTypes,
  expectLedgerReplays,
  ledgerOldestFirst as fullLedger,
  listen,
  meterWith,
  settledAs,
  sleep,
} from '@tollgate/conformance'
import { createMeter, InvalidInputError, type Meter, StoreUnavailableError } from '@tollgate/core'
import express, {
  type ErrorRequestHandler,
  type Express,
  type Request,
  type RequestHandler,
} from 'express'
import request from 'supertest'
import { request as httpRequest } from 'undici'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { type MeteredOptions, metered } from './index.js'

const byHeader = (req: Request) => req.get('x-account') ?? ''

/** Renders any error the app's error handling receives, so tests see it reached it. */
const errorHandler: ErrorRequestHandler = (err: Error, _req, res, _next) => {
  res.status(500).json({ error: err.message })
}

/** An app with `metered()` in front of one route at `/`, answering `handler`. */
function appWith(meter: Meter, options: Partial<MeteredOptions>, handler: RequestHandler) {
  const app = express()
  app.use(express.json())
  app.use(metered(meter, { account: byHeader, ...options }))
  app.all('/', handler)
  app.use(errorHandler)
  return app
}

const ok: RequestHandler = (_req, res) => {
  res.json({ ok: true })
}

const closers: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const close of closers.splice(0)) await close()
  vi.restoreAllMocks()
})

async function serve(app: Express) {
  const server = await listen(app)
  closers.push(server.close)
  return server.url
}

describe('settlement', () => {
  it('commits the cost of a 2xx response and reports it in the headers', async () => {
    const meter = await meterWith({ u: 100 })
    const res = await request(appWith(meter, { cost: 3 }, ok))
      .get('/')
      .set('x-account', 'u')
      .expect(200)
    expect(res.headers['x-credits-cost']).toBe('3')
    expect(res.headers['x-credits-remaining']).toBe('97')
    const balance = await settledAs(meter, 'u', 'commit')
    expect(balance.total).toBe(97)
    expect(await entryTypes(meter, 'u')).toEqual(['grant', 'hold', 'commit'])
  })

  it.each([400, 404, 422, 500, 503])('releases the hold of a %i response', async (status) => {
    const meter = await meterWith({ u: 100 })
    await request(appWith(meter, { cost: 3 }, (_req, res) => void res.sendStatus(status)))
      .get('/')
      .set('x-account', 'u')
      .expect(status)
    const balance = await settledAs(meter, 'u', 'release')
    expect(balance.total).toBe(100)
  })

  it('a custom shouldCharge decides', async () => {
    const meter = await meterWith({ u: 100 })
    const app = appWith(
      meter,
      { cost: 3, shouldCharge: (_req, res) => res.statusCode !== 201 },
      (_req, res) => void res.sendStatus(201),
    )
    await request(app).get('/').set('x-account', 'u').expect(201)
    await settledAs(meter, 'u', 'release')
  })

  it('a thrown error releases and reaches the error handler', async () => {
    const meter = await meterWith({ u: 100 })
    const app = appWith(meter, { cost: 3 }, () => {
      throw new Error('boom')
    })
    const res = await request(app).get('/').set('x-account', 'u').expect(500)
    expect(res.body).toEqual({ error: 'boom' })
    await settledAs(meter, 'u', 'release')
  })

  it('an Express 5 async handler that rejects releases and reaches the error handler', async () => {
    const meter = await meterWith({ u: 100 })
    const app = appWith(meter, { cost: 3 }, async (req) => {
      await sleep(5)
      req.credits!.actual = 2 // would be charged, had it not failed
      throw new Error('async boom')
    })
    const res = await request(app).get('/').set('x-account', 'u').expect(500)
    expect(res.body).toEqual({ error: 'async boom' })
    const balance = await settledAs(meter, 'u', 'release')
    expect(balance.available).toBe(100)
  })

  it('a client that leaves before the response releases the hold', async () => {
    const meter = await meterWith({ u: 100 })
    let entered!: () => void
    const inHandler = new Promise<void>((resolve) => {
      entered = resolve
    })
    // The handler never answers: only the client going away can end this request.
    const url = await serve(appWith(meter, { cost: 3 }, () => entered()))
    const aborter = new AbortController()
    const pending = httpRequest(url, { headers: { 'x-account': 'u' }, signal: aborter.signal })
    await inHandler
    expect((await meter.balance('u')).held).toBe(3)
    aborter.abort()
    await expect(pending).rejects.toThrow()
    await settledAs(meter, 'u', 'release')
  })

  it('settles exactly once however many ways the request ends', async () => {
    const meter = await meterWith({ u: 100 })
    const app = appWith(meter, { cost: 3 }, (_req, res) => {
      res.on('finish', () => res.emit('close')) // a second 'close' must not settle twice
      res.json({ ok: true })
    })
    await request(app).get('/').set('x-account', 'u').expect(200)
    await settledAs(meter, 'u', 'commit')
    await sleep(20)
    expect(await entryTypes(meter, 'u')).toEqual(['grant', 'hold', 'commit'])
  })
})

describe('actual cost', () => {
  it('commits exactly what the handler set', async () => {
    const meter = await meterWith({ u: 100 })
    const app = appWith(meter, { cost: 10 }, (req, res) => {
      req.credits!.actual = 4
      res.json({ credits: req.credits!.cost })
    })
    const res = await request(app).get('/').set('x-account', 'u').expect(200)
    expect(res.body).toEqual({ credits: 10 })
    const balance = await settledAs(meter, 'u', 'commit')
    expect(balance.total).toBe(96)
    expect((await fullLedger(meter, 'u')).at(-1)?.delta).toBe(-4)
  })

  it('above the hold follows the overage policy: clamp by default', async () => {
    const meter = await meterWith({ u: 12 })
    const app = appWith(meter, { cost: 10 }, (req, res) => {
      req.credits!.actual = 15
      res.end()
    })
    await request(app).get('/').set('x-account', 'u').expect(200)
    const balance = await settledAs(meter, 'u', 'commit')
    expect(balance).toMatchObject({ total: 0, debt: 0 })
  })

  it('above the hold follows the overage policy: overdraft makes debt', async () => {
    const meter = await meterWith({ u: 12 }, 'overdraft')
    const app = appWith(meter, { cost: 10 }, (req, res) => {
      req.credits!.actual = 15
      res.end()
    })
    await request(app).get('/').set('x-account', 'u').expect(200)
    const balance = await settledAs(meter, 'u', 'commit')
    expect(balance).toMatchObject({ total: 0, debt: 3 })
  })

  it('the cost may come from the parsed body (express.json() mounted first)', async () => {
    const meter = await meterWith({ u: 100 })
    const app = appWith(meter, { cost: (req) => req.body.tokens }, ok)
    const res = await request(app).post('/').set('x-account', 'u').send({ tokens: 42 }).expect(200)
    expect(res.headers['x-credits-cost']).toBe('42')
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(58)
  })

  it('an async cost function works', async () => {
    const meter = await meterWith({ u: 100 })
    const app = appWith(meter, { cost: async () => 7 }, ok)
    await request(app).get('/').set('x-account', 'u').expect(200).expect('x-credits-cost', '7')
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(93)
  })
})

describe('refusals', () => {
  it('402 problem+json with the fields and both headers, no Retry-After; the handler does not run', async () => {
    const meter = await meterWith({ u: 2 })
    const handler = vi.fn(ok)
    const res = await request(appWith(meter, { cost: 5 }, handler))
      .get('/')
      .set('x-account', 'u')
      .expect(402)
    expect(res.headers['content-type']).toBe('application/problem+json')
    expect(JSON.parse(res.text)).toMatchObject({
      type: 'https://tollgate.dev/problems/insufficient-credits',
      title: 'Insufficient credits',
      status: 402,
      detail: expect.any(String),
      code: 'insufficient_credits',
      account: 'u',
      required: 5,
      available: 2,
    })
    expect(res.headers['x-credits-cost']).toBe('5')
    expect(res.headers['x-credits-remaining']).toBe('2')
    expect(res.headers['retry-after']).toBeUndefined()
    expect(handler).not.toHaveBeenCalled()
    expect(await entryTypes(meter, 'u')).toEqual(['grant'])
  })

  it('onInsufficient answers instead, with the credit headers already set', async () => {
    const meter = await meterWith({ u: 2 })
    const app = appWith(
      meter,
      {
        cost: 5,
        onInsufficient: (err, _req, res) => {
          res.status(402).json({ message: `top up: ${err.required - err.available} more` })
        },
      },
      ok,
    )
    const res = await request(app).get('/').set('x-account', 'u').expect(402)
    expect(res.body).toEqual({ message: 'top up: 3 more' })
    expect(res.headers['x-credits-remaining']).toBe('2')
  })

  it('an async onInsufficient that rejects goes to the error handler', async () => {
    const meter = await meterWith({ u: 2 })
    const app = appWith(
      meter,
      {
        cost: 5,
        onInsufficient: async () => {
          throw new Error('no answer')
        },
      },
      ok,
    )
    const res = await request(app).get('/').set('x-account', 'u').expect(500)
    expect(res.body).toEqual({ error: 'no answer' })
  })

  it('an invalid account or cost from the request is a 400 problem', async () => {
    const meter = await meterWith({ u: 100 })
    const app = appWith(meter, { cost: (req) => req.body?.tokens ?? 1 }, ok)
    const noAccount = await request(app).get('/').expect(400)
    expect(noAccount.headers['content-type']).toBe('application/problem+json')
    expect(JSON.parse(noAccount.text)).toMatchObject({ status: 400, field: 'account' })
    const badCost = await request(app).post('/').set('x-account', 'u').send({ tokens: -3 })
    expect(badCost.status).toBe(400)
    expect(JSON.parse(badCost.text)).toMatchObject({ status: 400, code: 'invalid_input' })
  })

  it("an error thrown by the app's own account function goes to the error handler", async () => {
    const meter = await meterWith({ u: 100 })
    const app = appWith(
      meter,
      {
        account: () => {
          throw new TypeError('no session')
        },
      },
      ok,
    )
    const res = await request(app).get('/').expect(500)
    expect(res.body).toEqual({ error: 'no session' })
  })
})

describe('headers', () => {
  it('cost 0 reserves nothing and still sets both headers', async () => {
    const meter = await meterWith({ u: 100 })
    const res = await request(appWith(meter, { cost: 0 }, ok))
      .get('/')
      .set('x-account', 'u')
      .expect(200)
    expect(res.headers['x-credits-cost']).toBe('0')
    expect(res.headers['x-credits-remaining']).toBe('100')
    await sleep(10)
    expect(await entryTypes(meter, 'u')).toEqual(['grant'])
  })

  it('takes other names, or none', async () => {
    const meter = await meterWith({ u: 100 })
    const named = appWith(meter, { headers: { cost: 'X-Price', remaining: 'X-Left' } }, ok)
    const a = await request(named).get('/').set('x-account', 'u').expect(200)
    expect(a.headers).toMatchObject({ 'x-price': '1', 'x-left': '99' })
    expect(a.headers['x-credits-cost']).toBeUndefined()
    const none = await request(appWith(meter, { headers: false }, ok))
      .get('/')
      .set('x-account', 'u')
      .expect(200)
    expect(none.headers['x-credits-cost']).toBeUndefined()
    expect(none.headers['x-credits-remaining']).toBeUndefined()
  })
})

describe('skip', () => {
  it('bypasses metering: no hold, no headers, no req.credits', async () => {
    const meter = await meterWith({ admin: 1 })
    const app = appWith(
      meter,
      { cost: 5, skip: (req) => req.get('x-account') === 'admin' },
      (req, res) => {
        res.json({ credits: req.credits ?? null })
      },
    )
    const res = await request(app).get('/').set('x-account', 'admin').expect(200)
    expect(res.body).toEqual({ credits: null })
    expect(res.headers['x-credits-cost']).toBeUndefined()
    expect(await entryTypes(meter, 'admin')).toEqual(['grant'])
  })
})

describe('streaming', () => {
  /** Streams `chunks` SSE events every `everyMs`, charging one credit per event sent. */
  function streamingApp(
    meter: Meter,
    options: Partial<MeteredOptions>,
    chunks: number,
    everyMs: number,
  ) {
    const seen = { sent: 0, closedAt: -1 }
    const app = appWith(meter, options, (req, res) => {
      res.setHeader('Content-Type', 'text/event-stream')
      res.flushHeaders()
      const timer = setInterval(() => {
        seen.sent++
        req.credits!.actual = seen.sent
        res.write(`data: ${seen.sent}\n\n`)
        if (seen.sent === chunks) {
          clearInterval(timer)
          res.end()
        }
      }, everyMs)
      res.on('close', () => {
        clearInterval(timer)
        seen.closedAt = seen.sent
      })
    })
    return { app, seen }
  }

  async function abortHalfWay(options: Partial<MeteredOptions>) {
    const meter = await meterWith({ u: 100 })
    const { app, seen } = streamingApp(meter, { cost: 20, ...options }, 20, 20)
    const url = await serve(app)
    const aborter = new AbortController()
    const res = await httpRequest(url, { headers: { 'x-account': 'u' }, signal: aborter.signal })
    expect(res.statusCode).toBe(200)
    expect(res.headers['x-credits-cost']).toBe('20')
    let received = ''
    await expect(
      (async () => {
        for await (const chunk of res.body) {
          received += String(chunk)
          if (received.includes('data: 5')) aborter.abort()
        }
      })(),
    ).rejects.toThrow()
    return { meter, seen }
  }

  it('a stream aborted half way releases', async () => {
    const { meter, seen } = await abortHalfWay({})
    const balance = await settledAs(meter, 'u', 'release')
    expect(balance.total).toBe(100)
    expect(seen.closedAt).toBeGreaterThanOrEqual(5)
    expect(seen.closedAt).toBeLessThan(20)
  })

  it("a stream aborted half way commits what it produced under onAbort: 'commit'", async () => {
    const { meter, seen } = await abortHalfWay({ onAbort: 'commit' })
    const balance = await settledAs(meter, 'u', 'commit')
    expect(seen.closedAt).toBeLessThan(20)
    expect(balance.total).toBe(100 - seen.closedAt)
  })

  it('a stream that outlives ttlMs is extended while it runs and committed when it ends', async () => {
    const meter = await meterWith({ u: 100 })
    const onError = vi.fn()
    const { app } = streamingApp(meter, { cost: 30, ttlMs: 1_000, onError }, 25, 100)
    const url = await serve(app)
    const started = Date.now()
    const res = await httpRequest(url, { headers: { 'x-account': 'u' } })
    const text = await res.body.text()
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_400)
    expect(text).toContain('data: 25\n\n')
    const balance = await settledAs(meter, 'u', 'commit')
    expect(balance.total).toBe(75)
    expect(onError).not.toHaveBeenCalled()
    expect(await entryTypes(meter, 'u')).toEqual(['grant', 'hold', 'commit'])
  }, 10_000)
})

describe('concurrency', () => {
  it('200 parallel requests at cost 1 on 50 credits: 50 served, 150 refused, ledger replays to 0', async () => {
    const meter = await meterWith({ u: 50 })
    const url = await serve(
      appWith(meter, { cost: 1 }, (_req, res) => void setTimeout(() => res.end('ok'), 5)),
    )
    const statuses = await Promise.all(
      Array.from({ length: 200 }, async () => {
        const res = await httpRequest(url, { headers: { 'x-account': 'u' } })
        await res.body.dump()
        return res.statusCode
      }),
    )
    expect(statuses.filter((s) => s === 200)).toHaveLength(50)
    expect(statuses.filter((s) => s === 402)).toHaveLength(150)
    await vi.waitFor(async () => expect((await meter.balance('u')).held).toBe(0))
    const balance = await expectLedgerReplays(meter, 'u')
    expect(balance).toMatchObject({ total: 0, available: 0, held: 0 })
    const types = await entryTypes(meter, 'u')
    expect(types.filter((t) => t === 'commit')).toHaveLength(50)
  })
})

describe('store failure', () => {
  it("failMode 'closed': 503 problem+json, the handler does not run", async () => {
    const meter = createMeter({ store: downStore() })
    const handler = vi.fn(ok)
    const res = await request(appWith(meter, {}, handler))
      .get('/')
      .set('x-account', 'u')
      .expect(503)
    expect(res.headers['content-type']).toBe('application/problem+json')
    expect(JSON.parse(res.text)).toMatchObject({ status: 503, code: 'store_unavailable' })
    expect(handler).not.toHaveBeenCalled()
  })

  it("failMode 'open': served unmetered, onError told", async () => {
    const meter = createMeter({ store: downStore() })
    const onError = vi.fn()
    const app = appWith(meter, { failMode: 'open', onError }, (req, res) => {
      res.json({ metered: req.credits !== undefined })
    })
    const res = await request(app).get('/').set('x-account', 'u').expect(200)
    expect(res.body).toEqual({ metered: false })
    expect(res.headers['x-credits-cost']).toBeUndefined()
    expect(onError).toHaveBeenCalledTimes(1)
    expect(onError).toHaveBeenCalledWith(expect.any(StoreUnavailableError), expect.anything())
  })
})

describe('mounting', () => {
  const options = { account: byHeader, cost: 2 }

  async function charged(app: Express, path: string, meter: Meter) {
    const before = (await meter.balance('u')).total
    const res = await request(app).get(path).set('x-account', 'u').expect(200)
    if (res.headers['x-credits-cost'] !== undefined) await settledAs(meter, 'u', 'commit')
    return before - (await meter.balance('u')).total
  }

  it('app.use meters every route after it', async () => {
    const meter = await meterWith({ u: 100 })
    const app = express()
    app.get('/free', ok)
    app.use(metered(meter, options))
    app.get('/a', ok)
    app.get('/b', ok)
    expect(await charged(app, '/free', meter)).toBe(0)
    expect(await charged(app, '/a', meter)).toBe(2)
    expect(await charged(app, '/b', meter)).toBe(2)
  })

  it('on a router, only that router', async () => {
    const meter = await meterWith({ u: 100 })
    const app = express()
    const api = express.Router()
    api.use(metered(meter, options))
    api.get('/thing', ok)
    app.use('/api', api)
    app.get('/health', ok)
    expect(await charged(app, '/api/thing', meter)).toBe(2)
    expect(await charged(app, '/health', meter)).toBe(0)
  })

  it('per route, with a price of its own', async () => {
    const meter = await meterWith({ u: 100 })
    const app = express()
    app.get('/cheap', metered(meter, { ...options, cost: 1 }), ok)
    app.get('/dear', metered(meter, { ...options, cost: 9 }), ok)
    app.get('/free', ok)
    expect(await charged(app, '/cheap', meter)).toBe(1)
    expect(await charged(app, '/dear', meter)).toBe(9)
    expect(await charged(app, '/free', meter)).toBe(0)
  })

  it('checks its options once, at creation', async () => {
    const meter = await meterWith()
    expect(() => metered(meter, {} as MeteredOptions)).toThrow(InvalidInputError)
    expect(() => metered(meter, { account: byHeader, cost: -1 })).toThrow(/cost/)
    expect(() => metered({} as Meter, { account: byHeader })).toThrow(/meter/)
  })
})
