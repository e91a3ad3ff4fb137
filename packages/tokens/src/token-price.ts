/**
 * Prices model calls in credits: what to hold before the call (from the request) and what to
 * charge after it (from the usage the provider reports), in integer arithmetic so a price never
 * drifts by a rounding error and every figure is a ledger amount (DESIGN section 1).
 */
import { InvalidInputError } from '@tollgate/core'
import { type EstimateSettings, estimateRequest, type RequestEstimate } from './request.js'
import { readUsage, type TokenUsage, UsageAccumulator } from './usage.js'

/** The prices of {@link tokenPrice}, each in credits per `per` tokens. */
export interface TokenPriceOptions {
  /**
   * Credits per `per` prompt tokens. Prices are whole credits: for a fractional price, count
   * in smaller credits (milli-credits) or raise `per`.
   * @example 3 // with per: 1_000_000, 3 credits per million input tokens
   */
  input: number
  /** Credits per `per` generated tokens (reasoning tokens included). @example 15 */
  output: number
  /** How many tokens the prices are for. @example 1_000_000 */
  per: number
  /** Credits per `per` prompt tokens read from the provider's cache. @default input */
  cacheRead?: number
  /** Credits per `per` prompt tokens written to the provider's cache. @default input */
  cacheWrite?: number
  /**
   * The most output tokens a hold allows for: caps the request's own limit, and is the limit
   * when the request names none. Set it to the model's output limit, or lower.
   * @default 4096
   */
  maxOutputTokens?: number
  /** Tokens added per message to the prompt's estimate (role and framing). @default 4 */
  messageOverhead?: number
  /**
   * Counts a text's tokens for the prompt's estimate (a real tokenizer); by default one token
   * per four characters. @default null
   * @example (text) => encoder.encode(text).length
   */
  countTokens?: ((text: string) => number) | null
}

/** What a call to a model costs, from its request and from its usage. */
export interface TokenPrice {
  /** The options as resolved (defaults filled in). */
  readonly options: Readonly<Required<Omit<TokenPriceOptions, 'countTokens'>>>
  /**
   * Credits for token counts: `input`, `output`, `cacheRead` and `cacheWrite` times their
   * prices, summed, divided by `per` and rounded up to a whole credit. Absent counts are 0.
   */
  credits(tokens: Partial<TokenUsage>): number
  /** A request's token estimate and the credits to hold for it. */
  estimate(body: unknown): RequestEstimate & { credits: number }
  /**
   * Credits to hold for a request body before it is sent: its prompt's estimate at the input
   * price plus its output allowance at the output price.
   * @example
   * const hold = await meter.reserve(account, price.hold(body))
   */
  hold(body: unknown): number
  /**
   * Credits a call cost, from the usage the provider reported (OpenAI or Anthropic shaped; a
   * whole response that carries `usage` is read too).
   * @example
   * await hold.commit(price.cost(completion.usage))
   */
  cost(usage: unknown): number
  /** An accumulator for a streamed response's usage events. */
  stream(): StreamUsage
}

/** A streamed response's usage so far, and its cost. */
export interface StreamUsage {
  /** Takes one event (parsed JSON, or an SSE `data:` payload); true when it carried usage. */
  add(event: unknown): boolean
  /** How many events carried usage. */
  readonly events: number
  /** The usage so far; null when no event carried any. */
  readonly usage: TokenUsage | null
  /**
   * The cost of the usage so far; null when no event carried usage (an OpenAI stream without
   * `stream_options.include_usage`): then commit the hold, or what you counted yourself.
   */
  readonly cost: number | null
}

const KNOWN = new Set([
  'input',
  'output',
  'per',
  'cacheRead',
  'cacheWrite',
  'maxOutputTokens',
  'messageOverhead',
  'countTokens',
])

function integer(value: unknown, field: string, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidInputError(field, `must be an integer of at least ${min}`)
  }
  return value
}

const MAX = BigInt(Number.MAX_SAFE_INTEGER)

