/**
 * Streaming outputs (subscriptions, async-generator queries): the call is settled when the
 * stream ends, not when the resolver returns, so the wrappers here report how it ended.
 */
import { type Observable, observable } from '@trpc/server/observable'

/** How a stream ended. */
export type StreamEnd =
  /** The source finished normally. */
  | { type: 'end' }
  /** The source threw (or the observable errored). */
  | { type: 'error'; error: unknown }
  /** The reader stopped early: client gone, unsubscribed, or nobody started reading. */
  | { type: 'abort' }

/** How a metered stream reports back. */
export interface StreamHooks {
  /** Settles the call. Only the first call counts; never rejects. */
  settle(end: StreamEnd): Promise<void>
  /**
   * A stream nobody starts reading within this long is abandoned (tRPC dropped it, e.g. a
   * stream returned over a non-streaming link) and settles as an abort, so that its hold
   * is not kept alive by the heartbeat forever.
   */
  startWithinMs: number
}

export function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value
}

export function isObservable(value: unknown): value is Observable<unknown, unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { subscribe?: unknown }).subscribe === 'function'
  )
}

function startGuard(hooks: StreamHooks): { started(): void } {
  const timer = setTimeout(() => void hooks.settle({ type: 'abort' }), hooks.startWithinMs)
  timer.unref()
  return { started: () => clearTimeout(timer) }
}

/**
 * Wraps an async iterable so that its end settles the call: `end` when it is exhausted,
 * `error` when it throws, `abort` when the reader calls `return()` before the end. A plain
 * iterator object rather than an async generator, because a generator's `return()` waits for
 * a pending `next()`: an abandoned stream would keep its hold until the source yields again.
 */
export function meterAsyncIterable<T>(
  source: AsyncIterable<T>,
  hooks: StreamHooks,
): AsyncIterable<T> {
  const guard = startGuard(hooks)
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      guard.started()
      const it = source[Symbol.asyncIterator]()
      return {
        async next(...args: [] | [unknown]): Promise<IteratorResult<T>> {
          let result: IteratorResult<T>
          try {
            result = await it.next(...args)
          } catch (error) {
            await hooks.settle({ type: 'error', error })
            throw error
          }
          // Settle before reporting the end: a client that saw the stream end sees the charge.
          if (result.done) await hooks.settle({ type: 'end' })
          return result
        },
        async return(value?: unknown): Promise<IteratorResult<T>> {
          // Start settling now; the source's own cleanup may take until its next yield.
          const settled = hooks.settle({ type: 'abort' })
          try {
            if (it.return) return await it.return(value)
            return { done: true, value }
          } finally {
            await settled
          }
        },
        async throw(error?: unknown): Promise<IteratorResult<T>> {
          const settled = hooks.settle({ type: 'error', error })
          try {
            if (it.throw) return await it.throw(error)
            throw error
          } finally {
            await settled
          }
        },
      }
    },
  }
}

/**
 * The same for a (deprecated, still supported) observable subscription: `complete` is the end,
 * `error` an error, unsubscribing before either an abort.
 */
export function meterObservable<T, E>(
  source: Observable<T, E>,
  hooks: StreamHooks,
): Observable<T, E> {
  const guard = startGuard(hooks)
  return observable<T, E>((observer) => {
    guard.started()
    const subscription = source.subscribe({
      next: (value) => observer.next(value),
      error: (error) => {
        void hooks.settle({ type: 'error', error }).then(() => observer.error(error))
      },
      complete: () => {
        void hooks.settle({ type: 'end' }).then(() => observer.complete())
      },
    })
    return () => {
      subscription.unsubscribe()
      void hooks.settle({ type: 'abort' })
    }
  })
}
