import type { AddressInfo } from 'node:net'
import { createMeter, type Meter, memoryStore } from '@tollgate/core'
import { tsImport } from 'tsx/esm/api'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

let meter: Meter
let server: import('node:http').Server
let url: string

beforeAll(async () => {
  // Vite 8 (which runs vitest) strips TypeScript with Oxc, which does not lower TC39 decorators
  // yet (oxc-project/oxc#9170), and Node 20 cannot run them. So the app is loaded the way
  // `npm start` runs it: through tsx, whose esbuild lowers them.
  const app = (await tsImport('./server.ts', import.meta.url)) as typeof import('./server.js')
  meter = createMeter({ store: memoryStore(), cache: false })
  await meter.grant('demo', 100)
  server = app.createServer(meter)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
})

function post(path: string, body: unknown, init: RequestInit = {}) {
  return fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'x-account': 'demo', 'content-type': 'application/json' },
    body: JSON.stringify(body),
    ...init,
  })
}

async function balance() {
  const res = await fetch(`${url}/v1/balance`, { headers: { 'x-account': 'demo' } })
  expect(res.status).toBe(200)
  return (await res.json()) as { total: number; held: number; available: number }
}

describe('decorators example, over HTTP', () => {
  it('serves the balance for free', async () => {
    expect(await balance()).toEqual({ total: 100, held: 0, available: 100 })
    expect(await balance()).toMatchObject({ total: 100 })
  })

  it('charges 2 credits for a summary', async () => {
    const res = await post('/v1/summaries', { text: 'First sentence. Second one.' })
    expect(await res.json()).toEqual({ summary: 'First sentence.' })
    expect(await balance()).toMatchObject({ total: 98, held: 0 })
  })

  it('streams a completion and charges the tokens it sent', async () => {
    const res = await post('/v1/completions', { prompt: 'Hi', maxTokens: 5, delayMs: 1 })
    expect(res.status).toBe(200)
    const text = await res.text()
    expect(text.trim().split(' ')).toHaveLength(5)
    expect(await balance()).toMatchObject({ total: 93, held: 0 })
  })

  it('holds maxTokens while streaming, and releases them when the client leaves', async () => {
    const ac = new AbortController()
    const res = await post(
      '/v1/completions',
      { prompt: 'Hi', maxTokens: 20, delayMs: 100 },
      { signal: ac.signal },
    )
    const reader = res.body!.getReader()
    await reader.read()
    expect(await balance()).toMatchObject({ total: 93, held: 20 })
    ac.abort()
    await expect.poll(async () => (await balance()).held, { timeout: 2_000 }).toBe(0)
    expect(await balance()).toMatchObject({ total: 93 })
  })

  it('refuses a completion the account cannot pay for with a 402 problem', async () => {
    const res = await post('/v1/completions', { prompt: 'Hi', maxTokens: 500 })
    expect(res.status).toBe(402)
    expect(res.headers.get('content-type')).toBe('application/problem+json')
    expect(await res.json()).toMatchObject({
      status: 402,
      code: 'insufficient_credits',
      account: 'demo',
      required: 500,
      available: 93,
    })
  })

  it('answers a bad body with 400, reserving nothing', async () => {
    const res = await post('/v1/completions', { prompt: 'Hi', maxTokens: -3 })
    expect(res.status).toBe(400)
    expect(await balance()).toEqual({ total: 93, held: 0, available: 93 })
  })

  it('left a ledger that adds up', async () => {
    const { entries } = await meter.ledger('demo')
    expect(entries.reduce((sum, e) => sum + e.delta, 0)).toBe(93)
    expect(entries[0]?.balanceAfter).toBe(93)
  })
})
