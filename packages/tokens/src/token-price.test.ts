import { InvalidInputError, isTollgateError } from '@tollgate/core'
import { describe, expect, it } from 'vitest'
import {
  anthropicRequest,
  anthropicStream,
  anthropicUsage,
  openaiChatCompletion,
  openaiChatRequest,
  openaiChatStream,
  openaiChatStreamWithoutUsage,
  openaiResponsesRequest,
  openaiResponsesStream,
  openaiResponsesUsage,
  openaiVisionRequest,
} from './test-fixtures/providers.js'
import { type TokenPriceOptions, tokenPrice } from './token-price.js'
import { readUsage, UsageAccumulator } from './usage.js'

/** The field an InvalidInputError names, or the error itself when `fn` threw something else. */
function fieldOf(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    if (err instanceof InvalidInputError && isTollgateError(err, 'invalid_input')) return err.field
    return err
  }
  return 'no error'
}

const price = tokenPrice({ input: 2, output: 8, per: 1000 })

describe('tokenPrice options', () => {
  it.each([
    ['input', { input: -1 }],
    ['input', { input: 0.5 }],
    ['input', { input: '2' }],
    ['output', { output: Number.NaN }],
    ['output', { output: undefined }],
    ['per', { per: 0 }],
    ['per', { per: 2 ** 53 }],
    ['cacheRead', { cacheRead: -3 }],
    ['cacheWrite', { cacheWrite: 1.25 }],
    ['maxOutputTokens', { maxOutputTokens: 0 }],
    ['messageOverhead', { messageOverhead: -1 }],
    ['countTokens', { countTokens: 'tiktoken' }],
    ['perTokens', { perTokens: 1000 }],
  ])('a bad %s is an InvalidInputError naming it', (field, change) => {
    const options = { input: 2, output: 8, per: 1000, ...change } as unknown as TokenPriceOptions
    expect(fieldOf(() => tokenPrice(options))).toBe(field)
  })

  it('fills in the defaults: cache prices at the input price, a 4096-token output cap', () => {
    expect(price.options).toEqual({
      input: 2,
      output: 8,
      per: 1000,
      cacheRead: 2,
      cacheWrite: 2,
      maxOutputTokens: 4096,
      messageOverhead: 4,
    })
    expect(fieldOf(() => tokenPrice(null as unknown as TokenPriceOptions))).toBe('options')
  })
})

describe('credits', () => {
  it('sums the tokens at their prices, divides by per and rounds up once', () => {
    expect(price.credits({})).toBe(0)
    expect(price.credits({ input: 500 })).toBe(1) // 1000 / 1000
    expect(price.credits({ input: 501 })).toBe(2) // 1002 / 1000, rounded up
    // 1 input and 1 output token: 10/1000 of a credit, one credit (not one for each kind).
    expect(price.credits({ input: 1, output: 1 })).toBe(1)
    expect(price.credits({ input: 1000, output: 1000, cacheRead: 1000, cacheWrite: 1000 })).toBe(14)
    const perMillion = tokenPrice({ input: 3, output: 15, per: 1_000_000, cacheRead: 0 })
    expect(perMillion.credits({ input: 1_000_000, output: 200_000, cacheRead: 5 })).toBe(6)
  })

  it('is exact beyond 2^53 in the products and refuses a result that is not a safe integer', () => {
    const dear = tokenPrice({ input: Number.MAX_SAFE_INTEGER, output: 0, per: 1000 })
    // 3000 × (2^53 − 1) overflows a float's exact range; divided by 1000 it is exact again.
    expect(dear.credits({ input: 1000 })).toBe(Number.MAX_SAFE_INTEGER)
    expect(fieldOf(() => dear.credits({ input: 1001 }))).toBe('tokens')
  })

  it('a bad count is an InvalidInputError naming it', () => {
    expect(fieldOf(() => price.credits({ output: -1 }))).toBe('tokens.output')
    expect(fieldOf(() => price.credits({ input: 1.5 }))).toBe('tokens.input')
    expect(fieldOf(() => price.credits(null as never))).toBe('tokens')
  })
})

