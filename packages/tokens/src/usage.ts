/**
 * Token counts as the providers report them, read into one shape. OpenAI (chat completions
 * and the responses API) counts cached prompt tokens inside its input figure; Anthropic counts
 * cache reads and writes beside it. Both are read here so a price sees the same four figures
 * whichever provider answered, whole or streamed.
 */
import { InvalidInputError } from '@tollgate/core'

/** Token counts by how they are priced. Every figure is a non-negative safe integer. */
export interface TokenUsage {
  /** Prompt tokens billed at the input price: cache reads and cache writes not included. */
  input: number
  /** Generated tokens, reasoning tokens included (providers bill them as output). */
  output: number
  /** Prompt tokens served from the provider's prompt cache. */
  cacheRead: number
  /** Prompt tokens written to the provider's prompt cache (Anthropic `cache_creation`). */
  cacheWrite: number
}

/**
 * The raw counters a usage object may carry, by the provider's own names. Every one is
 * cumulative in a stream (Anthropic's `message_delta` repeats the totals so far; OpenAI sends
 * one final figure), so merging two reports keeps the larger of each.
 */
interface Counters {
  prompt_tokens?: number
  completion_tokens?: number
  input_tokens?: number
  output_tokens?: number
  /** `prompt_tokens_details.cached_tokens` or `input_tokens_details.cached_tokens`. */
  cached_tokens?: number
  cache_creation_input_tokens?: number
  cache_read_input_tokens?: number
}

const TOP_LEVEL = [
  'prompt_tokens',
  'completion_tokens',
  'input_tokens',
  'output_tokens',
  'cache_creation_input_tokens',
  'cache_read_input_tokens',
] as const

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A token count: absent (`undefined`/`null`) or a non-negative safe integer. */
function count(value: unknown, field: string): number | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidInputError(field, 'must be a non-negative integer token count')
  }
  return value
}

/**
 * The usage object in `source`: a usage object itself, or something that carries one (a
 * completion or response, a final stream chunk, Anthropic's `message_start` or `message_delta`,
 * the responses API's `response.completed`). Null when there is none (a stream chunk before the
 * last).
 */
function findUsage(source: Record<string, unknown>): Record<string, unknown> | null {
  if (isObject(source.usage)) return source.usage
  if (isObject(source.message) && isObject(source.message.usage)) return source.message.usage
  if (isObject(source.response) && isObject(source.response.usage)) return source.response.usage
  for (const key of TOP_LEVEL) if (key in source) return source
  return null
}

/** The counters of one usage object, each checked; `field` prefixes the names errors give. */
function readCounters(usage: Record<string, unknown>, field: string): Counters {
  const out: Counters = {}
  for (const key of TOP_LEVEL) {
    const n = count(usage[key], `${field}.${key}`)
    if (n !== undefined) out[key] = n
  }
  for (const details of ['prompt_tokens_details', 'input_tokens_details'] as const) {
    const d = usage[details]
    if (!isObject(d)) continue
    const n = count(d.cached_tokens, `${field}.${details}.cached_tokens`)
    if (n !== undefined) out.cached_tokens = Math.max(out.cached_tokens ?? 0, n)
  }
  return out
}

/** Counters as {@link TokenUsage}; null when they hold no token figure at all. */
function toTokenUsage(c: Counters, field: string): TokenUsage | null {
  const prompt = c.prompt_tokens ?? c.input_tokens
  const output = c.completion_tokens ?? c.output_tokens
  const cacheWrite = c.cache_creation_input_tokens ?? 0
  const anthropicRead = c.cache_read_input_tokens ?? 0
  if (prompt === undefined && output === undefined && cacheWrite === 0 && anthropicRead === 0) {
    return null
  }
  // OpenAI's cached tokens are part of its prompt figure: take them out so they are priced once.
  const cached = c.cached_tokens ?? 0
  if (cached > (prompt ?? 0)) {
    throw new InvalidInputError(`${field}.cached_tokens`, 'exceeds the prompt tokens it is part of')
  }
  return {
    input: (prompt ?? 0) - cached,
    output: output ?? 0,
    cacheRead: cached + anthropicRead,
    cacheWrite,
  }
}

/**
 * Reads the token counts of an OpenAI or Anthropic usage object, or of a response or stream
 * event that carries one, into a {@link TokenUsage}.
 *
 * - OpenAI chat completions: `usage.prompt_tokens` (cached ones included, taken out as
 *   `cacheRead` from `prompt_tokens_details.cached_tokens`), `usage.completion_tokens`
 *   (reasoning included).
 * - OpenAI responses API: `usage.input_tokens` (with `input_tokens_details.cached_tokens`),
 *   `usage.output_tokens`.
 * - Anthropic messages: `usage.input_tokens` (cache not included), `usage.output_tokens`,
 *   `cache_read_input_tokens`, `cache_creation_input_tokens`.
 *
 * A count that is not a non-negative integer is an `InvalidInputError` naming it
 * (`usage.prompt_tokens`); so is a value with no token count in it.
 * @example
 * readUsage(completion.usage) // { input: 1200, output: 300, cacheRead: 1024, cacheWrite: 0 }
 */
export function readUsage(source: unknown): TokenUsage {
  const usage = isObject(source) ? findUsage(source) : null
  const tokens = usage && toTokenUsage(readCounters(usage, 'usage'), 'usage')
  if (!tokens) throw new InvalidInputError('usage', 'has no token counts')
  return tokens
}

/**
 * Adds up the usage a streamed response reports, event by event: OpenAI's last chat chunk
 * (with `stream_options: { include_usage: true }`), the responses API's `response.completed`,
 * Anthropic's `message_start` then `message_delta` (whose counts are running totals). Events
 * without usage (most of them) are ignored, so every event may be passed.
 * @example
 * const stream = new UsageAccumulator()
 * for await (const event of events) stream.add(event)
 * stream.usage // TokenUsage, or null when the stream reported none
 */
export class UsageAccumulator {
  readonly #counters: Counters = {}
  #events = 0

  /**
   * Takes one stream event: its parsed JSON, or the `data:` payload of a server-sent event as
   * text (`[DONE]` and blank payloads are ignored). Returns whether it carried usage.
   */
  add(event: unknown): boolean {
    let value = event
    if (typeof value === 'string') {
      const text = value.trim()
      if (text === '' || text === '[DONE]') return false
      try {
        value = JSON.parse(text)
      } catch (err) {
        throw new InvalidInputError('event', 'is not JSON', { cause: err })
      }
    }
    if (!isObject(value)) return false
    const usage = findUsage(value)
    if (usage === null) return false
    const counters = readCounters(usage, 'usage')
    // Cumulative counters: the larger figure is the later one, whatever order events came in.
    for (const [key, n] of Object.entries(counters) as [keyof Counters, number][]) {
      this.#counters[key] = Math.max(this.#counters[key] ?? 0, n)
    }
    this.#events += 1
    return true
  }

  /** How many events carried usage. */
  get events(): number {
    return this.#events
  }

  /**
   * The usage reported so far; null when no event carried any (an OpenAI stream asked without
   * `stream_options.include_usage`): the caller decides what such a stream pays.
   */
  get usage(): TokenUsage | null {
    return toTokenUsage(this.#counters, 'usage')
  }
}
