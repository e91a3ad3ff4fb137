/**
 * The packages as a consumer sees them: resolved through their `exports` maps from the built
 * `dist/`, not from source.
 */
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import * as conformance from '@tollgate/conformance'
import * as core from '@tollgate/core'
import { describe, expect, it } from 'vitest'

const require = createRequire(import.meta.url)

describe('package entry points', () => {
  it('resolve to built ESM with types first in the exports map', () => {
    for (const name of ['@tollgate/core', '@tollgate/conformance']) {
      const pkg = require(`${name}/package.json`) as {
        type: string
        exports: Record<string, unknown>
        engines: { node: string }
      }
      expect(pkg.type).toBe('module')
      expect(Object.keys(pkg.exports['.'] as object)).toEqual(['types', 'import'])
      expect(pkg.exports['./package.json']).toBe('./package.json')
      expect(pkg.engines.node).toBe('>=20.19')
      expect(import.meta.resolve(name)).toMatch(/\/dist\/index\.js$/)
    }
  })

  it('@tollgate/core exports the public surface of the design', () => {
    for (const fn of [
      'createMeter',
      'memoryStore',
      'isTollgateError',
      'applyOperation',
      'newAccountState',
      'canonicalCode',
      'hashCode',
    ]) {
      expect(typeof (core as Record<string, unknown>)[fn], fn).toBe('function')
    }
    const meter = core.createMeter({ store: core.memoryStore() })
    for (const method of [
      'grant',
      'debit',
      'reserve',
      'commit',
      'release',
      'extend',
      'balance',
      'ledger',
      'configure',
      'startCycle',
      'stopCycle',
      'createCodes',
      'redeem',
      'sweep',
      'on',
      'close',
    ]) {
      expect(typeof (meter as unknown as Record<string, unknown>)[method], method).toBe('function')
    }
  })

  it('@tollgate/conformance exports the suite and the reference model', () => {
    expect(typeof conformance.describeStoreConformance).toBe('function')
    expect(typeof conformance.ReferenceModel).toBe('function')
  })
})

describe('errors across two copies of @tollgate/core', () => {
  it('are recognised by code, not by class identity', async () => {
    // A second module instance, as when two versions of the package are installed.
    const url = `${pathToFileURL(require.resolve('@tollgate/core')).href}?copy=2`
    const other = (await import(url)) as typeof core
    expect(other.InsufficientCreditsError).not.toBe(core.InsufficientCreditsError)
    const meter = other.createMeter({ store: other.memoryStore() })
    const err: unknown = await meter.debit('a', 1).catch((e: unknown) => e)
    expect(err instanceof core.InsufficientCreditsError).toBe(false)
    expect(core.isTollgateError(err, 'insufficient_credits')).toBe(true)
    expect(err).toMatchObject({
      code: 'insufficient_credits',
      status: 402,
      required: 1,
      available: 0,
    })
  })

  it('every documented error code maps to its HTTP status', () => {
    const cases: [core.TollgateError, string, number][] = [
      [new core.InvalidInputError('amount', 'bad'), 'invalid_input', 400],
      [new core.AuthError(), 'auth', 401],
      [new core.InsufficientCreditsError('a', 2, 1), 'insufficient_credits', 402],
      [new core.CodeUnavailableError('expired'), 'code_unavailable', 402],
      [new core.NotFoundError('hold', 'h'), 'not_found', 404],
      [new core.IdempotencyConflictError('k'), 'idempotency_conflict', 409],
      [new core.HoldResolvedError('h', 'committed'), 'hold_resolved', 409],
      [new core.HoldExpiredError('h', 0), 'hold_expired', 410],
      [new core.OverageError('h', 1, 2), 'overage', 409],
      [new core.StoreUnavailableError(), 'store_unavailable', 503],
    ]
    for (const [err, code, status] of cases) {
      expect([err.code, err.status]).toEqual([code, status])
      expect(err).toBeInstanceOf(core.TollgateError)
    }
  })
})
