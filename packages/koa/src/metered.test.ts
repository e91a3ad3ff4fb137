import { PassThrough } from 'node:stream'
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
import Koa, { type Context, type Middleware } from 'koa'
import request from 'supertest'
import { request as httpRequest } from 'undici'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { isMeteredError, type MeteredOptions, metered } from './index.js'

const byHeader = (ctx: Context) => ctx.get('x-account')

/** Just enough of a JSON body parser for a cost that depends on the body. */
const jsonBody: Middleware = async (ctx, next) => {
  if (ctx.is('application/json')) {
    let text = ''
    for await (const chunk of ctx.req) text += String(chunk)
    ;(ctx.request as { body?: unknown }).body = JSON.parse(text)
  }
  await next()
}

function bodyOf(ctx: Context): { tokens?: number } {
  return ((ctx.request as { body?: unknown }).body ?? {}) as { tokens?: number }
}

/**
 * An app with `metered()` in front of `handler`. `errors` collects what reaches Koa's 'error'
 * event (a listener of its own also keeps Koa from logging them).
 */
function appWith(
  meter: Meter,
  options: Partial<MeteredOptions>,
  handler: Middleware,
  before: Middleware[] = [],
) {
  const app = new Koa()
  const errors: Error[] = []
  app.on('error', (err: Error) => errors.push(err))
  for (const m of before) app.use(m)
  app.use(jsonBody)
  app.use(metered(meter, { account: byHeader, ...options }))
  app.use(handler)
  return { app, errors, server: () => app.callback() }
}

const ok: Middleware = (ctx) => {
  ctx.body = { ok: true }
}

const closers: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const close of closers.splice(0)) await close()
  vi.restoreAllMocks()
})

async function serve(app: Koa) {
  const server = await listen(app.callback())
  closers.push(server.close)
  return server.url
}

describe('settlement', () => {
  it('commits the cost of a 2xx response and reports it in the headers', async () => {
    const meter = await meterWith({ u: 100 })
    const res = await request(appWith(meter, { cost: 3 }, ok).server())
      .get('/')
      .set('x-account', 'u')
      .expect(200)
    expect(res.headers['x-credits-cost']).toBe('3')
    expect(res.headers['x-credits-remaining']).toBe('97')
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(97)
    expect(await entryTypes(meter, 'u')).toEqual(['grant', 'hold', 'commit'])
  })

  it.each([400, 404, 422, 500, 503])('releases the hold of a %i response', async (status) => {
    const meter = await meterWith({ u: 100 })
    const { server } = appWith(meter, { cost: 3 }, (ctx) => {
      ctx.status = status
      ctx.body = 'no'
    })
    await request(server()).get('/').set('x-account', 'u').expect(status)
    expect((await settledAs(meter, 'u', 'release')).total).toBe(100)
  })

  it('a handler that sets no body (404) releases', async () => {
    const meter = await meterWith({ u: 100 })
    await request(appWith(meter, { cost: 3 }, () => {}).server())
      .get('/')
      .set('x-account', 'u')
      .expect(404)
    await settledAs(meter, 'u', 'release')
  })

  it('a custom shouldCharge decides', async () => {
    const meter = await meterWith({ u: 100 })
    const { server } = appWith(
      meter,
      { cost: 3, shouldCharge: (ctx) => ctx.status !== 201 },
      (ctx) => {
        ctx.status = 201
      },
    )
    await request(server()).get('/').set('x-account', 'u').expect(201)
    await settledAs(meter, 'u', 'release')
  })

  it("an error thrown downstream releases and reaches Koa's error handling", async () => {
    const meter = await meterWith({ u: 100 })
    const { server, errors } = appWith(meter, { cost: 3 }, async (ctx) => {
      await sleep(5)
      ctx.state.credits!.actual = 2 // would be charged, had it not failed
      throw new Error('boom')
    })
    await request(server()).get('/').set('x-account', 'u').expect(500)
    expect(errors.map((e) => e.message)).toEqual(['boom'])
    await settledAs(meter, 'u', 'release')
  })

  it('an error thrown downstream releases even when an error middleware answers 200', async () => {
    const meter = await meterWith({ u: 100 })
    const forgiving: Middleware = async (ctx, next) => {
      try {
        await next()
      } catch {
        ctx.status = 200
        ctx.body = 'handled'
      }
    }
    const { server } = appWith(
      meter,
      { cost: 3 },
      () => {
        throw new Error('boom')
      },
      [forgiving],
    )
    await request(server()).get('/').set('x-account', 'u').expect(200)
    await settledAs(meter, 'u', 'release')
  })

  it('a client that leaves before the response releases the hold', async () => {
    const meter = await meterWith({ u: 100 })
    let entered!: () => void
    const inHandler = new Promise<void>((resolve) => {
      entered = resolve
    })
    const { app } = appWith(meter, { cost: 3 }, async () => {
      entered()
      await sleep(1_000) // answers only after the client has gone
    })
    const url = await serve(app)
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
    const { server } = appWith(meter, { cost: 3 }, (ctx) => {
      ctx.res.on('finish', () => ctx.res.emit('close'))
      ctx.body = 'ok'
    })
    await request(server()).get('/').set('x-account', 'u').expect(200)
    await settledAs(meter, 'u', 'commit')
    await sleep(20)
    expect(await entryTypes(meter, 'u')).toEqual(['grant', 'hold', 'commit'])
  })
})

