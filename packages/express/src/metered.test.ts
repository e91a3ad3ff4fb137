/**
 * `metered()` on Express. DESIGN section 3 is checked by the shared adapter suite, in full; the
 * tests after it cover what only Express has: `next(err)` and the app's error handler, the
 * `(req, res)` callbacks, and the ways middleware mounts (app, router, route).
 */
import { pipeline, Readable } from 'node:stream'
import { describeAdapterConformance } from '@tollgate/conformance'
import { listen, meterWith, settledAs } from '@tollgate/conformance/testing'
import { InvalidInputError, type Meter } from '@tollgate/core'
import express, {
  type ErrorRequestHandler,
  type Express,
  type Request,
  type RequestHandler,
} from 'express'
import request from 'supertest'
import { describe, expect, it, vi } from 'vitest'
import { type MeteredOptions, metered } from './index.js'

describeAdapterConformance({
  name: '@tollgate/express',
  async mount({ meter, options, routes, stream }) {
    const app = express()
    app.use(
      metered(
        meter,
        options((req: Request) => ({ header: (name) => req.get(name) })),
      ),
    )
    for (const [path, route] of Object.entries(routes)) {
      app.get(path, async (req, res) => {
        const reply = await route(req.credits ?? null)
        res.status(reply.status).type('text').send(reply.body)
      })
    }
    app.get('/stream', (req, res) => {
      // pipeline, not pipe: a client that leaves stops the source too.
      pipeline(Readable.from(stream(req.credits ?? null)), res.type('text'), () => {})
    })
    return listen(app)
  },
})

const byHeader = (req: Request) => req.get('x-account') ?? ''

/** Renders any error the app's error handling receives, so tests see it reached it. */
const errorHandler: ErrorRequestHandler = (err: Error, _req, res, _next) => {
  res.status(500).json({ error: err.message })
}

/** An app with `metered()` in front of one route at `/`, answering `handler`. */
function appWith(meter: Meter, options: Partial<MeteredOptions>, handler: RequestHandler) {
  const app = express()
  app.use(metered(meter, { account: byHeader, ...options }))
  app.all('/', handler)
  app.use(errorHandler)
  return app
}

const ok: RequestHandler = (_req, res) => {
  res.json({ ok: true })
}

describe('errors reach the app', () => {
  it('an Express 5 async handler that rejects reaches the error handler, and is released', async () => {
    const meter = await meterWith({ u: 100 })
    const app = appWith(meter, { cost: 3 }, async (req) => {
      req.credits!.actual = 2 // would be charged, had it not failed
      throw new Error('async boom')
    })
    const res = await request(app).get('/').set('x-account', 'u').expect(500)
    expect(res.body).toEqual({ error: 'async boom' })
    expect((await settledAs(meter, 'u', 'release')).available).toBe(100)
  })

  it("an error thrown by the app's own account function goes to the error handler", async () => {
    const meter = await meterWith({ u: 100 })
    const account = () => {
      throw new TypeError('no session')
    }
    const res = await request(appWith(meter, { account }, ok))
      .get('/')
      .expect(500)
    expect(res.body).toEqual({ error: 'no session' })
  })
})

describe('callbacks with (req, res)', () => {
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
    expect(res.headers).toMatchObject({ 'x-credits-cost': '5', 'x-credits-remaining': '2' })
  })

  it.each([
    [
      'throws',
      () => {
        throw new Error('no answer')
      },
    ],
    ['rejects', async () => Promise.reject(new Error('no answer'))],
  ])('an onInsufficient that %s goes to the error handler', async (_how, onInsufficient) => {
    const meter = await meterWith({ u: 2 })
    const app = appWith(meter, { cost: 5, onInsufficient }, ok)
    const res = await request(app).get('/').set('x-account', 'u').expect(500)
    expect(res.body).toEqual({ error: 'no answer' })
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

  it('per route, with a price of its own; the cost may come from the parsed body', async () => {
    const meter = await meterWith({ u: 100 })
    const app = express()
    app.use(express.json())
    app.get('/cheap', metered(meter, { ...options, cost: 1 }), ok)
    app.get('/dear', metered(meter, { ...options, cost: 9 }), ok)
    app.post('/priced', metered(meter, { ...options, cost: (req) => req.body.tokens }), ok)
    app.get('/free', ok)
    expect(await charged(app, '/cheap', meter)).toBe(1)
    expect(await charged(app, '/dear', meter)).toBe(9)
    expect(await charged(app, '/free', meter)).toBe(0)
    await request(app)
      .post('/priced')
      .set('x-account', 'u')
      .send({ tokens: 42 })
      .expect(200)
      .expect('x-credits-cost', '42')
  })

  it('checks its options once, at creation', async () => {
    const meter = await meterWith()
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    expect(() => metered(meter, {} as MeteredOptions)).toThrow(InvalidInputError)
    expect(() => metered(meter, { account: byHeader, cost: -1 })).toThrow(/cost/)
    expect(() => metered({} as Meter, { account: byHeader })).toThrow(/meter/)
    metered(meter, { account: byHeader, costs: 2 } as MeteredOptions)
    expect(warn).toHaveBeenCalledWith(
      expect.stringContaining('"costs"'),
      'TollgateWarning',
      'TOLLGATE_UNKNOWN_OPTION',
    )
    warn.mockRestore()
  })
})
