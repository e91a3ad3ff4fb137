/** The web Responses of metering: problem+json, and headers on Responses of every kind. */
import {
  InsufficientCreditsError,
  problemDetails,
  StoreUnavailableError,
  type TollgateError,
} from '@tollgate/core'
import type { Refusal } from '@tollgate/core/metering'
import { describe, expect, it, vi } from 'vitest'
import { answerRefusal, problemResponse, withCreditHeaders, withHeaders } from './responses.js'

const names = { cost: 'X-Credits-Cost', remaining: 'X-Credits-Remaining', policy: null }

function refusal(error: TollgateError, credits: Refusal['credits'] = null): Refusal {
  return { type: 'refused', error, problem: problemDetails(error), credits }
}

describe('problemResponse', () => {
  it('is problem+json with its status, the headers given, and a Content-Length in bytes', async () => {
    const problem = problemDetails(new InsufficientCreditsError('compte-é', 5, 2))
    const res = problemResponse(problem, { 'X-Extra': 'yes' })
    const text = await res.text()
    expect(res.status).toBe(402)
    expect(res.headers.get('content-type')).toBe('application/problem+json')
    expect(res.headers.get('x-extra')).toBe('yes')
    expect(JSON.parse(text)).toMatchObject({ account: 'compte-é', required: 5, available: 2 })
    expect(Number(res.headers.get('content-length'))).toBe(new TextEncoder().encode(text).length)
    expect(Number(res.headers.get('content-length'))).toBeGreaterThan(text.length)
  })
})

describe('withHeaders', () => {
  it('sets them in place on a Response whose headers can change', () => {
    const res = new Response('ok')
    expect(withCreditHeaders(res, names, 3, 97)).toBe(res)
    expect(res.headers.get('x-credits-cost')).toBe('3')
    expect(res.headers.get('x-credits-remaining')).toBe('97')
    expect(res.headers.get('ratelimit')).toBeNull()
  })

  it('with a policy, the RateLimit fields too; RateLimit-Policy only when the total is known', () => {
    const standard = { ...names, policy: 'credits' }
    const res = withCreditHeaders(new Response('ok'), standard, 3, 97, 100)
    expect(res.headers.get('ratelimit-policy')).toBe('"credits";q=100')
    expect(res.headers.get('ratelimit')).toBe('"credits";r=97')
    const unknown = withCreditHeaders(new Response('ok'), standard, 3, 97)
    expect(unknown.headers.get('ratelimit-policy')).toBeNull()
    expect(unknown.headers.get('ratelimit')).toBe('"credits";r=97')
  })

  it('copies a Response whose headers are immutable, keeping status, headers and body', async () => {
    const redirect = Response.redirect('http://app.test/next', 307)
    const copy = withHeaders(redirect, { 'X-Credits-Cost': '1' })
    expect(copy).not.toBe(redirect)
    expect(copy.status).toBe(307)
    expect(copy.headers.get('location')).toBe('http://app.test/next')
    expect(copy.headers.get('x-credits-cost')).toBe('1')
    expect(redirect.headers.get('x-credits-cost')).toBeNull()
  })

  it('passes through a Response that cannot be copied (Response.error())', () => {
    const error = Response.error()
    expect(withHeaders(error, { 'X-Credits-Cost': '1' })).toBe(error)
  })

  it('leaves a Response alone when headers are off', () => {
    const res = new Response('ok')
    expect(withCreditHeaders(res, null, 3, 97)).toBe(res)
    expect([...res.headers.keys()]).toEqual(['content-type'])
  })
})

describe('answerRefusal', () => {
  it('answers a short account with the app’s Response, given the refusal headers', async () => {
    const short = refusal(new InsufficientCreditsError('u', 5, 2), {
      account: 'u',
      cost: 5,
      available: 2,
    })
    const res = await answerRefusal(short, names, (err) =>
      Response.json({ need: err.required }, { status: 402 }),
    )
    expect(await res.json()).toEqual({ need: 5 })
    expect(res.headers.get('x-credits-cost')).toBe('5')
    expect(res.headers.get('x-credits-remaining')).toBe('2')
  })

  it('answers any other refusal as problem+json, without calling onInsufficient', async () => {
    const onInsufficient = vi.fn(() => new Response('no'))
    const res = await answerRefusal(
      refusal(new StoreUnavailableError('down')),
      names,
      onInsufficient,
    )
    expect(res.status).toBe(503)
    expect(res.headers.get('content-type')).toBe('application/problem+json')
    expect(res.headers.get('x-credits-cost')).toBeNull()
    expect(onInsufficient).not.toHaveBeenCalled()
  })
})