describe('actual cost', () => {
  it('commits exactly what the handler set', async () => {
    const meter = await meterWith({ u: 100 })
    const { server } = appWith(meter, { cost: 10 }, (ctx) => {
      ctx.state.credits!.actual = 4
      ctx.body = { reserved: ctx.state.credits!.cost }
    })
    const res = await request(server()).get('/').set('x-account', 'u').expect(200)
    expect(res.body).toEqual({ reserved: 10 })
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(96)
    expect((await fullLedger(meter, 'u')).at(-1)?.delta).toBe(-4)
  })

  it('above the hold follows the overage policy: clamp by default, overdraft makes debt', async () => {
    const handler: Middleware = (ctx) => {
      ctx.state.credits!.actual = 15
      ctx.body = 'ok'
    }
    const clamp = await meterWith({ u: 12 })
    await request(appWith(clamp, { cost: 10 }, handler).server())
      .get('/')
      .set('x-account', 'u')
    expect(await settledAs(clamp, 'u', 'commit')).toMatchObject({ total: 0, debt: 0 })
    const overdraft = await meterWith({ u: 12 }, 'overdraft')
    await request(appWith(overdraft, { cost: 10 }, handler).server())
      .get('/')
      .set('x-account', 'u')
    expect(await settledAs(overdraft, 'u', 'commit')).toMatchObject({ total: 0, debt: 3 })
  })

  it('the cost may come from the parsed body, sync or async', async () => {
    const meter = await meterWith({ u: 100 })
    const sync = appWith(meter, { cost: (ctx) => bodyOf(ctx).tokens ?? 1 }, ok)
    await request(sync.server())
      .post('/')
      .set('x-account', 'u')
      .send({ tokens: 42 })
      .expect(200)
      .expect('x-credits-cost', '42')
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(58)
    const async_ = appWith(meter, { cost: async () => 8 }, ok)
    await request(async_.server()).get('/').set('x-account', 'u').expect('x-credits-cost', '8')
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(50)
  })
})

