import { describe, expect, it } from 'vitest'
import {
  AuthError,
  CodeUnavailableError,
  type ErrorCode,
  HoldExpiredError,
  HoldResolvedError,
  IdempotencyConflictError,
  InsufficientCreditsError,
  InvalidInputError,
  isTollgateError,
  NotFoundError,
  OverageError,
  RateLimitedError,
  StoreUnavailableError,
  TollgateError,
} from './errors.js'

const cases: { name: string; make: () => TollgateError; code: ErrorCode; status: number }[] = [
  {
    name: 'InvalidInputError',
    make: () => new InvalidInputError('amount', 'bad'),
    code: 'invalid_input',
    status: 400,
  },
  { name: 'AuthError', make: () => new AuthError(), code: 'auth', status: 401 },
  {
    name: 'InsufficientCreditsError',
    make: () => new InsufficientCreditsError('acct', 10, 3),
    code: 'insufficient_credits',
    status: 402,
  },
  {
    name: 'CodeUnavailableError',
    make: () => new CodeUnavailableError('expired'),
    code: 'code_unavailable',
    status: 402,
  },
  {
    name: 'NotFoundError',
    make: () => new NotFoundError('hold', 'hld_1'),
    code: 'not_found',
    status: 404,
  },
  {
    name: 'IdempotencyConflictError',
    make: () => new IdempotencyConflictError('key-1'),
    code: 'idempotency_conflict',
    status: 409,
  },
  {
    name: 'HoldResolvedError',
    make: () => new HoldResolvedError('hld_1', 'committed'),
    code: 'hold_resolved',
    status: 409,
  },
  {
    name: 'HoldExpiredError',
    make: () => new HoldExpiredError('hld_1', 1_000),
    code: 'hold_expired',
    status: 410,
  },
  {
    name: 'OverageError',
    make: () => new OverageError('hld_1', 5, 8),
    code: 'overage',
    status: 409,
  },
  {
    name: 'RateLimitedError',
    make: () => new RateLimitedError(30_000),
    code: 'rate_limited',
    status: 429,
  },
  {
    name: 'StoreUnavailableError',
    make: () => new StoreUnavailableError(),
    code: 'store_unavailable',
    status: 503,
  },
]

describe('error classes', () => {
  it.each(cases)('$name has code $code and status $status', ({ name, make, code, status }) => {
    const err = make()
    expect(err.code).toBe(code)
    expect(err.status).toBe(status)
    expect(err.statusCode).toBe(status)
    expect(err.expose).toBe(status < 500)
    expect(err.name).toBe(name)
    expect(err).toBeInstanceOf(TollgateError)
    expect(err).toBeInstanceOf(Error)
    expect(isTollgateError(err)).toBe(true)
    expect(isTollgateError(err, code)).toBe(true)
    expect(typeof err.message).toBe('string')
    expect(err.message.length).toBeGreaterThan(0)
  })

  it('the eleven classes have eleven distinct codes', () => {
    const codes = cases.map((c) => c.make().code)
    expect(new Set(codes).size).toBe(cases.length)
  })

  it('isTollgateError with a different code is false', () => {
    expect(isTollgateError(new AuthError(), 'invalid_input')).toBe(false)
    expect(isTollgateError(new InsufficientCreditsError('a', 2, 1), 'code_unavailable')).toBe(false)
  })
})

