import { Readable } from 'node:stream'
import {
  type ArgumentsHost,
  Body,
  Catch,
  Controller,
  type ExceptionFilter,
  ForbiddenException,
  Get,
  HttpCode,
  type HttpException,
  Inject,
  Injectable,
  type MessageEvent,
  Post,
  Query,
  Sse,
  StreamableFile,
  UseFilters,
} from '@nestjs/common'
import { APP_FILTER } from '@nestjs/core'
import {
  deferred,
  downStore,
  expectLedgerReplays,
  ledgerTypes,
  meterWith,
  settledAs,
  sleep,
} from '@tollgate/conformance/testing'
import { createMeter, type Meter, type TollgateError } from '@tollgate/core'
import { interval, map, type Observable, take } from 'rxjs'
import { request } from 'undici'
import { describe, expect, it, vi } from 'vitest'
import {
  Credits,
  CreditsExceptionFilter,
  CreditsRefusedException,
  CurrentCredits,
  type RequestCredits,
  TOLLGATE_METER,
  TollgateModule,
  type TollgateModuleOptions,
} from './index.js'
import { byHeader, call, PLATFORMS, type Platform, rootModule, serve } from './test-support.js'

/** What tests hand the controllers: signals in and out of a running handler. */
const hooks = {
  started: deferred(),
  proceed: deferred(),
  ran: 0,
}
function resetHooks() {
  hooks.started = deferred()
  hooks.proceed = deferred()
  hooks.ran = 0
}

@Controller()
class MeteredController {
  constructor(@Inject(TOLLGATE_METER) private readonly meter: Meter) {}

  @Get('ok')
  @Credits(3)
  ok() {
    hooks.ran++
    return { ok: true }
  }

  @Get('actual')
  @Credits(10)
  actual(@Query('n') n: string, @CurrentCredits() credits: RequestCredits | null) {
    if (credits) credits.actual = Number(n)
    return { cost: credits?.cost, account: credits?.account }
  }

  @Get('priced')
  @Credits((ctx) => Number(ctx.switchToHttp().getRequest().headers['x-cost']))
  priced(@CurrentCredits() credits: RequestCredits | null) {
    return { cost: credits?.cost }
  }

  @Get('default')
  @Credits()
  byModule(@CurrentCredits() credits: RequestCredits | null) {
    return { cost: credits?.cost }
  }

  @Post('body')
  @Credits()
  body(@Body() body: { n: number }, @CurrentCredits() credits: RequestCredits | null) {
    return { n: body.n, cost: credits?.cost }
  }

  @Get('fail')
  @Credits(3)
  fail() {
    throw new Error('boom')
  }

  @Get('forbidden')
  @Credits(3)
  forbidden() {
    throw new ForbiddenException('no')
  }

  @Get('teapot')
  @HttpCode(418)
  @Credits(3)
  teapot() {
    return { short: true, stout: true }
  }

  @Get('slow')
  @Credits(5)
  async slow() {
    hooks.started.resolve()
    await hooks.proceed.promise
    return { late: true }
  }

  @Get('one')
  @Credits(1)
  async one() {
    await sleep(5) // so that the requests overlap
    return { ok: true }
  }

  @Get('observable')
  @Credits(4)
  observable(@CurrentCredits() credits: RequestCredits | null): Observable<number> {
    return interval(20).pipe(
      take(3),
      map((i) => {
        if (credits) credits.actual = i + 1
        return i + 1
      }),
    )
  }

  @Get('file')
  @Credits(5)
  file(@Query('chunks') chunks = '3'): StreamableFile {
    return new StreamableFile(Readable.from(slowChunks(Number(chunks), 30)), {
      type: 'text/plain',
    })
  }

  @Sse('events')
  @Credits(10)
  events(
    @Query('n') n: string,
    @CurrentCredits() credits: RequestCredits | null,
  ): Observable<MessageEvent> {
    return interval(30).pipe(
      take(Number(n)),
      map((i) => {
        if (credits) credits.actual = i + 1
        return { data: { i } }
      }),
    )
  }

  @Sse('long-events')
  @Credits(10, { ttlMs: 1_000 })
  longEvents(@CurrentCredits() credits: RequestCredits | null): Observable<MessageEvent> {
    // Runs past the 1 s TTL: the hold must be extended, or the commit would find it expired.
    return interval(300).pipe(
      take(6),
      map((i) => {
        if (credits) credits.actual = i + 1
        return { data: { i } }
      }),
    )
  }

