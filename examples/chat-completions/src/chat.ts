/**
 * The framework-free part of the example: the price (`tokenPrice`), the opening hold, and the
 * stream of OpenAI `chat.completion.chunk` events that pays for each token as it is served
 * (`credits.use`). Express and Hono only map their request and response onto it.
 */
import {
  InvalidInputError,
  isTollgateError,
  problemDetails,
  type TollgateError,
} from '@tollgate/core'
import type { RequestCredits } from '@tollgate/express'
import { tokenPrice } from '@tollgate/tokens'
import { generate } from './model.js'

/** 1 credit per prompt token, 2 per generated token; a completion may ask for 1,024 tokens. */
export const price = tokenPrice({ input: 1, output: 2, per: 1, maxOutputTokens: 1_024 })

/** The generated tokens the opening hold pays for, before any top-up. */
export const FIRST_TOKENS = 16

/** The tokens each top-up pays for: a block of credits that grows the hold as the answer streams. */
export const BLOCK_TOKENS = 32

/** `topUp` for the metering: {@link BLOCK_TOKENS} generated tokens' worth of credits. */
export const TOP_UP = price.credits({ output: BLOCK_TOKENS })

/** The model the example answers as, unless the request names one. */
export const MODEL = 'tollgate-demo-1'

/** A chat completion request, as far as the example reads it. */
export interface ChatRequest {
  model?: unknown
  messages?: unknown
  stream?: unknown
  [field: string]: unknown
}

/**
 * Checks a request body and prices its opening hold: the prompt's estimated tokens plus the
 * first {@link FIRST_TOKENS} of the answer. A body the example cannot serve is an
 * `InvalidInputError` naming the field, which the metering answers as a 400 problem+json.
 */
export function openingHold(body: unknown): number {
  const b = body as ChatRequest | null
  if (typeof b !== 'object' || b === null || Array.isArray(b)) {
    throw new InvalidInputError('body', 'must be a JSON object')
  }
  if (!Array.isArray(b.messages) || b.messages.length === 0) {
    throw new InvalidInputError('messages', 'must be a non-empty array of messages')
  }
  if (b.stream !== true) {
    throw new InvalidInputError('stream', 'must be true: this endpoint only streams')
  }
  if (b.model !== undefined && typeof b.model !== 'string') {
    throw new InvalidInputError('model', 'must be a string')
  }
  const { promptTokens, outputTokens } = price.estimate(b)
  return price.credits({ input: promptTokens, output: Math.min(FIRST_TOKENS, outputTokens) })
}

/** How the stream was set up. */
export interface CompletionOptions {
  /** Pause between generated tokens, as a model would take. */
  tokenDelayMs: number
  /** The completion's id. @default a random `chatcmpl-…` */
  id?: string
}

/** One server-sent event carrying `payload` as JSON. */
const data = (payload: unknown) => `data: ${JSON.stringify(payload)}\n\n`

/**
 * The completion as server-sent events in OpenAI's chunk format: a role chunk, one chunk per
 * token, a finish chunk, a usage chunk, `data: [DONE]`. Each token is paid for before it is
 * sent (`credits.use`): when the account cannot pay for more, the stream sends an in-band
 * `event: error` with the problem (402) and ends; the request is charged what was served.
 * It also ends, silently, when the client leaves (`credits.signal` aborts then too).
 * `credits` is null only when the request is not metered.
 */
export async function* completionEvents(
  body: ChatRequest,
  credits: RequestCredits | null,
  options: CompletionOptions,
): AsyncGenerator<string> {
  const { promptTokens, outputTokens } = price.estimate(body)
  const signal = credits?.signal ?? new AbortController().signal
  const head = {
    id: options.id ?? `chatcmpl-${crypto.randomUUID()}`,
    object: 'chat.completion.chunk',
    created: Math.floor(Date.now() / 1000),
    model: typeof body.model === 'string' ? body.model : MODEL,
  }
  const chunk = (delta: object, finish: string | null = null) =>
    data({ ...head, choices: [{ index: 0, delta, finish_reason: finish }] })
  const refused = () => `event: error\n${data(problemDetails(signal.reason as TollgateError))}`

  // The prompt is paid for first: the opening hold always covers it.
  if (credits !== null && !credits.use(price.credits({ input: promptTokens }))) {
    yield refused()
    return
  }
  yield chunk({ role: 'assistant', content: '' })
  const perToken = price.credits({ output: 1 })
  let completionTokens = 0
  for await (const token of generate(outputTokens, options.tokenDelayMs, signal)) {
    if (credits !== null && !credits.use(perToken)) break
    completionTokens++
    yield chunk({ content: token })
  }
  if (signal.aborted) {
    // Out of credits: say so in-band. The client gone: nobody to tell.
    if (isTollgateError(signal.reason)) yield refused()
    return
  }
  yield chunk({}, completionTokens < outputTokens ? 'stop' : 'length')
  yield data({
    ...head,
    choices: [],
    usage: {
      prompt_tokens: promptTokens,
      completion_tokens: completionTokens,
      total_tokens: promptTokens + completionTokens,
    },
  })
  yield 'data: [DONE]\n\n'
}
