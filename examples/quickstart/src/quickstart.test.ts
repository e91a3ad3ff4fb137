import { describe, expect, it } from 'vitest'
import { runQuickstart } from './quickstart.js'

describe('quickstart', () => {
  it('walks through grant, hold, refusal, redeem, cycle and ledger with exact figures', async () => {
    const lines: string[] = []
    const r = await runQuickstart((l) => lines.push(l))
    // 125 granted, 32 spent of a 40 hold.
    expect(r.afterCommit).toMatchObject({ total: 93, held: 0, available: 93 })
    expect(r.refused).toEqual({ required: 500, available: 93 })
    expect(r.redeemed).toBe(50)
    // After 40 days: the 30-day grant expired; the cycle rolled into its second period
    // (30 + at most 10 carried); the redeemed code's credits do not expire.
    const types = r.ledger.map((e) => e.type)
    expect(types).toContain('cycle_grant')
    expect(types).toContain('expire')
    expect(types).toContain('redeem')
    const sum = r.ledger.reduce((s, e) => s + e.delta, 0)
    expect(sum).toBe(r.final.total - r.final.debt)
    expect(lines.some((l) => l.includes('insufficient_credits (HTTP 402)'))).toBe(true)
  })
})