  @Get('debit')
  async debit() {
    // Not metered; the meter's own error escapes the handler.
    return this.meter.debit('u', 1_000_000)
  }

  @Get('free')
  free(@CurrentCredits() credits: RequestCredits | null) {
    return { credits }
  }

  @Get('balance')
  async balance() {
    const b = await this.meter.balance('u')
    return { available: b.available }
  }
}

async function* slowChunks(n: number, ms: number) {
  for (let i = 0; i < n; i++) {
    await sleep(ms)
    yield `chunk ${i}\n`
  }
}

@Controller('team')
@Credits(2)
class TeamController {
  @Get('a')
  a(@CurrentCredits() credits: RequestCredits | null) {
    return { cost: credits?.cost }
  }

  @Get('b')
  @Credits(7)
  b(@CurrentCredits() credits: RequestCredits | null) {
    return { cost: credits?.cost }
  }

  @Get('c')
  @Credits(false)
  c(@CurrentCredits() credits: RequestCredits | null) {
    return { credits }
  }

  @Get('d')
  @Credits(1, { account: (ctx) => `team:${ctx.switchToHttp().getRequest().headers['x-team']}` })
  d(@CurrentCredits() credits: RequestCredits | null) {
    return { account: credits?.account }
  }
}

/** An app's own filter for refusals, bound to a controller. */
@Catch(CreditsRefusedException)
class PaywallFilter implements ExceptionFilter {
  catch(exception: CreditsRefusedException, host: ArgumentsHost) {
    reply(host, exception.getStatus(), { paywall: true, code: exception.error.code })
  }
}

@Controller('paywalled')
@UseFilters(PaywallFilter)
class PaywalledController {
  @Get()
  @Credits(100)
  get() {
    return { ok: true }
  }
}

/** A catch-all filter as apps register with useGlobalFilters(). */
@Catch()
class EverythingFilter implements ExceptionFilter {
  seen: unknown[] = []
  catch(exception: HttpException, host: ArgumentsHost) {
    this.seen.push(exception)
    reply(host, exception.getStatus?.() ?? 500, { everything: true })
  }
}

/** Sends JSON through either platform's response. */
function reply(host: ArgumentsHost, status: number, body: unknown) {
  const res = host.switchToHttp().getResponse<{
    status?: (n: number) => { json(b: unknown): void }
    code?: (n: number) => { send(b: unknown): void }
  }>()
  if (typeof res.code === 'function') res.code(status).send(body)
  else res.status!(status).json(body)
}

const CONTROLLERS = [MeteredController, TeamController, PaywalledController]

async function app(
  platform: Platform,
  grants: Record<string, number> = { u: 100 },
  options: Partial<TollgateModuleOptions> = {},
  meter?: Meter,
) {
  resetHooks()
  const m = meter ?? (await meterWith(grants))
  const url = await serve(
    platform,
    rootModule({ meter: m, account: byHeader, ...options }, CONTROLLERS),
  )
  return { meter: m, url }
}

const total = async (meter: Meter, account = 'u') =>
  (await meter.balance(account, { fresh: true })).total

