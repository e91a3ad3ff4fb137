import { describe, expect, it } from 'vitest'
import { memoryStore } from '../store/memory-store.js'
import type { Store } from '../store/store.js'
import { createMeter } from './meter.js'

const T0 = Date.UTC(2030, 0, 1)

/** Everything of a memory store but the optional `accounts()`. */
function withoutAccounts(inner: Store): Store {
  return new Proxy(inner, {
    get(target, prop) {
      if (prop === 'accounts') return undefined
      const value = Reflect.get(target, prop, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}

describe('meter.accounts()', () => {
  it("lists the meter's tenant, with the default limit of 100 and the store's page", async () => {
    const store = memoryStore()
    let now = T0
    const meter = createMeter({ store, tenant: 'acme', clock: () => now })
    const other = createMeter({ store, tenant: 'globex', clock: () => now })
    for (let i = 0; i < 120; i++) {
      await meter.grant(`u${String(i).padStart(3, '0')}`, i + 1)
      now += 1_000
    }
    await other.grant('u000', 5)
    const page = await meter.accounts()
    expect(page.accounts).toHaveLength(100)
    expect(page.accounts[0]).toEqual({
      account: 'u000',
      total: 1,
      held: 0,
      available: 1,
      debt: 0,
      low: false,
      updatedAt: T0,
    })
    const rest = await meter.accounts({ cursor: page.nextCursor })
    expect(rest.accounts.map((a) => a.account)).toEqual(
      Array.from({ length: 20 }, (_, i) => `u${100 + i}`),
    )
    expect(rest.nextCursor).toBeNull()
    expect((await other.accounts()).accounts).toMatchObject([{ account: 'u000', total: 5 }])
    await meter.close()
  })

  it("ignores the meter's own lowBalanceThreshold (the list is the same for every reader)", async () => {
    const store = memoryStore()
    const meter = createMeter({ store, tenant: 'acme', lowBalanceThreshold: 1_000 })
    await meter.grant('a', 10)
    expect((await meter.balance('a')).low).toBe(true)
    expect((await meter.accounts()).accounts).toMatchObject([{ account: 'a', low: false }])
    await store.putTenantSettings!('acme', { lowBalanceThreshold: 10 })
    expect((await meter.accounts({ low: true })).accounts).toMatchObject([{ account: 'a' }])
    await meter.close()
  })

  it('refuses bad options with the field named', async () => {
    const meter = createMeter({ store: memoryStore() })
    const bad: [unknown, string][] = [
      [{ limit: 0 }, 'limit'],
      [{ limit: 1.5 }, 'limit'],
      [{ sort: 'name' }, 'sort'],
      [{ order: 'up' }, 'order'],
      [{ low: 'yes' }, 'low'],
      [{ prefix: '' }, 'prefix'],
      [{ prefix: 'a\u0000' }, 'prefix'],
      [{ cursor: 'x'.repeat(2_001) }, 'cursor'],
      [{ cursor: 'bogus' }, 'cursor'],
      [{ colour: 'red' }, 'colour'],
    ]
    for (const [query, field] of bad) {
      await expect(meter.accounts(query as never), JSON.stringify(query)).rejects.toMatchObject({
        code: 'invalid_input',
        field,
      })
    }
    await meter.close()
  })

  it('is InvalidInputError (field store) on a store without accounts()', async () => {
    const meter = createMeter({ store: withoutAccounts(memoryStore()) })
    await expect(meter.accounts()).rejects.toMatchObject({
      code: 'invalid_input',
      status: 400,
      field: 'store',
      message: expect.stringContaining('cannot list accounts'),
    })
    await meter.close()
  })
})
