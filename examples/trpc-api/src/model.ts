/**
 * A stand-in for a language model: it streams a canned answer word by word, so the example
 * shows a completion priced by tokens without an API key.
 */
const ANSWER =
  'Tollgate reserves the credits a call may need before it runs, streams the answer, and ' +
  'charges only the tokens that were really produced once the stream ends.'

/** Streams up to `maxTokens` tokens, one every `delayMs`; stops when `signal` aborts. */
export async function* generate(
  prompt: string,
  {
    maxTokens,
    delayMs = 40,
    signal,
  }: { maxTokens: number; delayMs?: number; signal?: AbortSignal },
): AsyncGenerator<string> {
  const tokens = `${prompt.trim()}? ${ANSWER}`.split(/\s+/)
  for (const token of tokens.slice(0, maxTokens)) {
    await new Promise((resolve) => setTimeout(resolve, delayMs))
    if (signal?.aborted) return
    yield `${token} `
  }
}

/** A cheap one-shot task: the first sentence, shortened. */
export function summarize(text: string): string {
  const first = text.split(/(?<=[.!?])\s/)[0] ?? ''
  return first.length > 80 ? `${first.slice(0, 77)}...` : first
}
