/**
 * Token pricing behind a metering adapter, end to end: `@tollgate/fetch` reserves what
 * `price.hold()` asks for, refuses a request whose output limit is not an integer as a 400
 * naming the field, and commits what the recorded usage of a streamed response costs.
 */
import { createMeter, type Meter, memoryStore } from '@tollgate/core'
import { metered } from '@tollgate/fetch'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openaiChatRequest, openaiChatStream } from './test-fixtures/providers.js'
import { tokenPrice } from './token-price.js'

// Per 100 tokens, so the figures below are larger than a credit or two.
const price = tokenPrice({ input: 2, output: 8, per: 100 })

let meter: Meter
beforeEach(async () => {
  meter = createMeter({ store: memoryStore() })
  await meter.grant('u', 100)
})
afterEach(() => meter.close())

/** A chat endpoint that replays the recorded stream and charges its reported usage. */
function endpoint(options: { standardHeaders?: boolean } = {}) {
  const seen = { calls: 0 }
  const handler = metered(
    meter,
    {
      account: (req) => req.headers.get('x-account') ?? '',
      cost: async (req) => price.hold(await req.clone().json()),
      ...options,
    },
    (_req, credits) => {
      seen.calls += 1
      const usage = price.stream()
      const encoder = new TextEncoder()
      const chunks = [...openaiChatStream]
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          const data = chunks.shift()
          if (data === undefined) {
            // No usage reported would leave the hold's amount as the charge.
            if (credits && usage.cost !== null) credits.actual = usage.cost
            controller.close()
            return
          }
          usage.add(data)
          controller.enqueue(encoder.encode(`data: ${data}\n\n`))
        },
      })
      return new Response(body, { headers: { 'Content-Type': 'text/event-stream' } })
    },
  )
  return { handler, seen }
}

function post(body: unknown): Request {
  return new Request('http://app.test/v1/chat/completions', {
    method: 'POST',
    headers: { 'x-account': 'u', 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
}

describe('a metered chat endpoint priced in tokens', () => {
  it('holds for the larger output alias and commits the streamed usage', async () => {
    const { handler } = endpoint({ standardHeaders: true })
    const res = await handler(post(openaiChatRequest))
    // (20 prompt tokens × 2 + 300 output tokens × 8) / 100 = 24.4: 25 held, not the 9 that
    // max_tokens (100) alone would have asked for.
    expect(res.headers.get('x-credits-cost')).toBe('25')
    expect(res.headers.get('ratelimit')).toBe('"credits";r=75')
    expect(res.headers.get('ratelimit-policy')).toBe('"credits";q=100')
    const text = await res.text()
    expect(text).toContain('data: [DONE]')
    // Reported: 19 prompt and 10 completion tokens, (38 + 80) / 100 = 1.18: 2 credits.
    await expect.poll(async () => (await meter.balance('u')).total).toBe(98)
    expect((await meter.balance('u')).held).toBe(0)
    const { entries } = await meter.ledger('u')
    // 25 held, 2 spent of it.
    expect(entries.map((e) => [e.type, e.delta, e.heldDelta])).toEqual([
      ['commit', -2, -25],
      ['hold', 0, 25],
      ['grant', 100, 0],
    ])
  })

  it('a request without an output limit is held for the cap', async () => {
    const { max_tokens: _a, max_completion_tokens: _b, ...unbounded } = openaiChatRequest
    const res = await endpoint().handler(post(unbounded))
    // (20 × 2 + 4096 × 8) / 100 = 328.08: more than the account has.
    expect(res.status).toBe(402)
    expect(await res.json()).toMatchObject({ required: 329, available: 100 })
  })

  it.each([
    ['max_tokens', '300'],
    ['max_completion_tokens', -1],
    ['max_output_tokens', 12.5],
  ])('%s = %j is a 400 naming it, and the model is never called', async (field, value) => {
    const { handler, seen } = endpoint()
    const res = await handler(post({ ...openaiChatRequest, [field]: value }))
    expect(res.status).toBe(400)
    expect(await res.json()).toMatchObject({ status: 400, code: 'invalid_input', field })
    expect(seen.calls).toBe(0)
    expect((await meter.balance('u')).held).toBe(0)
  })
})
