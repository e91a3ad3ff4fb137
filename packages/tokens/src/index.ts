/**
 * `@tollgate/tokens`: prices model calls in Tollgate credits. A hold sized from the request
 * (prompt estimate plus output allowance, every output-limit alias read), the cost from the
 * usage OpenAI or Anthropic report, whole or streamed.
 */
export { OUTPUT_LIMIT_FIELDS, type RequestEstimate } from './request.js'
export {
  type StreamUsage,
  type TokenPrice,
  type TokenPriceOptions,
  tokenPrice,
} from './token-price.js'
export { readUsage, type TokenUsage, UsageAccumulator } from './usage.js'
