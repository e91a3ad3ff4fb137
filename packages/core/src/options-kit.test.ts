import { afterEach, describe, expect, it, vi } from 'vitest'
import { InvalidInputError } from './errors.js'
import { createMeter } from './meter/meter.js'
import { resolveMeteringOptions } from './metering/metering.js'
import {
  checkBoolean,
  checkFunction,
  checkInt,
  checkOneOf,
  checkStore,
  type OptionDefaults,
  readOptions,
  UNKNOWN_OPTION_WARNING,
  WARNING_TYPE,
} from './options-kit.js'
import { httpStore } from './protocol/http-store.js'
import { memoryStore } from './store/memory-store.js'

interface PumpOptions {
  size: number
  rateMs?: number
  label?: string | null
  nested?: { depth?: number }
}

const DEFAULTS = {
  size: undefined,
  rateMs: 100,
  label: null,
  nested: {},
} satisfies OptionDefaults<PumpOptions>

const spec = { owner: 'createPump', defaults: DEFAULTS }

/** The InvalidInputError `fn` throws. */
function invalid(fn: () => unknown): InvalidInputError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidInputError)
    return err as InvalidInputError
  }
  throw new Error('expected an InvalidInputError')
}

afterEach(() => {
  vi.restoreAllMocks()
})

describe('readOptions', () => {
  it('spreads what is given over the defaults; undefined keeps the default', () => {
    const o = readOptions<PumpOptions, typeof DEFAULTS>({ size: 3, rateMs: undefined }, spec)
    expect(o).toEqual({ size: 3, rateMs: 100, label: null, nested: {} })
    // null is a value, not an absence: `label: null` may mean "off".
    expect(readOptions<PumpOptions, typeof DEFAULTS>({ size: 3, label: 'x' }, spec).label).toBe('x')
  })

  it('reads options through the prototype chain, as a factory reading options.x would', () => {
    const options = Object.create({ size: 7 }) as PumpOptions
    expect(readOptions(options, spec).size).toBe(7)
  })

  it('warns once per unknown key, with the stable code, and leaves the key out', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    const o = readOptions({ size: 1, sise: 2, colour: 'red' } as PumpOptions, spec)
    expect(warn.mock.calls).toEqual([
      ['createPump: unknown option "sise" is ignored', WARNING_TYPE, UNKNOWN_OPTION_WARNING],
      ['createPump: unknown option "colour" is ignored', WARNING_TYPE, UNKNOWN_OPTION_WARNING],
    ])
    expect(o).not.toHaveProperty('sise')
    expect(WARNING_TYPE).toBe('TollgateWarning')
    expect(UNKNOWN_OPTION_WARNING).toBe('TOLLGATE_UNKNOWN_OPTION')
  })

  it('the warning reaches process listeners with its name and code', async () => {
    const seen = new Promise<Error & { code?: string }>((resolve) => {
      process.once('warning', resolve)
    })
    readOptions({ size: 1, typo: true } as PumpOptions, spec)
    const warning = await seen
    expect(warning.name).toBe('TollgateWarning')
    expect(warning.code).toBe('TOLLGATE_UNKNOWN_OPTION')
    expect(warning.message).toBe('createPump: unknown option "typo" is ignored')
  })

  it('names nested keys by their path, and knows extraKeys', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    const nested = readOptions({ depth: 2, deep: 3 } as { depth?: number }, {
      owner: 'createPump',
      field: 'nested',
      defaults: { depth: 1 },
    })
    expect(nested).toEqual({ depth: 2 })
    const withExtra = readOptions({ size: 1, signal: 'x' } as PumpOptions, {
      ...spec,
      extraKeys: ['signal'],
    })
    expect(withExtra).toMatchObject({ size: 1, signal: 'x' })
    expect(warn.mock.calls.map((c) => c[0])).toEqual([
      'createPump: unknown option "nested.deep" is ignored',
    ])
  })

  it("refuses an unknown key with unknown: 'throw', naming its path", () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    const err = invalid(() =>
      readOptions({ size: 1, sise: 2 } as PumpOptions, {
        ...spec,
        field: 'pump',
        unknown: 'throw',
      }),
    )
    expect(err).toMatchObject({ field: 'pump.sise', message: 'pump.sise: is not a known option' })
    expect(warn).not.toHaveBeenCalled()
  })

  it.each([
    ['undefined', undefined],
    ['null', null],
    ['a number', 5],
    ['a string', 'size=1'],
    ['an array', [1]],
  ])('refuses %s as the options object, naming the field', (_name, value) => {
    const top = invalid(() => readOptions(value as never, spec))
    expect(top).toMatchObject({
      field: 'options',
      message: 'options: createPump needs an options object',
    })
    const nested = invalid(() =>
      readOptions(value as never, { ...spec, field: 'pump', expected: 'must be { size }' }),
    )
    expect(nested).toMatchObject({ field: 'pump', message: 'pump: must be { size }' })
  })
})

