/**
 * `metered()` on Koa. DESIGN section 3 is checked by the shared adapter suite, in full; the
 * tests after it cover what only Koa has: refusals thrown with `ctx.throw` through Koa's error
 * path ('error' event, error middleware, `ctx.onerror`), errors thrown downstream, and the
 * `ctx` callbacks.
 */
import { Readable } from 'node:stream'
import { describeAdapterConformance, type SuitePath } from '@tollgate/conformance'
import { downStore, listen, meterWith, settledAs, sleep } from '@tollgate/conformance/testing'
import { createMeter, InvalidInputError, type Meter } from '@tollgate/core'
import Koa, { type Context, type Middleware } from 'koa'
import request from 'supertest'
import { describe, expect, it } from 'vitest'
import { isMeteredError, type MeteredOptions, metered } from './index.js'

describeAdapterConformance({
  name: '@tollgate/koa',
  async mount({ meter, options, routes, stream }) {
    const app = new Koa()
    app.on('error', () => {}) // the suite's /throw is expected; keep Koa from logging it
    app.use(
      metered(
        meter,
        options((ctx: Context) => ({ header: (n) => ctx.get(n) || undefined })),
      ),
    )
    app.use(async (ctx) => {
      const credits = ctx.state.credits ?? null
      ctx.type = 'text'
      if (ctx.path === '/stream') {
        ctx.body = Readable.from(stream(credits))
        return
      }
      const reply = await routes[ctx.path as SuitePath](credits)
      ctx.status = reply.status
      ctx.body = reply.body
    })
    return listen(app.callback())
  },
})

const byHeader = (ctx: Context) => ctx.get('x-account')

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
  app.use(metered(meter, { account: byHeader, ...options }))
  app.use(handler)
  return { app, errors, server: () => app.callback() }
}

const ok: Middleware = (ctx) => {
  ctx.body = { ok: true }
}

describe('errors thrown downstream', () => {
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
})

describe('callbacks with ctx', () => {
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
})

describe("refusals through Koa's error path", () => {
  it("a 402 reaches Koa's 'error' event as an exposed HttpError, rendered as problem+json", async () => {
    const meter = await meterWith({ u: 2 })
    const { server, errors } = appWith(meter, { cost: 5 }, ok)
    const res = await request(server()).get('/').set('x-account', 'u').expect(402)
    expect(res.headers['content-type']).toBe('application/problem+json')
    // Koa's 'error' event sees it, as it sees any ctx.throw.
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatchObject({ status: 402, expose: true, code: 'insufficient_credits' })
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

  it("failMode 'closed': the 503 is not exposed, so Koa's default listener logs the outage", async () => {
    const meter = createMeter({ store: downStore() })
    const { server, errors } = appWith(meter, {}, ok)
    await request(server()).get('/').set('x-account', 'u').expect(503)
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatchObject({ status: 503, expose: false, code: 'store_unavailable' })
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
