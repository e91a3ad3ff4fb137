import type { UsageReport } from '@tollgate/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startServer, type TestServer } from './test-support.js'

const DAY = 86_400_000

let t: TestServer

beforeAll(async () => {
  t = await startServer()
})
afterAll(async () => {
  await t.close()
})

describe('usage routes', () => {
  it("GET /v1/accounts/{account}/usage: the last 30 days by day, today's figures last", async () => {
    await t.call('POST', '/v1/accounts/use-1/grants', { body: { amount: 100 } })
    await t.call('POST', '/v1/accounts/use-1/debits', {
      body: { amount: 30, metadata: { feature: 'chat' } },
    })
    await t.call('POST', '/v1/accounts/use-1/debits', { body: { amount: 5 } })
    const before = Date.now()
    const res = await t.call<UsageReport>('GET', '/v1/accounts/use-1/usage')
    expect(res.status).toBe(200)
    const r = res.body
    expect(r).toMatchObject({ account: 'use-1', interval: 'day', groupBy: null })
    // 30 days back from now, widened to whole UTC days: 31 periods, the last one today's.
    expect(r.periods).toHaveLength(31)
    expect(r.to - r.from).toBe(31 * DAY)
    expect(r.periods.at(-1)).toEqual({
      start: before - (before % DAY),
      granted: 100,
      spent: 35,
      released: 0,
      expired: 0,
    })
    expect(r.periods.slice(0, -1).every((p) => p.granted === 0 && p.spent === 0)).toBe(true)

    const g = await t.call<UsageReport>(
      'GET',
      `/v1/accounts/use-1/usage?interval=hour&from=${before - 3_600_000}&to=${before + 1}&groupBy=feature`,
    )
    expect(g.status).toBe(200)
    expect(g.body.periods).toHaveLength(2)
    expect(g.body.groups?.map((x) => [x.value, x.periods.at(-1)?.spent])).toEqual([
      ['chat', 30],
      [null, 5],
    ])
    expect(g.body.other).toBeNull()
  })

  it("GET /v1/usage: the tenant's accounts together, not another tenant's", async () => {
    await t.call('POST', '/v1/accounts/use-2/grants', { body: { amount: 40 } })
    const other = await t.createKey('usage-other')
    const headers = { authorization: `Bearer ${other.key}` }
    await t.call('POST', '/v1/accounts/use-1/grants', { body: { amount: 999 }, headers })
    const all = await t.call<UsageReport>('GET', '/v1/usage?interval=month')
    expect(all.status).toBe(200)
    expect(all.body.account).toBeNull()
    const month = all.body.periods.at(-1)!
    expect(month.granted).toBe(140)
    expect(month.spent).toBe(35)
    const theirs = await t.call<UsageReport>('GET', '/v1/usage?interval=month', { headers })
    expect(theirs.body.periods.at(-1)?.granted).toBe(999)
  })

  it('bad values are 400 problem+json naming the field', async () => {
    const now = Date.now()
    const cases: [string, string][] = [
      ['interval=week', 'interval'],
      ['from=yesterday', 'from'],
      ['to=-5', 'to'],
      [`from=${now}&to=${now - DAY}`, 'from'],
      [`interval=hour&from=${now - 1_001 * 3_600_000}&to=${now}`, 'from'],
      ['groupBy=', 'groupBy'],
      ['colour=red', 'colour'],
    ]
    for (const [query, field] of cases) {
      for (const path of ['/v1/accounts/use-1/usage', '/v1/usage']) {
        const res = await t.call(`GET`, `${path}?${query}`)
        expect(res.status, `${path}?${query}`).toBe(400)
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
        expect(res.body, `${path}?${query}`).toMatchObject({ code: 'invalid_input', field })
      }
    }
  })

  it('both routes are in the OpenAPI document', async () => {
    const res = await t.call<{ paths: Record<string, { get?: unknown }> }>('GET', '/openapi.json')
    expect(res.body.paths['/v1/accounts/{account}/usage']?.get).toBeDefined()
    expect(res.body.paths['/v1/usage']?.get).toBeDefined()
  })
})