describe('OptionDefaults', () => {
  it('must list every option and no other (checked by the type checker)', () => {
    // @ts-expect-error `label` and `nested` are missing, so the kit would warn about them.
    const missing: OptionDefaults<PumpOptions> = { size: undefined, rateMs: 1 }
    // @ts-expect-error `colour` is not an option of PumpOptions.
    const extra = { ...DEFAULTS, colour: 'red' } satisfies OptionDefaults<PumpOptions>
    expect(Object.keys(missing)).toEqual(['size', 'rateMs'])
    expect(Object.keys(extra)).toContain('colour')
  })
})

describe('checkers', () => {
  it('checkInt accepts safe integers in range and says the range otherwise', () => {
    expect(checkInt(0, 'n')).toBe(0)
    expect(checkInt(Number.MAX_SAFE_INTEGER, 'n')).toBe(Number.MAX_SAFE_INTEGER)
    expect(checkInt(5, 'n', 5, 5)).toBe(5)
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, '1', null]) {
      expect(invalid(() => checkInt(bad, 'cache.max')).message).toBe(
        'cache.max: must be a non-negative safe integer',
      )
    }
    expect(invalid(() => checkInt(0, 'n', 1)).message).toBe('n: must be a safe integer ≥ 1')
    expect(invalid(() => checkInt(11, 'n', 1, 10)).message).toBe(
      'n: must be an integer from 1 to 10',
    )
    expect(invalid(() => checkInt(0, 'n', 1, 10)).field).toBe('n')
  })

  it('checkBoolean, checkFunction, checkOneOf and checkStore name the field', () => {
    expect(checkBoolean(false, 'b')).toBe(false)
    expect(invalid(() => checkBoolean(0, 'migrate')).message).toBe('migrate: must be a boolean')
    const fn = () => 1
    expect(checkFunction(fn, 'clock')).toBe(fn)
    expect(invalid(() => checkFunction('now', 'clock')).message).toBe('clock: must be a function')
    expect(checkOneOf('b', 'mode', ['a', 'b'])).toBe('b')
    expect(invalid(() => checkOneOf('x', 'mode', ['a', 'b', 'c'])).message).toBe(
      "mode: must be 'a', 'b' or 'c'",
    )
    expect(invalid(() => checkOneOf('x', 'mode', ['a'])).message).toBe("mode: must be 'a'")
    const store = memoryStore()
    expect(checkStore(store, 'memoryStore()')).toBe(store)
    expect(invalid(() => checkStore({}, 'memoryStore()')).message).toBe(
      'store: must be a Tollgate store, e.g. memoryStore()',
    )
  })
})

describe("core's factories", () => {
  it('warn about unknown keys, nested ones included, with the stable code', async () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    const meter = createMeter({
      store: memoryStore({ size: 1 } as never),
      cache: { maxx: 5 } as never,
      redeemAttempts: { tries: 3 } as never,
      colour: 'red',
    } as never)
    const store = httpStore({ url: 'http://127.0.0.1:1', apiKey: 'tg_sk_x', retry: 1 } as never)
    resolveMeteringOptions({ account: () => 'a', costs: 2 } as never, {
      adapter: '@tollgate/test',
      shouldCharge: () => true,
    })
    expect(warn.mock.calls).toEqual(
      [
        'memoryStore: unknown option "size" is ignored',
        'createMeter: unknown option "colour" is ignored',
        'createMeter: unknown option "redeemAttempts.tries" is ignored',
        'createMeter: unknown option "cache.maxx" is ignored',
        'httpStore: unknown option "retry" is ignored',
        '@tollgate/test metered(): unknown option "costs" is ignored',
      ].map((message) => [message, 'TollgateWarning', 'TOLLGATE_UNKNOWN_OPTION']),
    )
    await meter.close()
    await store.close()
  })

  it('refuse nested options that are not objects, naming the field', () => {
    const store = memoryStore()
    expect(invalid(() => createMeter({ store, redeemAttempts: 3 as never })).field).toBe(
      'redeemAttempts',
    )
    expect(invalid(() => createMeter({ store, cache: 'big' as never })).field).toBe('cache')
    expect(invalid(() => createMeter({ store, cache: { max: 0 } })).field).toBe('cache.max')
    expect(invalid(() => memoryStore(null as never)).field).toBe('options')
  })
})
