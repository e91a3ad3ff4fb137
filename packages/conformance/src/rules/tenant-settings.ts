import type { Store, TenantSettings } from '@tollgate/core'
import { expect } from 'vitest'
import { ruleGroup, useMeter } from '../context.js'
import type { ConformanceOptions } from '../describe-store-conformance.js'
import { expectLedgerReplays } from '../testing/ledger.js'

type SettingsStore = Store & Required<Pick<Store, 'tenantSettings' | 'putTenantSettings'>>

/**
 * The store's tenant settings, its schema migrated (the test calls it before any meter
 * operation would); a store without them fails here (skip the group instead).
 */
async function settingsOf(store: Store): Promise<SettingsStore> {
  expect(typeof store.tenantSettings).toBe('function')
  expect(typeof store.putTenantSettings).toBe('function')
  await store.migrate?.()
  return store as SettingsStore
}

const NONE: TenantSettings = { lowBalanceThreshold: null, overdraftLimit: null }

/**
 * DESIGN §5 "Settings live with the ledger": a tenant's stored defaults apply to every meter
 * of the tenant, over each meter's own options, under each account's own settings. See
 * docs/decisions.md, "Settings".
 */
export function tenantSettingsRules(options: ConformanceOptions): void {
  ruleGroup(options, 'tenant settings', (test) => {
    const t = useMeter(options)

    test('tenant settings: none stored reads all null, and the meter option applies', async () => {
      const store = await settingsOf(t.store)
      expect(await store.tenantSettings(t.tenant)).toEqual(NONE)
      const m = t.meterWith({ lowBalanceThreshold: 50 })
      await m.grant('a', 40)
      expect((await t.balance('a', m)).low).toBe(true)
      expect((await t.balance('a')).low).toBe(false)
    })

    test('tenant settings: a stored threshold wins over every meter option', async () => {
      const store = await settingsOf(t.store)
      expect(await store.putTenantSettings(t.tenant, { lowBalanceThreshold: 20 })).toEqual({
        lowBalanceThreshold: 20,
        overdraftLimit: null,
      })
      const high = t.meterWith({ lowBalanceThreshold: 50 })
      const low = t.meterWith({ lowBalanceThreshold: 5 })
      await t.meter.grant('a', 10)
      await t.meter.grant('b', 30)
      for (const m of [t.meter, high, low]) {
        expect((await t.balance('a', m)).low).toBe(true)
        expect((await t.balance('b', m)).low).toBe(false)
      }
      expect((await low.settings('a')).effective).toEqual({
        lowBalanceThreshold: 20,
        overdraftLimit: null,
      })
    })

    test("tenant settings: an account's own setting wins over the stored default", async () => {
      const store = await settingsOf(t.store)
      await store.putTenantSettings(t.tenant, { lowBalanceThreshold: 20 })
      await t.meter.grant('a', 10)
      await t.meter.configure('a', { lowBalanceThreshold: 5 })
      expect((await t.balance('a')).low).toBe(false)
      expect(await t.meter.settings('a')).toEqual({
        account: 'a',
        lowBalanceThreshold: 5,
        overdraftLimit: null,
        effective: { lowBalanceThreshold: 5, overdraftLimit: null },
      })
      await t.meter.configure('a', { lowBalanceThreshold: null })
      expect((await t.balance('a')).low).toBe(true)
    })

    test('tenant settings: a field left out is kept, null clears it, the next operation sees it', async () => {
      const store = await settingsOf(t.store)
      const m = t.meterWith({ lowBalanceThreshold: 5 })
      await m.grant('a', 10)
      await store.putTenantSettings(t.tenant, { lowBalanceThreshold: 20, overdraftLimit: 7 })
      expect((await t.balance('a', m)).low).toBe(true)
      expect(await store.putTenantSettings(t.tenant, { overdraftLimit: 9 })).toEqual({
        lowBalanceThreshold: 20,
        overdraftLimit: 9,
      })
      expect(await store.putTenantSettings(t.tenant, { lowBalanceThreshold: null })).toEqual({
        lowBalanceThreshold: null,
        overdraftLimit: 9,
      })
      expect(await store.tenantSettings(t.tenant)).toEqual({
        lowBalanceThreshold: null,
        overdraftLimit: 9,
      })
      // Back on the meter's own option.
      expect((await t.balance('a', m)).low).toBe(false)
    })

    test('tenant settings: a stored overdraft limit bounds the debt a commit creates', async () => {
      const store = await settingsOf(t.store)
      await store.putTenantSettings(t.tenant, { overdraftLimit: 10 })
      // The meter's own option (no limit) is overruled by the stored one.
      const m = t.meterWith({ overage: 'overdraft' })
      await m.grant('a', 10)
      const h = await m.reserve('a', 10)
      expect(await h.commit(100)).toMatchObject({ charged: 20, debt: 10, shortfall: 80 })
      expect((await t.balance('a', m)).debt).toBe(10)
      await expectLedgerReplays(m, 'a')
    })

    test('tenant settings: alerts cross the stored threshold', async () => {
      const store = await settingsOf(t.store)
      await store.putTenantSettings(t.tenant, { lowBalanceThreshold: 20 })
      const seen: [string, number][] = []
      t.meter.on('low', (e) => seen.push(['low', e.available]))
      t.meter.on('recovered', (e) => seen.push(['recovered', e.available]))
      await t.meter.grant('a', 30)
      await t.meter.debit('a', 15)
      await t.meter.grant('a', 50)
      expect(seen).toEqual([
        ['low', 15],
        ['recovered', 65],
      ])
    })

    test('tenant settings: nothing crosses tenants', async () => {
      const store = await settingsOf(t.store)
      const other = t.otherTenant()
      await store.putTenantSettings(t.tenant, { lowBalanceThreshold: 20 })
      await other.grant('a', 10)
      expect((await t.balance('a', other)).low).toBe(false)
      expect(await store.tenantSettings(other.tenant)).toEqual(NONE)
    })
  })
}
