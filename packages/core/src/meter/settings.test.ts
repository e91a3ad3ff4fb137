import { afterEach, describe, expect, it } from 'vitest'
import { memoryStore } from '../store/memory-store.js'
import { createMeter } from './meter.js'
import { SETTINGS_MISMATCH_WARNING, settingsDisagreements } from './settings.js'

const CONFIG = {
  lowBalanceThreshold: 20,
  overdraftLimit: null,
  overage: 'clamp' as const,
  redeemMaxFailures: 10,
  redeemWindowMs: 3_600_000,
}

describe('settingsDisagreements', () => {
  it('names a field whose option the stored setting overrules', () => {
    const out = settingsDisagreements(CONFIG, { lowBalanceThreshold: 5, overdraftLimit: 9 }, true)
    expect(out).toEqual([
      "lowBalanceThreshold: the stored tenant setting 5 applies, not this meter's 20",
    ])
  })

  it('is silent when they agree, or the meter has no option', () => {
    expect(
      settingsDisagreements(CONFIG, { lowBalanceThreshold: 20, overdraftLimit: 9 }, true),
    ).toEqual([])
  })

  it('names an option the tenant has not stored only on a shared store', () => {
    const none = { lowBalanceThreshold: null, overdraftLimit: null }
    expect(settingsDisagreements(CONFIG, none, false)).toEqual([])
    expect(settingsDisagreements(CONFIG, none, true)[0]).toMatch(/is this meter's alone/)
  })
})

describe('a meter whose option disagrees with the stored settings', () => {
  const warnings: Error[] = []
  const onWarning = (w: Error) => warnings.push(w)
  afterEach(() => {
    process.off('warning', onWarning)
    warnings.length = 0
  })

  it('warns once with a stable code, and the stored setting applies', async () => {
    const store = memoryStore()
    await store.putTenantSettings!('default', { lowBalanceThreshold: 20 })
    process.on('warning', onWarning)
    const seen = new Promise<Error>((resolve) => {
      process.once('warning', (w) => {
        if ((w as Error & { code?: string }).code === SETTINGS_MISMATCH_WARNING) resolve(w)
      })
    })
    const meter = createMeter({ store, lowBalanceThreshold: 5 })
    const warning = await seen
    expect(warning.message).toMatch(/stored tenant setting 20 applies, not this meter's 5/)
    await meter.grant('a', 10)
    expect((await meter.balance('a', { fresh: true })).low).toBe(true)
    expect(await meter.settings('a')).toEqual({
      account: 'a',
      lowBalanceThreshold: null,
      overdraftLimit: null,
      effective: { lowBalanceThreshold: 20, overdraftLimit: null },
    })
    await meter.close()
    expect(
      warnings.filter((w) => (w as Error & { code?: string }).code === SETTINGS_MISMATCH_WARNING),
    ).toHaveLength(1)
  })
})
