import { describe, expect, it } from 'vitest'
import {
  CodeUnavailableError,
  InsufficientCreditsError,
  InvalidInputError,
  StoreUnavailableError,
} from '../errors.js'
import { problemDetails, problemType } from './problem.js'

describe('problemDetails', () => {
  it('a 402 carries exactly the RFC 9457 members, the code and the error fields', () => {
    expect(problemDetails(new InsufficientCreditsError('u', 30, 20))).toEqual({
      type: 'https://tollgate.dev/problems/insufficient-credits',
      title: 'Insufficient credits',
      status: 402,
      detail: 'account needs 30 credits but has 20 available',
      code: 'insufficient_credits',
      account: 'u',
      required: 30,
      available: 20,
    })
  })

  it('keeps each error its fields and its status', () => {
    expect(problemDetails(new InvalidInputError('amount', 'must be an integer'))).toMatchObject({
      status: 400,
      field: 'amount',
    })
    expect(problemDetails(new CodeUnavailableError('expired'))).toMatchObject({
      status: 402,
      reason: 'expired',
    })
    const down = problemDetails(
      new StoreUnavailableError('down', { cause: new Error('ECONNREFUSED 10.0.0.1') }),
    )
    expect(down).toMatchObject({ status: 503, code: 'store_unavailable' })
    // The cause (connection details) is not a field of the body.
    expect(JSON.stringify(down)).not.toContain('ECONNREFUSED')
    expect(down).not.toHaveProperty('name')
  })

  it('names problem types by code', () => {
    expect(problemType('hold_expired')).toBe('https://tollgate.dev/problems/hold-expired')
  })
})
