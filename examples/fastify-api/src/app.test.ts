import { createMeter, memoryStore } from '@tollgate/core'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createApp, DEMO_ACCOUNT, DEMO_KEY } from './app.js'
import { ANSWER_TOKENS } from './model.js'

const meter = createMeter({ store: memoryStore(), cache: false })
const app = await createApp(meter, { tokenDelayMs: 1 })
let base = ''
const auth = { authorization: `Bearer ${DEMO_KEY}`, 'content-type': 'application/json' }

beforeAll(async () => {
  await meter.grant(DEMO_ACCOUNT, 500)
  base = await app.listen({ port: 0, host: '127.0.0.1' })
})
afterAll(() => app.close())

async function call(method: 'GET' | 'POST', path: string, body?: unknown, headers = auth) {
  const res = await request(`${base}${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
}

/** The available balance once no request holds credits any more. */
async function settledBalance(): Promise<number> {
  let available = -1
  await vi.waitFor(async () => {
    const res = await call('GET', '/v1/balance')
    const b = JSON.parse(res.text)
    expect(b.held).toBe(0)
    available = b.available
  })
  return available
}

describe('fastify-api example over HTTP', () => {
  it('needs an API key', async () => {
    expect((await call('GET', '/v1/balance', undefined, {} as typeof auth)).status).toBe(401)
  })

  it('the balance is free', async () => {
    const res = await call('GET', '/v1/balance')
    expect(res.status).toBe(200)
    expect(JSON.parse(res.text)).toMatchObject({ account: DEMO_ACCOUNT, available: 500 })
    expect(res.headers['x-credits-cost']).toBeUndefined()
    expect(await settledBalance()).toBe(500)
  })

  it('tokenize costs 1 credit', async () => {
    const res = await call('POST', '/v1/tokenize', { text: 'hello metered world' })
    expect(res.status).toBe(200)
    expect(JSON.parse(res.text)).toEqual({ tokens: 3 })
    expect(res.headers['x-credits-cost']).toBe('1')
    expect(await settledBalance()).toBe(499)
  })

  it('a completion reserves maxTokens, streams, and is charged the tokens it produced', async () => {
    const res = await call('POST', '/v1/completions', { maxTokens: 100 })
    expect(res.status).toBe(200)
    expect(res.headers['content-type']).toMatch(/^text\/event-stream/)
    expect(res.headers['x-credits-cost']).toBe('100')
    expect(res.headers['x-credits-remaining']).toBe('399')
    const tokens = res.text.split('\n\n').filter((e) => e.startsWith('data: {"token"'))
    expect(tokens).toHaveLength(ANSWER_TOKENS)
    expect(res.text).toContain(`event: done\ndata: {"tokens":${ANSWER_TOKENS}}`)
    expect(ANSWER_TOKENS).toBeLessThan(100)
    expect(await settledBalance()).toBe(499 - ANSWER_TOKENS)
  })

  it('a short completion is charged its maxTokens', async () => {
    const before = await settledBalance()
    const res = await call('POST', '/v1/completions', { maxTokens: 5 })
    expect(res.text.split('\n\n').filter((e) => e.startsWith('data: {"token"'))).toHaveLength(5)
    expect(await settledBalance()).toBe(before - 5)
  })

  it('more than the balance is a 402 problem; a bad maxTokens a 400', async () => {
    const before = await settledBalance()
    const res = await call('POST', '/v1/completions', { maxTokens: 4_096 })
    expect(res.status).toBe(402)
    expect(res.headers['content-type']).toBe('application/problem+json')
    expect(JSON.parse(res.text)).toMatchObject({
      status: 402,
      account: DEMO_ACCOUNT,
      required: 4_096,
      available: before,
    })
    expect((await call('POST', '/v1/completions', { maxTokens: 0 })).status).toBe(400)
    expect(await settledBalance()).toBe(before)
  })
})
describe('fastify-api example: a client that leaves', () => {
  it('a completion abandoned half way is not charged', async () => {
    const slow = createMeter({ store: memoryStore(), cache: false })
    await slow.grant(DEMO_ACCOUNT, 100)
    const slowApp = await createApp(slow, { tokenDelayMs: 20 })
    const url = `${await slowApp.listen({ port: 0, host: '127.0.0.1' })}/v1/completions`
    const aborter = new AbortController()
    const res = await request(url, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ maxTokens: 30 }),
      signal: aborter.signal,
    })
    let seen = ''
    await expect(
      (async () => {
        for await (const chunk of res.body) {
          seen += String(chunk)
          if (seen.split('data:').length > 3) aborter.abort()
        }
      })(),
    ).rejects.toThrow()
    await vi.waitFor(async () => expect((await slow.balance(DEMO_ACCOUNT)).held).toBe(0))
    expect((await slow.balance(DEMO_ACCOUNT)).total).toBe(100)
    await slowApp.close()
  })
})
