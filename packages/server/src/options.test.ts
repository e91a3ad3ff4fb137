import { createMeter, memoryStore } from '@tollgate/core'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { generateApiKey, hashApiKey, KeyVerifier, parseApiKey } from './api-keys.js'
import { resolveOptions } from './options.js'

afterEach(() => {
  vi.restoreAllMocks()
})

describe('resolveOptions', () => {
  it('applies the documented defaults', () => {
    const store = memoryStore()
    const o = resolveOptions({ store })
    expect(o).toMatchObject({
      store,
      clientClock: false,
      bodyLimit: 65_536,
      sweepIntervalMs: 30_000,
      codesBodyLimit: 1_048_576,
      adminCodesBodyLimit: 32 * 1024 * 1024,
      redeemLimit: { accountFailuresPerMinute: 20, failingAccountsPerMinute: 100 },
      redeemMaxFailures: 10,
      redeemWindowMs: 3_600_000,
      adminKey: process.env.TOLLGATE_ADMIN_KEY ?? null,
    })
    expect(o.logger).toMatchObject({ level: 'info' })
    expect(o.keys).toBeDefined()
  })

  it('warns about unknown keys and refuses bad values by name', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    resolveOptions({
      store: memoryStore(),
      colour: 'red',
      meter: { speed: 1 },
      redeemLimit: { perTenant: 5 },
    } as never)
    expect(warn.mock.calls.map((c) => String(c[0]))).toEqual([
      'createServer: unknown option "colour" is ignored',
      'createServer: unknown option "meter.speed" is ignored',
      'createServer: unknown option "redeemLimit.perTenant" is ignored',
    ])
    expect(() =>
      resolveOptions({ store: memoryStore(), redeemLimit: { accountFailuresPerMinute: 0.5 } }),
    ).toThrow(/redeemLimit.accountFailuresPerMinute/)
    expect(() => resolveOptions({ store: memoryStore(), codesBodyLimit: -1 })).toThrow(
      /codesBodyLimit/,
    )
    // Never below bodyLimit: a tenant can always send what every other route takes.
    expect(
      resolveOptions({ store: memoryStore(), bodyLimit: 2_000_000, codesBodyLimit: 10 })
        .codesBodyLimit,
    ).toBe(2_000_000)
    expect(() => resolveOptions({} as never)).toThrow(/store/)
    expect(() => resolveOptions({ store: memoryStore(), bodyLimit: 0 })).toThrow(/bodyLimit/)
    expect(() => resolveOptions({ store: memoryStore(), sweepIntervalMs: -1 })).toThrow(
      /sweepIntervalMs/,
    )
    expect(() => resolveOptions({ store: memoryStore(), adminKey: 'tg_sk_short' })).toThrow(
      /adminKey/,
    )
  })

  it('checks meter.redeemAttempts at creation and hands the tenant meters the checked values', async () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    expect(() =>
      resolveOptions({ store: memoryStore(), meter: { redeemAttempts: { max: 0 } } }),
    ).toThrow(expect.objectContaining({ field: 'meter.redeemAttempts.max' }))
    expect(() =>
      resolveOptions({ store: memoryStore(), meter: { redeemAttempts: 3 as never } }),
    ).toThrow(expect.objectContaining({ field: 'meter.redeemAttempts' }))
    const store = memoryStore()
    const o = resolveOptions({
      store,
      meter: { overage: 'reject', redeemAttempts: { max: 3, tries: 9 } as never },
    })
    expect(o).toMatchObject({ redeemMaxFailures: 3, redeemWindowMs: 3_600_000 })
    expect(o.meter).toMatchObject({
      overage: 'reject',
      redeemAttempts: { max: 3, windowMs: 3_600_000 },
    })
    // A tenant's meter gets the known keys only: the typo is reported once, by createServer.
    const meter = createMeter({ ...o.meter, store, cache: false })
    expect(warn.mock.calls).toEqual([
      [
        'createServer: unknown option "meter.redeemAttempts.tries" is ignored',
        'TollgateWarning',
        'TOLLGATE_UNKNOWN_OPTION',
      ],
    ])
    await meter.close()
  })

  it('always redacts the Authorization header, keeping custom redactions', () => {
    const o = resolveOptions({ store: memoryStore(), logger: { level: 'warn', redact: ['x'] } })
    expect(o.logger).toMatchObject({
      level: 'warn',
      redact: expect.arrayContaining(['x', 'req.headers.authorization']),
    })
    expect(resolveOptions({ store: memoryStore(), logger: false }).logger).toBe(false)
  })
})

describe('API keys', () => {
  it('generates keys in the documented shape with a public id', () => {
    const { id, key } = generateApiKey()
    expect(key).toMatch(/^tg_sk_[0-9a-z]{16}_[A-Za-z0-9_-]{43}$/)
    expect(parseApiKey(key)).toEqual({ id })
    expect(parseApiKey('tg_sk_x_y')).toBeNull()
    expect(parseApiKey(`${key}\n`)).toBeNull()
  })

  it('verifies by hash and never accepts a near miss', async () => {
    const store = memoryStore()
    const keys = store.keys!
    const { id, key } = generateApiKey()
    await keys.createKey({
      id,
      tenant: 't',
      role: 'tenant',
      name: '',
      hash: hashApiKey(key),
      createdAt: 0,
      revokedAt: null,
    })
    const v = new KeyVerifier(keys)
    expect(await v.verify(key)).toMatchObject({ id, tenant: 't' })
    const flipped = key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A')
    expect(await v.verify(flipped)).toBeNull()
    expect(await v.verify('')).toBeNull()
    await keys.revokeKey(id, 1)
    v.forget(id)
    expect(await v.verify(key)).toBeNull()
  })
})