describe.each(PLATFORMS)('TollgateModule on %s', (platform) => {
  describe('settlement', () => {
    it('commits the cost of a 2xx response and reports it in both headers', async () => {
      const { meter, url } = await app(platform)
      const res = await call(`${url}/ok`)
      expect(res.status).toBe(200)
      expect(res.json()).toEqual({ ok: true })
      expect(res.headers['x-credits-cost']).toBe('3')
      expect(res.headers['x-credits-remaining']).toBe('97')
      expect((await settledAs(meter, 'u', 'commit')).total).toBe(97)
      expect(await ledgerTypes(meter, 'u')).toEqual(['grant', 'hold', 'commit'])
    })

    it('commits the actual cost the handler set through @CurrentCredits()', async () => {
      const { meter, url } = await app(platform)
      const res = await call(`${url}/actual?n=4`)
      expect(res.json()).toEqual({ cost: 10, account: 'u' })
      expect((await settledAs(meter, 'u', 'commit')).total).toBe(96)
    })

    it('an actual cost above the hold follows the overage policy (clamp)', async () => {
      const { meter, url } = await app(platform, { u: 12 })
      await call(`${url}/actual?n=50`)
      expect((await settledAs(meter, 'u', 'commit')).total).toBe(0)
    })

    it('a thrown error releases the hold and the client gets a 500', async () => {
      const { meter, url } = await app(platform)
      const res = await call(`${url}/fail`)
      expect(res.status).toBe(500)
      expect((await settledAs(meter, 'u', 'release')).total).toBe(100)
    })

    it('an HttpException releases the hold', async () => {
      const { meter, url } = await app(platform)
      expect((await call(`${url}/forbidden`)).status).toBe(403)
      expect((await settledAs(meter, 'u', 'release')).total).toBe(100)
    })

    it('an error status the route sets itself releases (default shouldCharge)', async () => {
      const { meter, url } = await app(platform)
      expect((await call(`${url}/teapot`)).status).toBe(418)
      expect((await settledAs(meter, 'u', 'release')).total).toBe(100)
    })

    it('a custom shouldCharge decides, with the platform request and response', async () => {
      const seen: unknown[] = []
      const { meter, url } = await app(
        platform,
        { u: 100 },
        {
          shouldCharge: (req, res) => {
            seen.push(req.headers['x-account'], typeof res)
            return true
          },
        },
      )
      expect((await call(`${url}/teapot`)).status).toBe(418)
      expect((await settledAs(meter, 'u', 'commit')).total).toBe(97)
      expect(seen).toEqual(['u', 'object'])
    })

    it('a client that leaves releases the hold; the handler was running', async () => {
      const { meter, url } = await app(platform)
      const controller = new AbortController()
      const pending = request(`${url}/slow`, {
        headers: { 'x-account': 'u' },
        signal: controller.signal,
      }).catch((e: unknown) => e)
      await hooks.started.promise
      expect((await meter.balance('u', { fresh: true })).held).toBe(5)
      controller.abort()
      await pending
      expect((await settledAs(meter, 'u', 'release')).total).toBe(100)
      hooks.proceed.resolve()
    })

    it("a client that leaves commits under onAbort: 'commit'", async () => {
      const { meter, url } = await app(platform, { u: 100 }, { onAbort: 'commit' })
      const controller = new AbortController()
      const pending = request(`${url}/slow`, {
        headers: { 'x-account': 'u' },
        signal: controller.signal,
      }).catch((e: unknown) => e)
      await hooks.started.promise
      controller.abort()
      await pending
      expect((await settledAs(meter, 'u', 'commit')).total).toBe(95)
      hooks.proceed.resolve()
    })

    it('an Observable settles when it completes, with the actual cost it set', async () => {
      const { meter, url } = await app(platform)
      const res = await call(`${url}/observable`)
      expect(res.status).toBe(200)
      expect(res.text).toBe('3')
      expect((await settledAs(meter, 'u', 'commit')).total).toBe(97)
    })

    it('a StreamableFile commits once it has been sent whole', async () => {
      const { meter, url } = await app(platform)
      const res = await call(`${url}/file?chunks=3`)
      expect(res.status).toBe(200)
      expect(res.headers['x-credits-cost']).toBe('5')
      expect(res.text).toBe('chunk 0\nchunk 1\nchunk 2\n')
      expect((await settledAs(meter, 'u', 'commit')).total).toBe(95)
    })

    it('a StreamableFile the client stops reading releases', async () => {
      const { meter, url } = await app(platform)
      const res = await request(`${url}/file?chunks=50`, { headers: { 'x-account': 'u' } })
      for await (const _ of res.body) break // the first chunk, then hang up
      expect((await settledAs(meter, 'u', 'release')).total).toBe(100)
    })

    it('an unmetered route has no credits, no headers and no ledger entries', async () => {
      const { meter, url } = await app(platform)
      const res = await call(`${url}/free`)
      expect(res.json()).toEqual({ credits: null })
      expect(res.headers['x-credits-cost']).toBeUndefined()
      expect(await ledgerTypes(meter, 'u')).toEqual(['grant'])
    })
  })

  describe('@Sse', () => {
    async function readEvents(url: string, account = 'u') {
      const res = await request(url, { headers: { 'x-account': account } })
      return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
    }

    it('an SSE stream holds while it runs and commits the actual cost when it ends', async () => {
      const { meter, url } = await app(platform)
      const res = await request(`${url}/events?n=3`, { headers: { 'x-account': 'u' } })
      expect(res.statusCode).toBe(200)
      expect(res.headers['content-type']).toMatch(/^text\/event-stream/)
      expect(res.headers['x-credits-cost']).toBe('10')
      expect(res.headers['x-credits-remaining']).toBe('90')
      const text = await res.body.text()
      expect(text.match(/^data: /gm)).toHaveLength(3)
      expect((await settledAs(meter, 'u', 'commit')).total).toBe(97)
    })

    it('an SSE stream outlives its TTL: the hold is extended while it runs', async () => {
      const { meter, url } = await app(platform)
      const started = Date.now()
      const res = await readEvents(`${url}/long-events`)
      expect(Date.now() - started).toBeGreaterThan(1_000) // ran past the TTL
      expect(res.text.match(/^data: /gm)).toHaveLength(6)
      expect((await settledAs(meter, 'u', 'commit')).total).toBe(94)
    })

    it('an SSE client that leaves releases the hold', async () => {
      const { meter, url } = await app(platform)
      const res = await request(`${url}/events?n=100`, { headers: { 'x-account': 'u' } })
      for await (const chunk of res.body) {
        if (String(chunk).includes('data:')) break // one event, then hang up
      }
      expect((await settledAs(meter, 'u', 'release')).total).toBe(100)
    })

    it('a refused SSE request is a 402 problem+json with both headers', async () => {
      const { meter, url } = await app(platform, { u: 4 })
      const res = await readEvents(`${url}/events?n=3`)
      expect(res.status).toBe(402)
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
      expect(res.headers['x-credits-cost']).toBe('10')
      expect(res.headers['x-credits-remaining']).toBe('4')
      expect(JSON.parse(res.text)).toMatchObject({ status: 402, required: 10, available: 4 })
      expect(await ledgerTypes(meter, 'u')).toEqual(['grant'])
    })
  })

  describe('refusals', () => {
    it('out of credits: 402 problem+json with account, required, available and both headers', async () => {
      const { meter, url } = await app(platform, { u: 2 })
      const res = await call(`${url}/ok`)
      expect(res.status).toBe(402)
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
      expect(res.headers['retry-after']).toBeUndefined()
      expect(res.headers['x-credits-cost']).toBe('3')
      expect(res.headers['x-credits-remaining']).toBe('2')
      expect(res.json()).toEqual({
        type: 'https://tollgate.dev/problems/insufficient-credits',
        title: 'Insufficient credits',
        status: 402,
        detail: 'account needs 3 credits but has 2 available',
        code: 'insufficient_credits',
        account: 'u',
        required: 3,
        available: 2,
      })
      expect(hooks.ran).toBe(0)
      expect(await ledgerTypes(meter, 'u')).toEqual(['grant'])
    })

    it("the app's controller-scoped filter sees the refusal, headers kept", async () => {
      const { url } = await app(platform, { u: 2 })
      const res = await call(`${url}/paywalled`)
      expect(res.status).toBe(402)
      expect(res.json()).toEqual({ paywall: true, code: 'insufficient_credits' })
      expect(res.headers['x-credits-cost']).toBe('100')
      expect(res.headers['x-credits-remaining']).toBe('2')
    })

    it("the app's useGlobalFilters() filter sees the refusal as an HttpException", async () => {
      resetHooks()
      const meter = await meterWith({ u: 2 })
      const filter = new EverythingFilter()
      const url = await serve(
        platform,
        rootModule({ meter, account: byHeader }, CONTROLLERS),
        (nest) => nest.useGlobalFilters(filter),
      )
      const res = await call(`${url}/ok`)
      expect(res.status).toBe(402)
      expect(res.json()).toEqual({ everything: true })
      expect(filter.seen).toHaveLength(1)
      const seen = filter.seen[0] as CreditsRefusedException
      expect(seen).toBeInstanceOf(CreditsRefusedException)
      expect(seen.getResponse()).toMatchObject({ status: 402, account: 'u', required: 3 })
      expect(seen.getStatus()).toBe(402)
      expect(seen.message).toBe('account needs 3 credits but has 2 available')
      expect(seen.error.code).toBe('insufficient_credits')
    })

    it('exceptionFilter: false leaves refusals to the app; the exported filter still answers', async () => {
      resetHooks()
      const meter = await meterWith({ u: 2 })
      const url = await serve(
        platform,
        rootModule({ meter, account: byHeader, exceptionFilter: false }, CONTROLLERS),
        (nest) => nest.useGlobalFilters(new CreditsExceptionFilter()),
      )
      const res = await call(`${url}/ok`)
      expect(res.status).toBe(402)
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
    })

    it("with exceptionFilter: false, the root module's catch-all APP_FILTER answers refusals", async () => {
      resetHooks()
      const meter = await meterWith({ u: 2 })
      const filter = new EverythingFilter()
      const url = await serve(
        platform,
        rootModule({ meter, account: byHeader, exceptionFilter: false }, CONTROLLERS, {
          providers: [{ provide: APP_FILTER, useValue: filter }],
        }),
      )
      const res = await call(`${url}/ok`)
      expect(res.status).toBe(402)
      expect(res.json()).toEqual({ everything: true })
      expect(res.headers['x-credits-cost']).toBe('3')
      expect(filter.seen).toHaveLength(1)
    })

    it('onInsufficient may throw its own exception instead', async () => {
      const { url } = await app(
        platform,
        { u: 2 },
        {
          onInsufficient: async (error) => {
            throw new ForbiddenException(`needs ${error.required}`)
          },
        },
      )
      const res = await call(`${url}/ok`)
      expect(res.status).toBe(403)
      expect(res.json()).toMatchObject({ message: 'needs 3' })
    })

    it('an empty account is a 400 problem+json naming the field, and nothing is reserved', async () => {
      const { meter, url } = await app(platform)
      const res = await call(`${url}/ok`, { account: '' })
      expect(res.status).toBe(400)
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
      expect(res.json()).toMatchObject({ code: 'invalid_input', field: 'account' })
      expect(hooks.ran).toBe(0)
      expect(await ledgerTypes(meter, 'u')).toEqual(['grant'])
    })

    it('a Tollgate error escaping a handler keeps its status (statusCode), not a 500', async () => {
      const { url } = await app(platform)
      const res = await call(`${url}/debit`)
      expect(res.status).toBe(402)
      expect(res.json()).toMatchObject({ statusCode: 402 })
    })
  })

  describe('prices', () => {
    it('@Credits((ctx) => cost) reads the execution context', async () => {
      const { meter, url } = await app(platform)
      const res = await call(`${url}/priced`, { headers: { 'x-cost': '7' } })
      expect(res.json()).toEqual({ cost: 7 })
      expect((await settledAs(meter, 'u', 'commit')).total).toBe(93)
    })

    it('an invalid cost from the request is a 400 problem+json, and nothing is reserved', async () => {
      const { meter, url } = await app(platform)
      const res = await call(`${url}/priced`, { headers: { 'x-cost': '-1' } })
      expect(res.status).toBe(400)
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
      expect(res.json()).toMatchObject({ code: 'invalid_input', status: 400 })
      expect(await ledgerTypes(meter, 'u')).toEqual(['grant'])
    })

    it("@Credits() takes the module's cost: a number, or a function of the request", async () => {
      const fixed = await app(platform, { u: 100 }, { cost: 6 })
      expect((await call(`${fixed.url}/default`)).json()).toEqual({ cost: 6 })
      const byBody = await app(
        platform,
        { u: 100 },
        { cost: (req) => (req as unknown as { body: { n: number } }).body.n },
      )
      const res = await call(`${byBody.url}/body`, { method: 'POST', body: { n: 9 } })
      expect(res.json()).toEqual({ n: 9, cost: 9 })
      expect((await settledAs(byBody.meter, 'u', 'commit')).total).toBe(91)
    })

    it('@Credits without a module cost costs 1', async () => {
      const { url } = await app(platform)
      expect((await call(`${url}/default`)).json()).toEqual({ cost: 1 })
    })

    it("a controller's @Credits meters its routes; a route's replaces it; false frees one", async () => {
      const { meter, url } = await app(platform)
      expect((await call(`${url}/team/a`)).json()).toEqual({ cost: 2 })
      expect((await call(`${url}/team/b`)).json()).toEqual({ cost: 7 })
      const free = await call(`${url}/team/c`)
      expect(free.json()).toEqual({ credits: null })
      expect(free.headers['x-credits-cost']).toBeUndefined()
      await vi.waitFor(async () => expect(await total(meter)).toBe(91))
      await expectLedgerReplays(meter, 'u')
    })

    it("a route's account option charges another account", async () => {
      const { meter, url } = await app(platform, { u: 100, 'team:red': 10 })
      const res = await call(`${url}/team/d`, { headers: { 'x-team': 'red' } })
      expect(res.json()).toEqual({ account: 'team:red' })
      expect((await settledAs(meter, 'team:red', 'commit')).total).toBe(9)
      expect(await total(meter)).toBe(100)
    })
  })

  describe('headers', () => {
    it('headers: false sends none', async () => {
      const { url } = await app(platform, { u: 100 }, { headers: false })
      const res = await call(`${url}/ok`)
      expect(res.headers['x-credits-cost']).toBeUndefined()
      expect(res.headers['x-credits-remaining']).toBeUndefined()
    })

    it('custom header names', async () => {
      const { url } = await app(
        platform,
        { u: 2 },
        { headers: { cost: 'X-Price', remaining: 'X-Left' } },
      )
      const res = await call(`${url}/ok`)
      expect(res.status).toBe(402)
      expect(res.headers['x-price']).toBe('3')
      expect(res.headers['x-left']).toBe('2')
    })
  })

  describe('store failure', () => {
    it("failMode 'closed' (default): 503 problem+json and the route does not run", async () => {
      const { url } = await app(platform, {}, {}, createMeter({ store: downStore() }))
      const res = await call(`${url}/ok`)
      expect(res.status).toBe(503)
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
      expect(res.json()).toMatchObject({ code: 'store_unavailable', status: 503 })
      expect(hooks.ran).toBe(0)
    })

    it("failMode 'open': served unmetered, without headers, and onError is told", async () => {
      const errors: unknown[] = []
      const { url } = await app(
        platform,
        {},
        { failMode: 'open', onError: (e) => errors.push(e) },
        createMeter({ store: downStore() }),
      )
      const res = await call(`${url}/actual?n=1`)
      expect(res.status).toBe(200)
      expect(res.json()).toEqual({})
      expect(res.headers['x-credits-cost']).toBeUndefined()
      expect(errors.map((e) => (e as TollgateError).code)).toEqual(['store_unavailable'])
    })
  })

  it('skip(req) leaves a request unmetered', async () => {
    const { meter, url } = await app(
      platform,
      { u: 100 },
      { skip: (req) => req.headers['x-internal'] === '1' },
    )
    const res = await call(`${url}/actual?n=1`, { headers: { 'x-internal': '1' } })
    expect(res.json()).toEqual({})
    expect(await ledgerTypes(meter, 'u')).toEqual(['grant'])
  })

  it('TOLLGATE_METER injects the meter (a free balance route)', async () => {
    const { url } = await app(platform, { u: 42 })
    expect((await call(`${url}/balance`)).json()).toEqual({ available: 42 })
  })

  it('200 concurrent requests on 50 credits: exactly 50 are served', async () => {
    const { meter, url } = await app(platform, { u: 50 })
    const replies = await Promise.all(Array.from({ length: 200 }, () => call(`${url}/one`)))
    const statuses = replies.map((r) => r.status)
    expect(statuses.filter((s) => s === 200)).toHaveLength(50)
    expect(statuses.filter((s) => s === 402)).toHaveLength(150)
    await vi.waitFor(
      async () =>
        expect(await meter.balance('u', { fresh: true })).toMatchObject({ total: 0, held: 0 }),
      { timeout: 5_000 },
    )
    await expectLedgerReplays(meter, 'u')
  })
})

describe('forRootAsync', () => {
  const CONFIG = Symbol('config')

  @Injectable()
  class Config {
    readonly cost = 4
  }

  it.each(PLATFORMS)('builds the options with injected providers (%s)', async (platform) => {
    resetHooks()
    const meter = await meterWith({ u: 100 })
    class ConfigModule {}
    const { Module } = await import('@nestjs/common')
    Module({ providers: [{ provide: CONFIG, useClass: Config }], exports: [CONFIG] })(ConfigModule)
    class Root {}
    Module({
      imports: [
        TollgateModule.forRootAsync({
          imports: [ConfigModule],
          inject: [CONFIG],
          useFactory: async (config: Config) => ({ meter, account: byHeader, cost: config.cost }),
        }),
      ],
      controllers: [MeteredController],
    })(Root)
    const url = await serve(platform, Root)
    expect((await call(`${url}/default`)).json()).toEqual({ cost: 4 })
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(96)
  })
})
