import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { createMeter, type Meter, memoryStore } from '@tollgate/core'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createApp, DEMO_ACCOUNT, DEMO_KEY } from './app.js'
import { ANSWER_TOKENS } from './model.js'

const auth = { authorization: `Bearer ${DEMO_KEY}`, 'content-type': 'application/json' }

/** Serves the example over `meter` with `@hono/node-server`, as `main.ts` does. */
async function start(meter: Meter, tokenDelayMs: number) {
  const server = serve({
    fetch: createApp(meter, { tokenDelayMs }).fetch,
    hostname: '127.0.0.1',
    port: 0,
  }) as Server
  if (!server.listening) await once(server, 'listening')
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections()
      server.close()
    },
  }
}

const meter = createMeter({ store: memoryStore(), cache: false })
let app: Awaited<ReturnType<typeof start>>

beforeAll(async () => {
  await meter.grant(DEMO_ACCOUNT, 500)
  app = await start(meter, 1)
})
afterAll(() => app.close())

async function call(method: 'GET' | 'POST', path: string, body?: unknown, headers = auth) {
  const res = await fetch(`${app.base}${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  return { status: res.status, headers: res.headers, text: await res.text() }
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

describe('hono-api example over HTTP', () => {
  it('needs an API key', async () => {
    expect((await call('GET', '/v1/balance', undefined, {} as typeof auth)).status).toBe(401)
  })

  it('the balance is free', async () => {
    const res = await call('GET', '/v1/balance')
    expect(res.status).toBe(200)
    expect(JSON.parse(res.text)).toMatchObject({ account: DEMO_ACCOUNT, available: 500 })
    expect(res.headers.get('x-credits-cost')).toBeNull()
    expect(await settledBalance()).toBe(500)
  })

  it('tokenize costs 1 credit', async () => {
    const res = await call('POST', '/v1/tokenize', { text: 'hello metered world' })
    expect(res.status).toBe(200)
    expect(JSON.parse(res.text)).toEqual({ tokens: 3 })
    expect(res.headers.get('x-credits-cost')).toBe('1')
    expect(await settledBalance()).toBe(499)
  })

  it('a completion reserves maxTokens, streams, and is charged the tokens it produced', async () => {
    const res = await call('POST', '/v1/completions', { maxTokens: 100 })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    expect(res.headers.get('x-credits-cost')).toBe('100')
    expect(res.headers.get('x-credits-remaining')).toBe('399')
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
    expect(res.headers.get('content-type')).toBe('application/problem+json')
    expect(res.headers.get('x-credits-cost')).toBe('4096')
    expect(res.headers.get('x-credits-remaining')).toBe(String(before))
    expect(JSON.parse(res.text)).toMatchObject({
      status: 402,
      account: DEMO_ACCOUNT,
      required: 4_096,
      available: before,
    })
    expect((await call('POST', '/v1/completions', { maxTokens: 0 })).status).toBe(400)
    expect((await call('POST', '/v1/completions', { maxTokens: 4_097 })).status).toBe(400)
    expect(await settledBalance()).toBe(before)
  })
})

describe('hono-api example: a client that leaves', () => {
  it('a completion abandoned half way is not charged', async () => {
    const slow = createMeter({ store: memoryStore(), cache: false })
    await slow.grant(DEMO_ACCOUNT, 100)
    const server = await start(slow, 20)
    const aborter = new AbortController()
    const res = await fetch(`${server.base}/v1/completions`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ maxTokens: 30 }),
      signal: aborter.signal,
    })
    const reader = res.body!.getReader()
    const decoder = new TextDecoder()
    let seen = ''
    while (seen.split('data:').length <= 3) {
      const { done, value } = await reader.read()
      if (done) throw new Error('the completion ended before the client left')
      seen += decoder.decode(value, { stream: true })
    }
    expect((await slow.balance(DEMO_ACCOUNT)).held).toBe(30)
    aborter.abort()
    await reader.read().catch(() => undefined)
    await vi.waitFor(async () => expect((await slow.balance(DEMO_ACCOUNT)).held).toBe(0))
    expect((await slow.balance(DEMO_ACCOUNT)).total).toBe(100)
    server.close()
  })
})
