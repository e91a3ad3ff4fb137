/**
 * A stand-in for a language model: it streams the words of a canned answer, one "token" at a
 * time, until `maxTokens` or the end of the answer. The answer is long on purpose: a completion
 * outgrows its first hold, so the hold tops up while it streams.
 */
const SENTENCE =
  'Tollgate holds a first block of credits before the model starts, grows the hold a block at ' +
  'a time while the answer streams, and charges exactly the tokens that were served.'

/** The canned answer: the sentence, eight times over. */
const WORDS = Array.from({ length: 8 }, () => SENTENCE)
  .join(' ')
  .split(' ')

/** How many tokens the canned answer has: a completion never produces more. */
export const ANSWER_TOKENS = WORDS.length

/** Waits `ms`, or less when `signal` aborts (the client left, or the credits ran out). */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    timer.unref()
    signal.addEventListener('abort', done, { once: true })
  })
}

/** Yields up to `maxTokens` tokens, one every `delayMs`; stops early when `signal` aborts. */
export async function* generate(
  maxTokens: number,
  delayMs: number,
  signal: AbortSignal,
): AsyncGenerator<string> {
  for (let i = 0; i < Math.min(maxTokens, WORDS.length); i++) {
    if (delayMs > 0) await pause(delayMs, signal)
    if (signal.aborted) return
    yield i === 0 ? WORDS[i]! : ` ${WORDS[i]}`
  }
}
