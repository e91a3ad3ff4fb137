import type { INestApplication } from '@nestjs/common'
import { createMeter, type Meter, memoryStore } from '@tollgate/core'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createApp, DEMO_ACCOUNT, DEMO_KEY } from './app.js'
import { ANSWER_TOKENS } from './model.js'

const auth = { authorization: `Bearer ${DEMO_KEY}` }

describe.each(['express', 'fastify'] as const)(
  'nestjs-api example on %s, over HTTP',
  (platform) => {
    let meter: Meter
    let app: INestApplication
    let base = ''

    beforeAll(async () => {
      meter = createMeter({ store: memoryStore(), cache: false })
      await meter.grant(DEMO_ACCOUNT, 500)
      app = await createApp(meter, { tokenDelayMs: 1, platform })
      await app.listen(0, '127.0.0.1')
      base = (await app.getUrl()).replace('[::1]', '127.0.0.1')
    })
    afterAll(async () => {
      await app.close()
    })

    async function call(
      method: 'GET' | 'POST',
      path: string,
      body?: unknown,
      headers: Record<string, string> = auth,
    ) {
      const res = await request(`${base}${path}`, {
        method,
        headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      })
      return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
    }

    /** The available balance once no request holds credits any more. */
    async function settledBalance(): Promise<number> {
      let available = -1
      await vi.waitFor(async () => {
        const b = JSON.parse((await call('GET', '/v1/balance')).text)
        expect(b.held).toBe(0)
        available = b.available
      })
      return available
    }

    it('needs an API key: the guard runs before the metering', async () => {
      const res = await call('GET', '/v1/completions?maxTokens=5', undefined, {})
      expect(res.status).toBe(401)
      expect(res.headers['x-credits-cost']).toBeUndefined()
    })

    it('the balance is free', async () => {
      const res = await call('GET', '/v1/balance')
      expect(res.status).toBe(200)
      expect(JSON.parse(res.text)).toMatchObject({ account: DEMO_ACCOUNT, available: 500 })
      expect(res.headers['x-credits-cost']).toBeUndefined()
    })

    it('tokenize costs 1 credit', async () => {
      const before = await settledBalance()
      const res = await call('POST', '/v1/tokenize', { text: 'hello metered world' })
      expect(res.status).toBe(201)
      expect(JSON.parse(res.text)).toEqual({ tokens: 3 })
      expect(res.headers['x-credits-cost']).toBe('1')
      expect(await settledBalance()).toBe(before - 1)
    })

    it('a completion reserves maxTokens, streams, and is charged the tokens it produced', async () => {
      const before = await settledBalance()
      const res = await call('GET', '/v1/completions?maxTokens=100')
      expect(res.status).toBe(200)
      expect(res.headers['content-type']).toMatch(/^text\/event-stream/)
      expect(res.headers['x-credits-cost']).toBe('100')
      expect(res.headers['x-credits-remaining']).toBe(String(before - 100))
      const tokens = res.text.split('\n\n').filter((e) => e.includes('data: {"token"'))
      expect(tokens).toHaveLength(ANSWER_TOKENS)
      expect(res.text).toContain(`event: done\n`)
      expect(res.text).toContain(`data: {"tokens":${ANSWER_TOKENS}}`)
      expect(ANSWER_TOKENS).toBeLessThan(100)
      expect(await settledBalance()).toBe(before - ANSWER_TOKENS)
    })

    it('more than the balance is a 402 problem+json; a bad maxTokens a 400', async () => {
      const before = await settledBalance()
      const res = await call('GET', '/v1/completions?maxTokens=4096')
      expect(res.status).toBe(402)
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
      expect(JSON.parse(res.text)).toMatchObject({
        status: 402,
        account: DEMO_ACCOUNT,
        required: 4_096,
        available: before,
      })
      expect((await call('GET', '/v1/completions?maxTokens=0')).status).toBe(400)
      expect(await settledBalance()).toBe(before)
    })

    it('a completion abandoned half way is not charged', async () => {
      const slow = createMeter({ store: memoryStore(), cache: false })
      await slow.grant(DEMO_ACCOUNT, 100)
      const slowApp = await createApp(slow, { tokenDelayMs: 20, platform })
      await slowApp.listen(0, '127.0.0.1')
      const url = (await slowApp.getUrl()).replace('[::1]', '127.0.0.1')
      const res = await request(`${url}/v1/completions?maxTokens=30`, { headers: auth })
      let seen = ''
      for await (const chunk of res.body) {
        seen += String(chunk)
        if (seen.split('data:').length > 3) break // three tokens, then hang up
      }
      await vi.waitFor(async () => expect((await slow.balance(DEMO_ACCOUNT)).held).toBe(0))
      expect((await slow.balance(DEMO_ACCOUNT)).total).toBe(100)
      await slowApp.close()
    })
  },
)