/**
 * Prices model calls in credits per `per` tokens.
 *
 * Arithmetic is on integers only: the token counts times their prices are summed exactly
 * (BigInt), then divided by `per` and rounded **up** once, so a call is never charged less than
 * its tokens cost and at most one credit more (rounding each kind of token apart would overcharge
 * by up to four). A call that used no tokens costs 0. A result beyond a safe integer is an
 * `InvalidInputError`.
 *
 * Options are checked here: a price or `per` that is not an integer (`input: 0.5`), negative,
 * a `per` or cap of 0, or an unknown key (a typo would change what is charged) is an
 * `InvalidInputError` naming the field.
 * @example
 * const price = tokenPrice({ input: 3, output: 15, per: 1_000_000, maxOutputTokens: 8192 })
 * const hold = await meter.reserve(account, price.hold(body))
 * const completion = await openai.chat.completions.create(body)
 * await hold.commit(price.cost(completion.usage))
 */
export function tokenPrice(options: TokenPriceOptions): TokenPrice {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidInputError('options', 'tokenPrice needs { input, output, per }')
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw new InvalidInputError(key, 'is not an option of tokenPrice')
  }
  const input = integer(options.input, 'input', 0)
  const resolved = {
    input,
    output: integer(options.output, 'output', 0),
    per: integer(options.per, 'per', 1),
    cacheRead: integer(options.cacheRead ?? input, 'cacheRead', 0),
    cacheWrite: integer(options.cacheWrite ?? input, 'cacheWrite', 0),
    maxOutputTokens: integer(options.maxOutputTokens ?? 4096, 'maxOutputTokens', 1),
    messageOverhead: integer(options.messageOverhead ?? 4, 'messageOverhead', 0),
  }
  const countTokens = options.countTokens ?? null
  if (countTokens !== null && typeof countTokens !== 'function') {
    throw new InvalidInputError('countTokens', 'must be a function (text) => tokens')
  }
  const settings: EstimateSettings = {
    maxOutputTokens: resolved.maxOutputTokens,
    messageOverhead: resolved.messageOverhead,
    countTokens,
  }
  const prices = {
    input: BigInt(resolved.input),
    output: BigInt(resolved.output),
    cacheRead: BigInt(resolved.cacheRead),
    cacheWrite: BigInt(resolved.cacheWrite),
  }
  const per = BigInt(resolved.per)

  const credits = (tokens: Partial<TokenUsage>): number => {
    if (typeof tokens !== 'object' || tokens === null) {
      throw new InvalidInputError('tokens', 'must be { input, output, cacheRead, cacheWrite }')
    }
    let total = 0n
    for (const kind of ['input', 'output', 'cacheRead', 'cacheWrite'] as const) {
      const n = tokens[kind]
      if (n === undefined) continue
      total += BigInt(integer(n, `tokens.${kind}`, 0)) * prices[kind]
    }
    const rounded = (total + per - 1n) / per
    if (rounded > MAX) throw new InvalidInputError('tokens', 'cost more than a safe integer')
    return Number(rounded)
  }

  const estimate = (body: unknown) => {
    const e = estimateRequest(body, settings)
    return { ...e, credits: credits({ input: e.promptTokens, output: e.outputTokens }) }
  }

  return Object.freeze({
    options: Object.freeze(resolved),
    credits,
    estimate,
    hold: (body: unknown) => estimate(body).credits,
    cost: (usage: unknown) => credits(readUsage(usage)),
    stream: () => new StreamCost(credits),
  })
}

/** {@link StreamUsage} over a {@link UsageAccumulator}, priced by its {@link TokenPrice}. */
class StreamCost extends UsageAccumulator implements StreamUsage {
  readonly #credits: (tokens: TokenUsage) => number

  constructor(credits: (tokens: TokenUsage) => number) {
    super()
    this.#credits = credits
  }

  get cost(): number | null {
    const usage = this.usage
    return usage === null ? null : this.#credits(usage)
  }
}