describe('hold: sized from the request', () => {
  it('OpenAI chat: the prompt estimate plus the larger of two output aliases', () => {
    // Strings of the messages: 'developer' 9 + 'You are a helpful assistant.' 28 + 'user' 4 +
    // 'Hello!' 6 = 47 characters → 12 tokens, plus 4 for each of the 2 messages.
    // max_tokens 100 and max_completion_tokens 300: the larger is allowed for.
    expect(price.estimate(openaiChatRequest)).toEqual({
      promptTokens: 20,
      outputTokens: 300,
      credits: 3, // (20 × 2 + 300 × 8) / 1000 = 2.44, rounded up
    })
    expect(price.hold(openaiChatRequest)).toBe(3)
    // The aliases in the other order, or the larger under the alias the hold ignored before.
    const swapped = { ...openaiChatRequest, max_tokens: 300, max_completion_tokens: 100 }
    expect(price.estimate(swapped).outputTokens).toBe(300)
    const three = { ...openaiChatRequest, max_output_tokens: 2000 }
    expect(price.estimate(three).outputTokens).toBe(2000)
  })

  it('a request without an output limit is held for the cap; a larger one is capped', () => {
    // 'user' 4 + 'text' 4 + 'What is in this image?' 22 + 'image_url' (the part's type) 9 =
    // 39 characters → 10 tokens, plus 4 for the message; the base64 image is not text.
    expect(price.estimate(openaiVisionRequest)).toEqual({
      promptTokens: 14,
      outputTokens: 4096,
      credits: 33, // (14 × 2 + 4096 × 8) / 1000 = 32.796
    })
    const capped = tokenPrice({ input: 2, output: 8, per: 1000, maxOutputTokens: 256 })
    expect(capped.estimate(openaiVisionRequest).outputTokens).toBe(256)
    expect(capped.estimate({ ...openaiChatRequest, max_completion_tokens: 100_000 })).toEqual({
      promptTokens: 20,
      outputTokens: 256,
      credits: 3,
    })
    // null is how the SDKs send "not set".
    expect(capped.estimate({ ...openaiChatRequest, max_tokens: null }).outputTokens).toBe(256)
  })

  it('OpenAI responses: instructions and input, max_output_tokens', () => {
    // 'Talk like a pirate.' 19 + 'Are semicolons optional in JavaScript?' 38 = 57 → 15 tokens,
    // plus 4 each for the instructions and the input.
    expect(price.estimate(openaiResponsesRequest)).toEqual({
      promptTokens: 23,
      outputTokens: 1024,
      credits: 9, // (23 × 2 + 1024 × 8) / 1000 = 8.238
    })
  })

  it('Anthropic messages: system blocks, tool definitions and tool turns count as text', () => {
    // system 74 + tools 88 + messages 168 characters (every string but media) = 330 → 83
    // tokens, plus 4 for each of 3 messages and the system prompt.
    expect(price.estimate(anthropicRequest)).toEqual({
      promptTokens: 99,
      outputTokens: 1024,
      credits: 9, // (99 × 2 + 1024 × 8) / 1000 = 8.39
    })
  })

  it('n choices are held for n times the output', () => {
    expect(price.estimate({ ...openaiChatRequest, n: 3 }).outputTokens).toBe(900)
    expect(fieldOf(() => price.hold({ ...openaiChatRequest, n: 0 }))).toBe('n')
  })

  it.each([
    ['max_tokens', -1],
    ['max_tokens', 1.5],
    ['max_tokens', '100'],
    ['max_completion_tokens', true],
    ['max_output_tokens', Number.POSITIVE_INFINITY],
    ['max_output_tokens', 2 ** 53],
  ])('%s = %j is an InvalidInputError naming it', (field, value) => {
    expect(fieldOf(() => price.hold({ ...openaiChatRequest, [field]: value }))).toBe(field)
  })

  it('a body or prompt of the wrong shape is an InvalidInputError naming it', () => {
    expect(fieldOf(() => price.hold('hello'))).toBe('body')
    expect(fieldOf(() => price.hold([openaiChatRequest]))).toBe('body')
    expect(fieldOf(() => price.hold({ messages: 'hi' }))).toBe('messages')
    expect(fieldOf(() => price.hold({ input: 42 }))).toBe('input')
    let deep: unknown = 'x'
    for (let i = 0; i < 100; i++) deep = [deep]
    expect(fieldOf(() => price.hold({ messages: [deep] }))).toBe('messages')
  })

  it('a tokenizer replaces the four-characters estimate', () => {
    const words = tokenPrice({
      input: 1,
      output: 1,
      per: 1,
      messageOverhead: 0,
      countTokens: (text) => text.split(/\s+/).filter(Boolean).length,
    })
    // 'developer' 1 + 'You are a helpful assistant.' 5 + 'user' 1 + 'Hello!' 1
    expect(words.estimate(openaiChatRequest).promptTokens).toBe(8)
    const broken = tokenPrice({ input: 1, output: 1, per: 1, countTokens: () => -1 })
    expect(fieldOf(() => broken.hold(openaiChatRequest))).toBe('countTokens')
  })
})

