import { describe, expect, it } from 'vitest'
import { createMeter } from '../meter/meter.js'
import { memoryStore } from './memory-store.js'

describe('memoryStore hold ids', () => {
  it('are unique across tenants, and one tenant cannot settle another tenant’s hold', async () => {
    const store = memoryStore()
    const a = createMeter({ store, tenant: 'a' })
    const b = createMeter({ store, tenant: 'b' })
    await a.grant('x', 10)
    await b.grant('y', 10)
    // The first hold of the first account in each tenant: same account number and sequence.
    const ha = await a.reserve('x', 3)
    const hb = await b.reserve('y', 4)
    expect(ha.id).not.toBe(hb.id)
    await expect(b.commit(ha.id)).rejects.toMatchObject({ code: 'not_found' })
    await expect(b.release(ha.id)).rejects.toMatchObject({ code: 'not_found' })
    expect((await a.balance('x', { fresh: true })).held).toBe(3)
    expect((await b.balance('y', { fresh: true })).held).toBe(4)
    await expect(a.commit(ha.id)).resolves.toMatchObject({ charged: 3 })
  })

  it('from another memory store are not found', async () => {
    const one = createMeter({ store: memoryStore() })
    const two = createMeter({ store: memoryStore() })
    await one.grant('x', 10)
    await two.grant('x', 10)
    const h = await one.reserve('x', 1)
    await two.reserve('x', 1)
    await expect(two.commit(h.id)).rejects.toMatchObject({ code: 'not_found' })
  })

  it('malformed ids are not found', async () => {
    const meter = createMeter({ store: memoryStore() })
    await meter.grant('x', 10)
    const h = await meter.reserve('x', 1)
    for (const id of [
      'hld_',
      'nope',
      `${h.id}_9`,
      h.id.replace(/_[0-9a-z]+$/, '_zz'),
      `${h.id}x`,
    ]) {
      await expect(meter.commit(id)).rejects.toMatchObject({ code: 'not_found' })
    }
    await expect(meter.commit(h.id)).resolves.toMatchObject({ charged: 1 })
  })
})

describe('memoryStore noteRedeemFailure', () => {
  it('counts distinct accounts per tenant window and keeps only the latest two windows', async () => {
    const store = memoryStore()
    const note = (tenant: string, account: string, window: number) =>
      store.noteRedeemFailure!(tenant, account, window * 60_000)
    expect(await note('t', 'a', 1)).toBe(1)
    expect(await note('t', 'a', 1)).toBe(1)
    expect(await note('t', 'b', 1)).toBe(2)
    expect(await note('u', 'a', 1)).toBe(1)
    expect(await note('t', 'a', 2)).toBe(1)
    // Window 1 is still kept (a late report from a process behind by a window).
    expect(await note('t', 'c', 1)).toBe(3)
    // Window 3 arrives: window 1 goes, so a report naming it starts from nothing.
    expect(await note('t', 'a', 3)).toBe(1)
    expect(await note('t', 'b', 2)).toBe(2)
    expect(await note('t', 'd', 1)).toBe(1)
  })
})
