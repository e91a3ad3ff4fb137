import { describe, expect, it } from 'vitest'
import { NO_METADATA } from '../engine/apply.js'
import type { EntryDraft } from '../engine/state.js'
import { MemoryLedger } from './memory-ledger.js'

function draft(i: number, extra: Partial<EntryDraft> = {}): EntryDraft {
  return {
    id: '',
    account: 'a',
    type: i % 2 === 0 ? 'hold' : 'commit',
    delta: i % 2 === 0 ? 0 : -i,
    heldDelta: i % 2 === 0 ? i : -i,
    debtDelta: 0,
    balanceAfter: 1_000_000 - i,
    holdId: `hld_x_${i}`,
    grantId: undefined,
    redemptionId: undefined,
    cycleId: undefined,
    idempotencyKey: undefined,
    reason: undefined,
    metadata: NO_METADATA,
    at: 1_800_000_000_000 + i,
    ...extra,
  }
}

describe('MemoryLedger', () => {
  it('reads back every entry exactly across chunk boundaries (5,000 entries)', () => {
    const ledger = new MemoryLedger()
    const holdIdOf = (no: number) => `hld_x_${no}`
    for (let i = 0; i < 5_000; i++) ledger.push(draft(i), 10 + i, i)
    expect(ledger.length).toBe(5_000)
    for (const i of [0, 1, 2047, 2048, 2049, 4095, 4096, 4999]) {
      expect(ledger.seq(i)).toBe(10 + i)
      expect(ledger.at(i)).toBe(1_800_000_000_000 + i)
      expect(ledger.type(i)).toBe(i % 2 === 0 ? 'hold' : 'commit')
      expect(ledger.read(i, 'a', holdIdOf)).toEqual({
        id: String(10 + i),
        account: 'a',
        type: i % 2 === 0 ? 'hold' : 'commit',
        delta: i % 2 === 0 ? 0 : -i,
        heldDelta: i % 2 === 0 ? i : -i,
        debtDelta: 0,
        balanceAfter: 1_000_000 - i,
        holdId: `hld_x_${i}`,
        metadata: {},
        at: 1_800_000_000_000 + i,
      })
    }
  })

  it('keeps the rare fields of the entries that have them, and only theirs', () => {
    const ledger = new MemoryLedger()
    ledger.push(
      draft(1, {
        type: 'redeem',
        holdId: undefined,
        grantId: 'grt_1',
        redemptionId: 'rdm_1',
        idempotencyKey: 'k',
        reason: 'why',
        metadata: { n: 1 },
      }),
      1,
      -1,
    )
    ledger.push(draft(2, { holdId: 'hld_other_store' }), 2, -1)
    ledger.push(draft(3, { holdId: undefined }), 3, -1)
    const none = () => 'unused'
    expect(ledger.read(0, 'a', none)).toMatchObject({
      grantId: 'grt_1',
      redemptionId: 'rdm_1',
      idempotencyKey: 'k',
      reason: 'why',
      metadata: { n: 1 },
    })
    expect(ledger.read(1, 'a', none).holdId).toBe('hld_other_store')
    const plain = ledger.read(2, 'a', none)
    expect(Object.keys(plain).sort()).toEqual(
      [
        'account',
        'at',
        'balanceAfter',
        'debtDelta',
        'delta',
        'heldDelta',
        'id',
        'metadata',
        'type',
      ].sort(),
    )
  })
})
