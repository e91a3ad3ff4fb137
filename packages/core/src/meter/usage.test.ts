import { describe, expect, it } from 'vitest'
import { isTollgateError } from '../errors.js'
import { memoryStore } from '../store/memory-store.js'
import type { Store } from '../store/store.js'
import type { UsageRequest } from '../types.js'
import { createMeter } from './meter.js'

const T0 = Date.UTC(2030, 0, 15, 10, 30)
const HOUR = 3_600_000
const DAY = 24 * HOUR

/** A memory store with `usage` replaced (or removed, with undefined). */
function withUsage(usage: (inner: Store) => Store['usage']): Store {
  const inner = memoryStore()
  const own = usage(inner)
  return new Proxy(inner, {
    get(target, key) {
      if (key === 'usage') return own
      const value = Reflect.get(target, key, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}

/** A memory store that records the usage requests it is asked. */
function recording(): { store: Store; asked: UsageRequest[] } {
  const asked: UsageRequest[] = []
  const store = withUsage((inner) => (tenant, request) => {
    asked.push(request)
    return inner.usage!(tenant, request)
  })
  return { store, asked }
}

describe('meter.usage', () => {
  it('defaults to days over the 30 days before now, by the meter clock', async () => {
    const { store, asked } = recording()
    const meter = createMeter({ store, clock: () => T0 })
    await meter.grant('a', 10)
    const r = await meter.usage('a')
    expect(asked).toEqual([{ account: 'a', interval: 'day', from: T0 - 30 * DAY, to: T0 }])
    expect(r.periods).toHaveLength(31)
    expect(r.periods.at(-1)).toMatchObject({ start: T0 - (T0 % DAY), granted: 10 })
    await meter.close()
  })

  it('null is the whole tenant; Dates are accepted; to alone moves the default from', async () => {
    const { store, asked } = recording()
    const meter = createMeter({ store, clock: () => T0 })
    await meter.usage(null, { interval: 'month', to: new Date(T0 - DAY), groupBy: 'feature' })
    expect(asked).toEqual([
      { interval: 'month', from: T0 - 31 * DAY, to: T0 - DAY, groupBy: 'feature' },
    ])
    await meter.close()
  })

  it('refuses bad options naming them, before the store is asked', async () => {
    const { store, asked } = recording()
    const meter = createMeter({ store, clock: () => T0 })
    const field = async (fn: () => Promise<unknown>) => {
      const err = await fn().then(
        () => null,
        (e: unknown) => e,
      )
      expect(isTollgateError(err, 'invalid_input')).toBe(true)
      return (err as { field: string }).field
    }
    expect(await field(() => meter.usage('a', { interval: 'week' as never }))).toBe('interval')
    expect(await field(() => meter.usage('a', { colour: 'red' } as never))).toBe('colour')
    expect(await field(() => meter.usage('', {}))).toBe('account')
    expect(await field(() => meter.usage('a', { groupBy: 'x'.repeat(65) }))).toBe('groupBy')
    expect(asked).toEqual([])
    await meter.close()
  })

  it('on a store that keeps no usage, an invalid_input error naming the store', async () => {
    const store = withUsage(() => undefined)
    const meter = createMeter({ store, clock: () => T0 })
    await expect(meter.usage('a')).rejects.toMatchObject({
      code: 'invalid_input',
      field: 'store',
    })
    await meter.close()
  })
})