describe('refusals', () => {
  it("402 through Koa's default handler: problem+json with the fields and both headers", async () => {
    const meter = await meterWith({ u: 2 })
    const handler = vi.fn(ok)
    const { server, errors } = appWith(meter, { cost: 5 }, handler)
    const res = await request(server()).get('/').set('x-account', 'u').expect(402)
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
    // Koa's 'error' event sees it, as it sees any ctx.throw.
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatchObject({ status: 402, expose: true, code: 'insufficient_credits' })
    expect(await entryTypes(meter, 'u')).toEqual(['grant'])
  })

  it('an error middleware upstream sees an HttpError with the headers and the problem', async () => {
    const meter = await meterWith({ u: 2 })
    const seen: unknown[] = []
    const renderer: Middleware = async (ctx, next) => {
      try {
        await next()
      } catch (err) {
        seen.push(err)
        const e = err as { status?: number; message: string; headers?: Record<string, string> }
        ctx.status = e.status ?? 500
        ctx.set(e.headers ?? {})
        ctx.body = { error: e.message }
      }
    }
    const { server } = appWith(meter, { cost: 5 }, ok, [renderer])
    const res = await request(server()).get('/').set('x-account', 'u').expect(402)
    expect(res.body).toEqual({ error: expect.stringContaining('5') })
    expect(res.headers['x-credits-remaining']).toBe('2')
    expect(seen).toHaveLength(1)
    const err = seen[0]
    expect(isMeteredError(err)).toBe(true)
    expect(err).toMatchObject({
      status: 402,
      expose: true,
      headers: { 'X-Credits-Cost': '5', 'X-Credits-Remaining': '2' },
      problem: { status: 402, account: 'u', required: 5, available: 2 },
    })
    expect(isMeteredError(new Error('x'))).toBe(false)
  })

  it("an app-wide ctx.onerror of the app's own renders the refusal, not metered()", async () => {
    const meter = await meterWith({ u: 2 })
    const { app, server } = appWith(meter, { cost: 5 }, ok)
    app.context.onerror = function (this: Context, err: Error | null) {
      if (err === null) return
      const e = err as Error & { status: number; headers: Record<string, string> }
      this.set(e.headers)
      this.status = e.status
      this.type = 'application/vnd.app-error+json'
      this.res.end(JSON.stringify({ mine: e.message }))
    }
    const res = await request(server()).get('/').set('x-account', 'u').expect(402)
    expect(res.headers['content-type']).toBe('application/vnd.app-error+json')
    expect(res.headers['x-credits-cost']).toBe('5')
  })

  it('onInsufficient answers instead, with the credit headers already set', async () => {
    const meter = await meterWith({ u: 2 })
    const { server } = appWith(
      meter,
      {
        cost: 5,
        onInsufficient: (err, ctx) => {
          ctx.status = 402
          ctx.body = { message: `top up: ${err.required - err.available} more` }
        },
      },
      ok,
    )
    const res = await request(server()).get('/').set('x-account', 'u').expect(402)
    expect(res.body).toEqual({ message: 'top up: 3 more' })
    expect(res.headers['x-credits-remaining']).toBe('2')
  })

  it('an invalid account or cost from the request is a 400 problem', async () => {
    const meter = await meterWith({ u: 100 })
    const { server } = appWith(meter, { cost: (ctx) => bodyOf(ctx).tokens ?? 1 }, ok)
    const noAccount = await request(server()).get('/').expect(400)
    expect(noAccount.headers['content-type']).toBe('application/problem+json')
    expect(JSON.parse(noAccount.text)).toMatchObject({ status: 400, field: 'account' })
    const badCost = await request(server()).post('/').set('x-account', 'u').send({ tokens: -3 })
    expect(badCost.status).toBe(400)
    expect(JSON.parse(badCost.text)).toMatchObject({ status: 400, code: 'invalid_input' })
  })

  it("an error thrown by the app's own account function goes to Koa's error handling", async () => {
    const meter = await meterWith({ u: 100 })
    const account = () => {
      throw new TypeError('no session')
    }
    const { server, errors } = appWith(meter, { account }, ok)
    const res = await request(server()).get('/').expect(500)
    expect(res.headers['content-type']).toMatch(/^text\/plain/)
    expect(errors.map((e) => e.message)).toEqual(['no session'])
  })
})

describe('headers', () => {
  it('cost 0 reserves nothing and still sets both headers', async () => {
    const meter = await meterWith({ u: 100 })
    const res = await request(appWith(meter, { cost: 0 }, ok).server())
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
    const a = await request(named.server()).get('/').set('x-account', 'u').expect(200)
    expect(a.headers).toMatchObject({ 'x-price': '1', 'x-left': '99' })
    expect(a.headers['x-credits-cost']).toBeUndefined()
    const none = await request(appWith(meter, { headers: false }, ok).server())
      .get('/')
      .set('x-account', 'u')
      .expect(200)
    expect(none.headers['x-credits-cost']).toBeUndefined()
    expect(none.headers['x-credits-remaining']).toBeUndefined()
  })
})