describe('isTollgateError', () => {
  it('recognises an error from another copy of the package by its brand', () => {
    // A second copy of the package has its own classes: only the registered symbol is shared.
    class ForeignError extends Error {
      readonly code = 'insufficient_credits'
      readonly status = 402
      constructor(message: string) {
        super(message)
        ;(this as unknown as Record<symbol, unknown>)[Symbol.for('tollgate.error')] = true
      }
    }
    const foreign = new ForeignError('from another copy')
    expect(foreign).not.toBeInstanceOf(TollgateError)
    expect(isTollgateError(foreign)).toBe(true)
    expect(isTollgateError(foreign, 'insufficient_credits')).toBe(true)
    expect(isTollgateError(foreign, 'auth')).toBe(false)
  })

  it('recognises a structurally copied plain object carrying the brand', () => {
    const copy = { [Symbol.for('tollgate.error')]: true, code: 'not_found', status: 404 }
    expect(isTollgateError(copy)).toBe(true)
    expect(isTollgateError(copy, 'not_found')).toBe(true)
    expect(isTollgateError(copy, 'auth')).toBe(false)
  })

  it('rejects look-alikes without the brand and non-objects', () => {
    expect(isTollgateError({ code: 'invalid_input', status: 400 })).toBe(false)
    expect(isTollgateError({ [Symbol('tollgate.error')]: true, code: 'auth' })).toBe(false)
    expect(isTollgateError({ [Symbol.for('tollgate.error')]: 'yes', code: 'auth' })).toBe(false)
    expect(isTollgateError(new Error('plain'))).toBe(false)
    expect(isTollgateError(null)).toBe(false)
    expect(isTollgateError(undefined)).toBe(false)
    expect(isTollgateError('invalid_input')).toBe(false)
    expect(isTollgateError(42)).toBe(false)
  })
})

describe('error fields and toJSON', () => {
  it('InsufficientCreditsError carries account, required and available', () => {
    const err = new InsufficientCreditsError('user_1', 10, 3)
    expect(err).toMatchObject({ account: 'user_1', required: 10, available: 3 })
    expect(err.toJSON()).toEqual({
      code: 'insufficient_credits',
      status: 402,
      message: err.message,
      name: 'InsufficientCreditsError',
      account: 'user_1',
      required: 10,
      available: 3,
    })
    expect(JSON.parse(JSON.stringify(err))).toEqual(err.toJSON())
  })

  it('statusCode and expose follow status without being serialised', () => {
    const err = new StoreUnavailableError()
    expect(err.statusCode).toBe(503)
    expect(err.expose).toBe(false)
    expect(Object.keys(err)).not.toContain('statusCode')
    expect(err.toJSON()).not.toHaveProperty('statusCode')
    expect(err.toJSON()).not.toHaveProperty('expose')
  })

  it('InvalidInputError names the field in the property and the message', () => {
    const err = new InvalidInputError('ttlMs', 'too long')
    expect(err.field).toBe('ttlMs')
    expect(err.message).toBe('ttlMs: too long')
    expect(err.toJSON()).toMatchObject({
      code: 'invalid_input',
      status: 400,
      field: 'ttlMs',
      message: 'ttlMs: too long',
    })
  })

  it('each class exposes its documented fields in toJSON', () => {
    expect(new CodeUnavailableError('already_redeemed').toJSON()).toMatchObject({
      reason: 'already_redeemed',
    })
    expect(new NotFoundError('hold', 'hld_x').toJSON()).toMatchObject({
      resource: 'hold',
      id: 'hld_x',
    })
    expect(new IdempotencyConflictError('k').toJSON()).toMatchObject({ idempotencyKey: 'k' })
    expect(new HoldResolvedError('hld_1', 'released').toJSON()).toMatchObject({
      holdId: 'hld_1',
      resolution: 'released',
    })
    expect(new HoldExpiredError('hld_1', 1234).toJSON()).toMatchObject({
      holdId: 'hld_1',
      expiredAt: 1234,
    })
    expect(new OverageError('hld_1', 5, 8).toJSON()).toMatchObject({
      holdId: 'hld_1',
      held: 5,
      actual: 8,
    })
    expect(new RateLimitedError(1500).toJSON()).toMatchObject({ retryAfterMs: 1500 })
  })

  it('keeps cause', () => {
    const cause = new Error('ECONNREFUSED')
    const err = new StoreUnavailableError('store failed', { cause })
    expect(err.cause).toBe(cause)
    expect(err.message).toBe('store failed')
    const inv = new InvalidInputError('x', 'y', { cause: 'why' })
    expect(inv.cause).toBe('why')
  })

  it('default messages', () => {
    expect(new AuthError().message).toBe('authentication failed')
    expect(new StoreUnavailableError().message).toBe('store unavailable')
    expect(new CodeUnavailableError('already_redeemed').message).toBe(
      'code is unavailable: already redeemed',
    )
  })
})
