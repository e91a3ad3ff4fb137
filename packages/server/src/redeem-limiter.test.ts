import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RedeemLimiter } from './redeem-limiter.js'
import { fakeClock, startServer, type TestServer } from './test-support.js'

const limits = { accountFailuresPerMinute: 3, failingAccountsPerMinute: 2 }

/** Runs `n` attempts of one account and settles them all as `failed`; returns how many ran. */
function attempts(limiter: RedeemLimiter, tenant: string, account: string, n: number): number {
  let ran = 0
  for (let i = 0; i < n; i++) {
    try {
      limiter.begin(tenant, account).settle(true)
      ran++
    } catch (err) {
      expect(err).toMatchObject({ code: 'rate_limited' })
    }
  }
  return ran
}

describe('RedeemLimiter', () => {
  it('limits failures per account, not per tenant, and the window ends', () => {
    const clock = fakeClock()
    const limiter = new RedeemLimiter(limits, clock.now)
    expect(attempts(limiter, 't', 'mallory', 10)).toBe(3)
    let refusal: unknown
    try {
      limiter.begin('t', 'mallory')
    } catch (err) {
      refusal = err
    }
    expect(refusal).toMatchObject({ code: 'rate_limited', retryAfterMs: 60_000 })
    // Another user of the tenant is not refused, and neither is the same id in another tenant.
    expect(attempts(limiter, 't', 'alice', 1)).toBe(1)
    expect(attempts(limiter, 'other', 'mallory', 1)).toBe(1)
    clock.advance(60_000)
    expect(attempts(limiter, 't', 'mallory', 10)).toBe(3)
  })

  it('counts an attempt before its outcome: concurrent attempts cannot overshoot', () => {
    const limiter = new RedeemLimiter(limits, fakeClock().now)
    // Twenty attempts begin before any settles, as twenty requests awaiting the store would.
    const begun = []
    let refused = 0
    for (let i = 0; i < 20; i++) {
      try {
        begun.push(limiter.begin('t', 'mallory'))
      } catch (err) {
        expect(err).toMatchObject({ code: 'rate_limited', retryAfterMs: 1_000 })
        refused++
      }
    }
    expect(begun).toHaveLength(3)
    expect(refused).toBe(17)
    for (const a of begun) a.settle(true)
    expect(attempts(limiter, 't', 'mallory', 1)).toBe(0)
  })

  it('an attempt that did not fail is given back', () => {
    const limiter = new RedeemLimiter(limits, fakeClock().now)
    for (let i = 0; i < 10; i++) {
      const a = limiter.begin('t', 'bob')
      a.settle(false)
      a.settle(true) // settling twice changes nothing
    }
    expect(limiter.size.accounts).toBe(0)
    expect(attempts(limiter, 't', 'bob', 5)).toBe(3)
  })

  it('past the distinct failing accounts of a tenant, a new failing account gets one failure', () => {
    const clock = fakeClock()
    const limiter = new RedeemLimiter(limits, clock.now)
    expect(attempts(limiter, 't', 'a1', 1)).toBe(1)
    expect(attempts(limiter, 't', 'a2', 1)).toBe(1)
    // The tenant has its 2 failing accounts: the next ones are stopped at their first failure.
    for (const account of ['s1', 's2', 's3']) expect(attempts(limiter, 't', account, 5)).toBe(1)
    // Accounts that failed before keep their allowance; a correct redemption is never refused.
    expect(attempts(limiter, 't', 'a1', 5)).toBe(2)
    for (let i = 0; i < 5; i++) limiter.begin('t', 'carol').settle(false)
    // Other tenants are untouched; the next window starts afresh.
    expect(attempts(limiter, 'u', 's1', 5)).toBe(3)
    clock.advance(60_000)
    expect(attempts(limiter, 't', 's1', 5)).toBe(3)
  })

  it('keeps a bounded number of accounts and tenants', () => {
    const limiter = new RedeemLimiter({ ...limits, maxAccounts: 100, maxTenants: 10 }, Date.now)
    for (let i = 0; i < 5_000; i++) attempts(limiter, `t${i % 50}`, `a${i}`, 1)
    expect(limiter.size.accounts).toBeLessThanOrEqual(100)
    expect(limiter.size.tenants).toBeLessThanOrEqual(10)
  })
})

describe('redeem limits on the server', () => {
  let t: TestServer
  let key: string
  beforeAll(async () => {
    t = await startServer({
      redeemLimit: { accountFailuresPerMinute: 5, failingAccountsPerMinute: 100 },
      // The engine's own per-account limit out of the way, to see the server's.
      meter: { redeemAttempts: { max: 1_000 } },
    })
    key = (await t.createKey('guessed')).key
  })
  afterAll(() => t.close())

  it('40 concurrent guesses from one account: exactly the limit reach the store', async () => {
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        t.call('POST', '/v1/accounts/mallory/redemptions', {
          key,
          body: { code: `TG-${String(i).padStart(4, '0')}-0000-0000-0` },
        }),
      ),
    )
    const statuses = answers.map((a) => a.status)
    expect(statuses.filter((s) => s === 400)).toHaveLength(5)
    expect(statuses.filter((s) => s === 429)).toHaveLength(35)
    for (const a of answers.filter((x) => x.status === 429)) {
      expect(a.headers['content-type']).toMatch(/^application\/problem\+json/)
      expect(Number(a.headers['retry-after'])).toBeGreaterThan(0)
    }
  })

  it('the store protocol counts the same way (the refusal inside the outcome)', async () => {
    const execute = (account: string) =>
      t.call<{ error: { code: string } | null }>('POST', '/v1/store/execute', {
        key,
        body: {
          account,
          op: { type: 'redeem', codeHash: 'ab'.repeat(32) },
          now: 0,
          config: {
            lowBalanceThreshold: null,
            overdraftLimit: null,
            overage: 'clamp',
            redeemMaxFailures: 1_000,
            redeemWindowMs: 1_000,
          },
        },
      })
    const outcomes = await Promise.all(Array.from({ length: 12 }, () => execute('eve')))
    const codes = outcomes.map((o) => o.body.error?.code)
    expect(codes.filter((c) => c === 'invalid_input')).toHaveLength(5)
    expect(codes.filter((c) => c === 'rate_limited')).toHaveLength(7)
  })
})
