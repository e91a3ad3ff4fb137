/** Waiting in tests: a plain sleep, and a promise a test resolves when something happened. */

/**
 * Resolves after `ms` (an unref'd timer: a pending sleep does not keep the process alive).
 * @example
 * await sleep(5) // let concurrent requests overlap
 */
export function sleep(ms: number): Promise<void> {
  return new Promise<void>((resolve) => setTimeout(resolve, ms).unref())
}

/** A promise with its resolver, from {@link deferred}. */
export interface Deferred<T> {
  promise: Promise<T>
  resolve: (value: T) => void
}

/**
 * A promise with its resolver, for "the handler has started" signals.
 * @example
 * const started = deferred()
 * // in the handler: started.resolve()
 * await started.promise
 */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => {
    resolve = r
  })
  return { promise, resolve }
}
