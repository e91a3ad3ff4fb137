import { Controller, Get, Module } from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { ledgerTypes, meterWith, settledAs } from '@tollgate/conformance/testing'
import { InvalidInputError, type Meter } from '@tollgate/core'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { Credits, TollgateModule, type TollgateModuleOptions } from './index.js'
import { byHeader, call, rootModule, serve } from './test-support.js'

afterEach(() => {
  vi.restoreAllMocks()
})

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidInputError)
    return (err as InvalidInputError).field
  }
  throw new Error('expected an InvalidInputError')
}

describe('TollgateModule.forRoot options', () => {
  let meter: Meter
  const forRoot = (options: Partial<TollgateModuleOptions>) =>
    TollgateModule.forRoot({ meter, account: byHeader, ...options } as TollgateModuleOptions)

  it('are checked when the module is made, naming the field', async () => {
    meter = await meterWith()
    expect(fieldOf(() => forRoot({ account: undefined }))).toBe('account')
    expect(fieldOf(() => forRoot({ meter: {} as Meter }))).toBe('meter')
    expect(fieldOf(() => forRoot({ ttlMs: 10 }))).toBe('ttlMs')
    expect(fieldOf(() => forRoot({ cost: -1 }))).toBe('cost')
    expect(fieldOf(() => forRoot({ topUp: 2.5 }))).toBe('topUp')
    expect(fieldOf(() => forRoot({ failMode: 'maybe' as 'open' }))).toBe('failMode')
    expect(fieldOf(() => forRoot({ headers: { cost: 'bad header' } }))).toBe('headers.cost')
    expect(fieldOf(() => forRoot({ exceptionFilter: 'yes' as unknown as boolean }))).toBe(
      'exceptionFilter',
    )
    expect(fieldOf(() => TollgateModule.forRoot(null as unknown as TollgateModuleOptions))).toBe(
      'options',
    )
  })

  it('warns about unknown keys', async () => {
    meter = await meterWith()
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    forRoot({ costs: 3 } as Partial<TollgateModuleOptions>)
    expect(warn).toHaveBeenCalledWith(
      expect.stringContaining('"costs"'),
      'TollgateWarning',
      'TOLLGATE_UNKNOWN_OPTION',
    )
  })

  it('forRootAsync checks its own arguments at once', () => {
    expect(
      fieldOf(() =>
        TollgateModule.forRootAsync({} as Parameters<typeof TollgateModule.forRootAsync>[0]),
      ),
    ).toBe('useFactory')
    expect(
      fieldOf(() =>
        TollgateModule.forRootAsync({
          useFactory: () => ({ meter, account: byHeader }),
          exceptionFilter: 1 as unknown as boolean,
        }),
      ),
    ).toBe('exceptionFilter')
  })

  it('forRootAsync: options from the factory are checked when the app is created', async () => {
    class Root {}
    Module({
      imports: [
        TollgateModule.forRootAsync({
          useFactory: async () => ({ meter, account: byHeader, ttlMs: 5 }),
        }),
      ],
    })(Root)
    const created = NestFactory.create(Root, { logger: false, abortOnError: false })
    await expect(created).rejects.toMatchObject({ code: 'invalid_input', field: 'ttlMs' })
  })
})

describe('@Credits', () => {
  it('checks its cost and options when the class is defined', () => {
    expect(fieldOf(() => Credits(-1))).toBe('cost')
    expect(fieldOf(() => Credits(1.5))).toBe('cost')
    expect(fieldOf(() => Credits(1, { ttlMs: 10 }))).toBe('ttlMs')
    expect(fieldOf(() => Credits(1, { onAbort: 'never' as 'release' }))).toBe('onAbort')
    expect(fieldOf(() => Credits(1, { topUp: -1 }))).toBe('topUp')
    expect(() => Credits(1, { topUp: 10, onAbort: 'used' })).not.toThrow()
    expect(fieldOf(() => Credits(1, { account: 'u' as unknown as () => string }))).toBe('account')
    expect(fieldOf(() => Credits(1, null as unknown as object))).toBe('options')
  })

  it('warns about options a route cannot change', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    Credits(1, { headers: false } as object)
    expect(warn).toHaveBeenCalledWith(
      expect.stringContaining('"headers"'),
      'TollgateWarning',
      'TOLLGATE_UNKNOWN_OPTION',
    )
  })
})

@Controller()
class OneController {
  @Get('ok')
  @Credits(3)
  ok() {
    return { ok: true }
  }
}

it('the module imported twice meters a request once', async () => {
  const meter = await meterWith({ u: 10 })
  const url = await serve(
    'express',
    rootModule({ meter, account: byHeader }, [OneController], {
      imports: [TollgateModule.forRoot({ meter, account: byHeader })],
    }),
  )
  expect((await call(`${url}/ok`)).status).toBe(200)
  expect((await settledAs(meter, 'u', 'commit')).total).toBe(7)
  expect(await ledgerTypes(meter, 'u')).toEqual(['grant', 'hold', 'commit'])
})
