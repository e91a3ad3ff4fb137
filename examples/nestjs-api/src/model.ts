/**
 * A stand-in for a language model: it streams the words of a canned answer, one "token" at a
 * time, and stops at `maxTokens` or at the end of the answer, whichever comes first. That is
 * what makes metering interesting: the price is reserved for `maxTokens`, but only the tokens
 * really produced are charged.
 */
const ANSWER =
  'Tollgate reserves the most a request may cost before the handler runs, then commits what ' +
  'the work really used once the response has been sent, and releases the rest. A stream ' +
  'keeps its hold alive while it runs, and a client that leaves early pays nothing by default.'

/** How many tokens the canned answer has: a completion never produces more. */
export const ANSWER_TOKENS = ANSWER.split(' ').length

/** Yields up to `maxTokens` tokens, one every `delayMs`. */
export async function* complete(maxTokens: number, delayMs: number): AsyncGenerator<string> {
  const words = ANSWER.split(' ')
  for (let i = 0; i < Math.min(maxTokens, words.length); i++) {
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs))
    yield i === 0 ? words[i]! : ` ${words[i]}`
  }
}