describe('skip', () => {
  it('bypasses metering: no hold, no headers, no ctx.state.credits', async () => {
    const meter = await meterWith({ admin: 1 })
    const { server } = appWith(
      meter,
      { cost: 5, skip: (ctx) => ctx.get('x-account') === 'admin' },
      (ctx) => {
        ctx.body = { credits: ctx.state.credits ?? null }
      },
    )
    const res = await request(server()).get('/').set('x-account', 'admin').expect(200)
    expect(res.body).toEqual({ credits: null })
    expect(res.headers['x-credits-cost']).toBeUndefined()
    expect(await entryTypes(meter, 'admin')).toEqual(['grant'])
  })
})

describe('streaming', () => {
  /**
   * Streams `chunks` SSE events every `everyMs` as a stream body, charging one credit per event
   * sent. The middleware chain returns at once; the response goes on.
   */
  function streamingApp(
    meter: Meter,
    options: Partial<MeteredOptions>,
    chunks: number,
    everyMs: number,
  ) {
    const seen = { sent: 0, closedAt: -1 }
    const { app } = appWith(meter, options, (ctx) => {
      const credits = ctx.state.credits!
      const stream = new PassThrough()
      ctx.type = 'text/event-stream'
      ctx.body = stream
      const timer = setInterval(() => {
        seen.sent++
        credits.actual = seen.sent
        stream.write(`data: ${seen.sent}\n\n`)
        if (seen.sent === chunks) {
          clearInterval(timer)
          stream.end()
        }
      }, everyMs)
      ctx.res.on('close', () => {
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
    expect((await settledAs(meter, 'u', 'release')).total).toBe(100)
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
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(75)
    expect(onError).not.toHaveBeenCalled()
    expect(await entryTypes(meter, 'u')).toEqual(['grant', 'hold', 'commit'])
  }, 10_000)
})

describe('concurrency', () => {
  it('200 parallel requests at cost 1 on 50 credits: 50 served, 150 refused, ledger replays to 0', async () => {
    const meter = await meterWith({ u: 50 })
    const { app } = appWith(meter, { cost: 1 }, async (ctx) => {
      await sleep(5)
      ctx.body = 'ok'
    })
    const url = await serve(app)
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
    expect((await entryTypes(meter, 'u')).filter((t) => t === 'commit')).toHaveLength(50)
  })
})

describe('store failure', () => {
  it("failMode 'closed': 503 problem+json, the handler does not run", async () => {
    const meter = createMeter({ store: downStore() })
    const handler = vi.fn(ok)
    const { server, errors } = appWith(meter, {}, handler)
    const res = await request(server()).get('/').set('x-account', 'u').expect(503)
    expect(res.headers['content-type']).toBe('application/problem+json')
    expect(JSON.parse(res.text)).toMatchObject({ status: 503, code: 'store_unavailable' })
    expect(handler).not.toHaveBeenCalled()
    // Not exposed, so Koa's default 'error' listener would log the outage.
    expect(errors[0]).toMatchObject({ status: 503, expose: false })
  })

  it("failMode 'open': served unmetered, onError told", async () => {
    const meter = createMeter({ store: downStore() })
    const onError = vi.fn()
    const { server } = appWith(meter, { failMode: 'open', onError }, (ctx) => {
      ctx.body = { metered: ctx.state.credits !== undefined }
    })
    const res = await request(server()).get('/').set('x-account', 'u').expect(200)
    expect(res.body).toEqual({ metered: false })
    expect(res.headers['x-credits-cost']).toBeUndefined()
    expect(onError).toHaveBeenCalledTimes(1)
    expect(onError).toHaveBeenCalledWith(expect.any(StoreUnavailableError), expect.anything())
  })
})

describe('creation', () => {
  it('checks its options once, at creation', async () => {
    const meter = await meterWith()
    expect(() => metered(meter, {} as MeteredOptions)).toThrow(InvalidInputError)
    expect(() => metered(meter, { account: byHeader, ttlMs: 10 })).toThrow(/ttlMs/)
    expect(() => metered({} as Meter, { account: byHeader })).toThrow(/meter/)
  })
})
