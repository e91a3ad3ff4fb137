import { describe, expect, it } from 'vitest'
import { InvalidInputError } from '../errors.js'
import { creditHeaderFields, resolveCreditHeaders } from './credit-headers.js'

describe('resolveCreditHeaders', () => {
  it('X-Credits-* by default, RateLimit fields only when asked, null when nothing is written', () => {
    expect(resolveCreditHeaders(true, false)).toEqual({
      cost: 'X-Credits-Cost',
      remaining: 'X-Credits-Remaining',
      policy: null,
    })
    expect(resolveCreditHeaders(true, true)).toEqual({
      cost: 'X-Credits-Cost',
      remaining: 'X-Credits-Remaining',
      policy: 'credits',
    })
    expect(resolveCreditHeaders(false, { policy: 'prepaid' })).toEqual({
      cost: null,
      remaining: null,
      policy: 'prepaid',
    })
    expect(resolveCreditHeaders({ remaining: 'X-Left' }, {})).toEqual({
      cost: 'X-Credits-Cost',
      remaining: 'X-Left',
      policy: 'credits',
    })
    expect(resolveCreditHeaders(false, false)).toBeNull()
  })

  it.each([
    [{ policy: 'a\\b' }, 'standardHeaders.policy'],
    [{ policy: 'x'.repeat(65) }, 'standardHeaders.policy'],
    [{ policy: 'crédits' }, 'standardHeaders.policy'],
    [{ policy: 7 }, 'standardHeaders.policy'],
    ['yes', 'standardHeaders'],
  ])('standardHeaders %j is an InvalidInputError naming %s', (standard, field) => {
    expect(() => resolveCreditHeaders(true, standard)).toThrow(InvalidInputError)
    expect(() => resolveCreditHeaders(true, standard)).toThrow(new RegExp(`^${field}:`))
  })
})

describe('creditHeaderFields', () => {
  const both = { cost: 'X-Credits-Cost', remaining: 'X-Credits-Remaining', policy: 'credits' }

  it('the pair, RateLimit-Policy with the account credits as q, RateLimit with available as r', () => {
    expect(creditHeaderFields(both, 3, 97, 100)).toEqual({
      'X-Credits-Cost': '3',
      'X-Credits-Remaining': '97',
      'RateLimit-Policy': '"credits";q=100',
      RateLimit: '"credits";r=97',
    })
    // Total unknown (a refusal): no policy field, the service limit alone.
    expect(creditHeaderFields({ ...both, cost: null, remaining: null }, 5, 2, null)).toEqual({
      RateLimit: '"credits";r=2',
    })
    expect(creditHeaderFields(null, 3, 97, 100)).toEqual({})
  })

  it('keeps a balance beyond 15 digits a valid Structured Field Integer', () => {
    const big = Number.MAX_SAFE_INTEGER
    expect(creditHeaderFields(both, 1, big, big)).toMatchObject({
      'X-Credits-Remaining': String(big),
      'RateLimit-Policy': '"credits";q=999999999999999',
      RateLimit: '"credits";r=999999999999999',
    })
  })
})
