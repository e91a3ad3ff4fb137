/**
 * Route decorators and metering decorators in either order: `@Credits` above or below `@Get`,
 * `@Post` and `@Sse`, and `@Metered` from `@tollgate/decorators` above or below `@Get`.
 */
import { Controller, Get, type MessageEvent, Post, Sse, type Type } from '@nestjs/common'
import { ledgerTypes, meterWith, settledAs } from '@tollgate/conformance/testing'
import type { Meter } from '@tollgate/core'
import { createMetered, currentCredits } from '@tollgate/decorators'
import { type Observable, of } from 'rxjs'
import { describe, expect, it } from 'vitest'
import { Credits, CurrentCredits, type RequestCredits } from './index.js'
import { byHeader, call, PLATFORMS, rootModule, serve } from './test-support.js'

@Controller('order')
class OrderController {
  @Credits(2)
  @Get('credits-above-get')
  creditsAboveGet(@CurrentCredits() credits: RequestCredits | null) {
    return { cost: credits?.cost }
  }

  @Get('credits-below-get')
  @Credits(2)
  creditsBelowGet(@CurrentCredits() credits: RequestCredits | null) {
    return { cost: credits?.cost }
  }

  @Credits(2)
  @Post('credits-above-post')
  creditsAbovePost(@CurrentCredits() credits: RequestCredits | null) {
    return { cost: credits?.cost }
  }

  @Post('credits-below-post')
  @Credits(2)
  creditsBelowPost(@CurrentCredits() credits: RequestCredits | null) {
    return { cost: credits?.cost }
  }

  @Credits(2)
  @Sse('credits-above-sse')
  creditsAboveSse(@CurrentCredits() credits: RequestCredits | null): Observable<MessageEvent> {
    return of({ data: { cost: credits?.cost } })
  }

  @Sse('credits-below-sse')
  @Credits(2)
  creditsBelowSse(@CurrentCredits() credits: RequestCredits | null): Observable<MessageEvent> {
    return of({ data: { cost: credits?.cost } })
  }
}

/** A controller whose methods `@Metered` meters as method calls, written both ways round. */
function meteredController(meter: Meter): Type<unknown> {
  const Metered = createMetered(meter, { account: () => 'u' })
  @Controller('metered')
  class MeteredMethodsController {
    @Metered({ cost: 3 })
    @Get('above-get')
    async aboveGet() {
      return { cost: currentCredits()?.cost }
    }

    @Get('below-get')
    @Metered({ cost: 3 })
    async belowGet() {
      return { cost: currentCredits()?.cost }
    }
  }
  return MeteredMethodsController
}

const ROUTES = [
  ['GET', 'credits-above-get'],
  ['GET', 'credits-below-get'],
  ['POST', 'credits-above-post'],
  ['POST', 'credits-below-post'],
] as const

describe.each(PLATFORMS)('decorator order on %s', (platform) => {
  it.each(ROUTES)('%s /%s is routed and metered', async (method, path) => {
    const meter = await meterWith({ u: 10 })
    const url = await serve(platform, rootModule({ meter, account: byHeader }, [OrderController]))
    const res = await call(`${url}/order/${path}`, { method })
    expect(res.status).toBe(method === 'POST' ? 201 : 200)
    expect(res.json()).toEqual({ cost: 2 })
    expect(res.headers['x-credits-cost']).toBe('2')
    expect((await settledAs(meter, 'u', 'commit')).total).toBe(8)
  })

  it.each(['credits-above-sse', 'credits-below-sse'])(
    '@Sse /%s is routed and metered',
    async (path) => {
      const meter = await meterWith({ u: 10 })
      const url = await serve(platform, rootModule({ meter, account: byHeader }, [OrderController]))
      const res = await call(`${url}/order/${path}`)
      expect(res.status).toBe(200)
      expect(res.headers['content-type']).toMatch(/^text\/event-stream/)
      expect(res.headers['x-credits-cost']).toBe('2')
      expect(res.text).toContain('data: {"cost":2}')
      expect((await settledAs(meter, 'u', 'commit')).total).toBe(8)
    },
  )

  it.each(['above-get', 'below-get'])(
    "@tollgate/decorators' @Metered written %s is routed and meters the call",
    async (path) => {
      const meter = await meterWith({ u: 10 })
      const url = await serve(
        platform,
        rootModule({ meter, account: byHeader }, [meteredController(meter)]),
      )
      const res = await call(`${url}/metered/${path}`)
      expect(res.status).toBe(200)
      expect(res.json()).toEqual({ cost: 3 })
      expect(await ledgerTypes(meter, 'u')).toEqual(['grant', 'hold', 'commit'])
      expect((await meter.balance('u', { fresh: true })).total).toBe(7)
    },
  )
})
