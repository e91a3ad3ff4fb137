import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { createMeter, type Meter, memoryStore } from '@tollgate/core'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { FIRST_TOKENS, openingHold, price, TOP_UP } from './chat.js'
import { createExpressApp, DEMO_ACCOUNT, DEMO_KEY } from './express-app.js'
import { createHonoApp } from './hono-app.js'
import { ANSWER_TOKENS } from './model.js'

const APPS = {
  express: (meter: Meter, tokenDelayMs: number) =>
    createExpressApp(meter, { tokenDelayMs }).listen(0, '127.0.0.1'),
  hono: (meter: Meter, tokenDelayMs: number) =>
    serve({ fetch: createHonoApp(meter, { tokenDelayMs }).fetch, port: 0, hostname: '127.0.0.1' }),
} as const

const BODY = {
  model: 'tollgate-demo-1',
  stream: true,
  messages: [{ role: 'user', content: 'How does Tollgate meter a stream of tokens?' }],
}
const PROMPT = price.estimate(BODY).promptTokens
const headers = { authorization: `Bearer ${DEMO_KEY}`, 'content-type': 'application/json' }

let cleanup: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const close of cleanup) await close()
  cleanup = []
})

describe.each(Object.keys(APPS) as (keyof typeof APPS)[])('chat completions on %s', (kind) => {
  async function start(grant: number, tokenDelayMs = 1) {
    const meter = createMeter({ store: memoryStore(), cache: false })
    await meter.grant(DEMO_ACCOUNT, grant)
    const server = APPS[kind](meter, tokenDelayMs) as Server
    if (!server.listening) await new Promise((resolve) => server.once('listening', resolve))
    cleanup.push(async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await meter.close()
    })
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/chat/completions`
    const post = (body: unknown, signal?: AbortSignal) =>
      fetch(url, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        ...(signal ? { signal } : {}),
      })
    /** The balance once nothing is held any more (the request settles after its response). */
    const settled = async () => {
      let balance = await meter.balance(DEMO_ACCOUNT, { fresh: true })
      await vi.waitFor(async () => {
        balance = await meter.balance(DEMO_ACCOUNT, { fresh: true })
        expect(balance.held).toBe(0)
      })
      return balance
    }
    return { meter, post, settled }
  }

  it('streams OpenAI chunks past its first hold, topping up, and charges the tokens served', async () => {
    const { meter, post, settled } = await start(10_000)
    const res = await post(BODY)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/)
    const opening = price.credits({ input: PROMPT, output: FIRST_TOKENS })
    expect(res.headers.get('x-credits-cost')).toBe(String(opening))
    const events = (await res.text()).split('\n\n').filter(Boolean)
    expect(events.at(-1)).toBe('data: [DONE]')
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.replace(/^data: /, '')))
    expect(chunks[0]).toMatchObject({
      object: 'chat.completion.chunk',
      model: 'tollgate-demo-1',
      choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }],
    })
    const tokens = chunks.filter((c) => typeof c.choices[0]?.delta?.content === 'string').slice(1)
    expect(tokens).toHaveLength(ANSWER_TOKENS)
    expect(chunks.at(-2).choices[0].finish_reason).toBe('stop')
    const usage = chunks.at(-1).usage
    expect(usage).toEqual({
      prompt_tokens: PROMPT,
      completion_tokens: ANSWER_TOKENS,
      total_tokens: PROMPT + ANSWER_TOKENS,
    })
    // Charged the price of the usage it reported, far above the opening hold.
    const cost = price.cost(usage)
    expect(cost).toBeGreaterThan(opening + 2 * TOP_UP)
    expect((await settled()).total).toBe(10_000 - cost)
    const { entries } = await meter.ledger(DEMO_ACCOUNT, { limit: 1_000 })
    // The reserve, then the top-ups (each a hold entry), one commit.
    expect(entries.filter((e) => e.type === 'hold').length).toBeGreaterThan(2)
    expect(entries.filter((e) => e.type === 'commit')).toHaveLength(1)
  })

  it('an account that runs dry stops the stream in-band, charged what was served, no debt', async () => {
    const grant = 150
    const { post, settled } = await start(grant)
    const res = await post(BODY)
    expect(res.status).toBe(200)
    const text = await res.text()
    expect(text).not.toContain('[DONE]')
    const error = /event: error\ndata: (.*)\n\n$/.exec(text)
    expect(JSON.parse(error![1]!)).toMatchObject({
      type: 'https://tollgate.dev/problems/insufficient-credits',
      status: 402,
      account: DEMO_ACCOUNT,
    })
    const served = text.split('\n\n').filter((e) => e.includes('"content":"')).length - 1
    const charged = price.credits({ input: PROMPT, output: served })
    // Within one token of the last credit: served as far as the account could pay.
    expect(charged).toBeLessThanOrEqual(grant)
    expect(grant - charged).toBeLessThan(price.credits({ output: 1 }))
    expect(await settled()).toMatchObject({ total: grant - charged, debt: 0 })
  })

  it("a client that leaves mid-stream pays for what it was served (onAbort: 'used')", async () => {
    const { post, settled } = await start(10_000, 20)
    const aborter = new AbortController()
    const res = await post(BODY, aborter.signal)
    const reader = res.body!.getReader()
    const decoder = new TextDecoder()
    let text = ''
    const read = () => text.split('\n\n').filter((e) => e.includes('"content":"')).length - 1
    while (read() < 20) {
      const { done, value } = await reader.read()
      if (done) throw new Error(`the stream ended early: ${text}`)
      text += decoder.decode(value, { stream: true })
    }
    aborter.abort()
    await reader.read().catch(() => undefined)
    const charged = 10_000 - (await settled()).total
    // The prompt and every token served: at least the 20 the client read, and not the whole
    // answer (it left), nor the opening hold ('commit'), nor nothing ('release').
    const tokens = (charged - PROMPT) / price.credits({ output: 1 })
    expect(Number.isInteger(tokens)).toBe(true)
    expect(tokens).toBeGreaterThanOrEqual(20)
    expect(tokens).toBeLessThan(ANSWER_TOKENS)
  })

  it('refuses what it cannot serve before streaming: 400 naming the field, 402, 401', async () => {
    const { post, settled } = await start(20)
    for (const [body, field] of [
      [{ ...BODY, stream: false }, 'stream'],
      [{ ...BODY, messages: [] }, 'messages'],
      [{ ...BODY, max_tokens: -1 }, 'max_tokens'],
    ] as const) {
      const res = await post(body)
      expect(res.status).toBe(400)
      expect(res.headers.get('content-type')).toBe('application/problem+json')
      expect(JSON.stringify(await res.json())).toContain(field)
    }
    const refused = await post(BODY)
    expect(refused.status).toBe(402)
    expect(await refused.json()).toMatchObject({ required: openingHold(BODY), available: 20 })
    expect((await settled()).total).toBe(20)
    const url = new URL('/v1/balance', refused.url)
    expect((await fetch(url)).status).toBe(401)
  })
})
