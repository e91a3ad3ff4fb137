/**
 * What a model request may cost at most, read from its body before it is sent: the prompt's
 * size, estimated from its text, and the output it allows, from every field the providers use
 * for it. A hold sized from this is the reserve of DESIGN section 3 for a model call.
 */
import { InvalidInputError } from '@tollgate/core'

/**
 * The request fields that bound the output, by API: OpenAI chat completions (`max_tokens`, and
 * `max_completion_tokens` that replaced it), the OpenAI responses API (`max_output_tokens`),
 * Anthropic messages (`max_tokens`). Every one is read, whichever API the body is for, and the
 * largest wins: a client cannot name a small one for the hold and a large one for the model.
 */
export const OUTPUT_LIMIT_FIELDS = [
  'max_tokens',
  'max_completion_tokens',
  'max_output_tokens',
] as const

/**
 * The request fields that carry the prompt: chat and Anthropic `messages`, the responses API's
 * `input` and `instructions`, Anthropic's `system`, the legacy completions `prompt`, and the
 * tool definitions (`tools`, legacy `functions`) the provider puts in front of the model.
 */
const PROMPT_FIELDS = [
  'messages',
  'input',
  'instructions',
  'system',
  'prompt',
  'tools',
  'functions',
]

/**
 * Keys whose strings are media or opaque payloads, not prompt text: base64 image, audio and
 * file data, image URLs (often `data:` URLs), thinking signatures, encrypted reasoning. The
 * provider bills media by their size in pixels or seconds, not by these characters.
 */
const MEDIA_KEYS = new Set([
  'data',
  'url',
  'image_url',
  'file_data',
  'file_url',
  'signature',
  'encrypted_content',
])

/** How deep a prompt may nest: a limit on the walk, far beyond what any provider's shape uses. */
const MAX_DEPTH = 64

/** What {@link estimateRequest} needs of the price's options. */
export interface EstimateSettings {
  maxOutputTokens: number
  messageOverhead: number
  countTokens: ((text: string) => number) | null
}

/** A request's token estimate, before it is sent. */
export interface RequestEstimate {
  /** The prompt's estimated tokens (a floor: see {@link estimateRequest}). */
  promptTokens: number
  /**
   * The output tokens the hold allows for: the largest output limit in the request, capped by
   * `maxOutputTokens` (the cap itself when the request names none), times `n`. Send the model
   * this as its limit and the output cannot outgrow the hold.
   */
  outputTokens: number
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A non-negative integer from the request (`null`/absent: undefined), else an error naming it. */
function requestInteger(body: Record<string, unknown>, field: string, min: number) {
  const value = body[field]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidInputError(field, `must be an integer of at least ${min}`)
  }
  return value
}

/**
 * The output tokens a request allows: the largest of its output limits, capped by `cap`, or
 * `cap` when it names none; times `n` (chat completions generate `n` choices, each up to the
 * limit). A limit that is not a non-negative integer (a string, `-1`, `1.5`) is an
 * `InvalidInputError` naming the field.
 */
export function outputAllowance(body: Record<string, unknown>, cap: number): number {
  let largest: number | undefined
  for (const field of OUTPUT_LIMIT_FIELDS) {
    const limit = requestInteger(body, field, 0)
    if (limit !== undefined) largest = Math.max(largest ?? 0, limit)
  }
  const choices = requestInteger(body, 'n', 1) ?? 1
  return Math.min(largest ?? cap, cap) * choices
}

/**
 * Estimates a request's prompt tokens from its text: every string in the prompt fields (see
 * `PROMPT_FIELDS`), media payloads left out (see `MEDIA_KEYS`), at one token per four
 * characters (UTF-16 code units) of the whole, rounded up, plus `messageOverhead` tokens per
 * message (each element of `messages`, of an `input` or `prompt` list, and `system` or
 * `instructions`), for the role and framing the provider adds. With `countTokens` (a real
 * tokenizer) each string is counted by it instead of by its length.
 *
 * It is a floor, not a bound: English prose runs about four characters a token, code and
 * other scripts fewer, so the actual prompt may cost more. The usage the provider reports is
 * what is charged in the end.
 */
export function promptTokens(body: Record<string, unknown>, settings: EstimateSettings): number {
  let chars = 0
  let tokens = 0
  let messages = 0
  const count = settings.countTokens
  const add = (text: string) => {
    if (count === null) {
      chars += text.length
      return
    }
    const n = count(text)
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new InvalidInputError('countTokens', 'must return a non-negative integer')
    }
    tokens += n
  }
  const walk = (value: unknown, field: string, depth: number): void => {
    if (typeof value === 'string') {
      add(value)
      return
    }
    if (typeof value !== 'object' || value === null) return
    if (depth > MAX_DEPTH) throw new InvalidInputError(field, `nests deeper than ${MAX_DEPTH}`)
    if (Array.isArray(value)) {
      for (const item of value) walk(item, field, depth + 1)
      return
    }
    for (const key in value) {
      if (!MEDIA_KEYS.has(key)) walk((value as Record<string, unknown>)[key], field, depth + 1)
    }
  }
  for (const field of PROMPT_FIELDS) {
    const value = body[field]
    if (value === undefined || value === null) continue
    if (field === 'messages' && !Array.isArray(value)) {
      throw new InvalidInputError(field, 'must be an array of messages')
    }
    if (typeof value !== 'string' && typeof value !== 'object') {
      throw new InvalidInputError(field, 'must be text, a list or an object')
    }
    if (field === 'messages' || field === 'input' || field === 'prompt') {
      messages += Array.isArray(value) ? value.length : 1
    } else if (field === 'system' || field === 'instructions') {
      messages += 1
    }
    walk(value, field, 0)
  }
  return tokens + Math.ceil(chars / 4) + messages * settings.messageOverhead
}

/**
 * The token estimate of a request body (OpenAI chat completions or responses, Anthropic
 * messages, legacy completions): its prompt's tokens ({@link promptTokens}) and the output it
 * allows ({@link outputAllowance}).
 */
export function estimateRequest(body: unknown, settings: EstimateSettings): RequestEstimate {
  if (!isObject(body)) throw new InvalidInputError('body', 'must be a JSON object')
  return {
    promptTokens: promptTokens(body, settings),
    outputTokens: outputAllowance(body, settings.maxOutputTokens),
  }
}