describe('cost: from the usage the provider reported', () => {
  it('OpenAI chat: cached prompt tokens priced apart, reasoning tokens as output', () => {
    expect(readUsage(openaiChatCompletion.usage)).toEqual({
      input: 86,
      output: 300,
      cacheRead: 1920,
      cacheWrite: 0,
    })
    const cached = tokenPrice({ input: 20, output: 80, cacheRead: 5, per: 10_000 })
    // (86 × 20 + 300 × 80 + 1920 × 5) / 10000 = 3.532
    expect(cached.cost(openaiChatCompletion.usage)).toBe(4)
    // The whole completion carries its usage.
    expect(cached.cost(openaiChatCompletion)).toBe(4)
  })

  it('OpenAI responses API', () => {
    expect(readUsage(openaiResponsesUsage)).toEqual({
      input: 36,
      output: 87,
      cacheRead: 0,
      cacheWrite: 0,
    })
    expect(price.cost(openaiResponsesUsage)).toBe(1) // (72 + 696) / 1000
  })

  it('Anthropic: cache writes and reads beside the input tokens', () => {
    expect(readUsage(anthropicUsage)).toEqual({
      input: 21,
      output: 393,
      cacheRead: 0,
      cacheWrite: 188086,
    })
    const claude = tokenPrice({ input: 3, output: 15, cacheRead: 0, cacheWrite: 4, per: 1000 })
    // (21 × 3 + 393 × 15 + 188086 × 4) / 1000 = 758.302
    expect(claude.cost({ usage: anthropicUsage })).toBe(759)
  })

  it('a bad or missing count is an InvalidInputError naming it', () => {
    const bad = { ...openaiChatCompletion.usage, completion_tokens: '300' }
    expect(fieldOf(() => price.cost(bad))).toBe('usage.completion_tokens')
    const negative = { ...anthropicUsage, cache_read_input_tokens: -1 }
    expect(fieldOf(() => price.cost(negative))).toBe('usage.cache_read_input_tokens')
    const details = { ...openaiResponsesUsage, input_tokens_details: { cached_tokens: 1.5 } }
    expect(fieldOf(() => price.cost(details))).toBe('usage.input_tokens_details.cached_tokens')
    const tooMany = { prompt_tokens: 10, prompt_tokens_details: { cached_tokens: 11 } }
    expect(fieldOf(() => price.cost(tooMany))).toBe('usage.cached_tokens')
    expect(fieldOf(() => price.cost({ total_tokens: 29 }))).toBe('usage')
    expect(fieldOf(() => price.cost(null))).toBe('usage')
  })
})

describe('stream: usage from the events of a streamed response', () => {
  it('OpenAI chat with include_usage: the last chunk before [DONE], as SSE payloads', () => {
    const stream = price.stream()
    expect(openaiChatStream.map((data) => stream.add(data))).toEqual([
      false,
      false,
      false,
      true,
      false,
    ])
    expect(stream.events).toBe(1)
    expect(stream.usage).toEqual({ input: 19, output: 10, cacheRead: 0, cacheWrite: 0 })
    expect(stream.cost).toBe(1) // (38 + 80) / 1000
  })

  it('OpenAI chat without include_usage: no usage, no cost', () => {
    const stream = price.stream()
    for (const data of openaiChatStreamWithoutUsage) stream.add(data)
    expect([stream.events, stream.usage, stream.cost]).toEqual([0, null, null])
  })

  it('Anthropic: message_start usage, then the running output total of message_delta', () => {
    const stream = price.stream()
    for (const event of anthropicStream) stream.add(event)
    expect(stream.events).toBe(2)
    expect(stream.usage).toEqual({ input: 472, output: 15, cacheRead: 2048, cacheWrite: 0 })
    // (472 × 2 + 15 × 8 + 2048 × 2) / 1000 = 5.16
    expect(stream.cost).toBe(6)
    // Totals, not increments: the same delta seen twice is not charged twice.
    stream.add(anthropicStream[6])
    expect(stream.usage?.output).toBe(15)
  })

  it('OpenAI responses: response.completed', () => {
    const stream = price.stream()
    for (const event of openaiResponsesStream) stream.add(JSON.stringify(event))
    expect(stream.events).toBe(1)
    expect(stream.usage).toEqual({ input: 37, output: 11, cacheRead: 0, cacheWrite: 0 })
  })

  it('an event that is not JSON, or a bad count in one, is an InvalidInputError', () => {
    const stream = new UsageAccumulator()
    expect(fieldOf(() => stream.add('{"usage":'))).toBe('event')
    expect(fieldOf(() => stream.add({ usage: { output_tokens: -2 } }))).toBe('usage.output_tokens')
    expect(stream.add(42)).toBe(false)
    expect(stream.usage).toBeNull()
  })
})
