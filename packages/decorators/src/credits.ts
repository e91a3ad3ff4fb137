/**
 * Where a metered method finds its credits: an AsyncLocalStorage, because one instance may run
 * many calls at once (a `this.credits` field would mix them up), and the value must follow the
 * method into its awaits and, for async generators, into each resumption.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import type { RequestCredits } from '@tollgate/core/metering'

const KEY = Symbol.for('tollgate.decorators.credits')

/**
 * One storage per process, even when two copies of this package are loaded, so that a method
 * decorated by one copy can read its credits through the other.
 */
const shared = globalThis as { [KEY]?: AsyncLocalStorage<RequestCredits | null> }
shared[KEY] ??= new AsyncLocalStorage()
const storage = shared[KEY]

/** Runs `fn` with `credits` as the current call's credits. */
export function runWithCredits<T>(credits: RequestCredits | null, fn: () => T): T {
  return storage.run(credits, fn)
}

/**
 * The credits of the `@Metered` method running now (in this async context): `account`, the
 * reserved `cost`, the `hold`, the `balance` after the reserve, and `actual`, what the call is
 * charged when it succeeds. Set `actual` to charge what the work really cost. `null` outside a
 * metered method, and inside one that is not metered (`skip`, or `failMode: 'open'` with the
 * ledger down).
 * @example
 * \@Metered({ cost: ([req]) => req.maxTokens })
 * async complete(req: CompletionRequest) {
 *   const out = await model.complete(req)
 *   const credits = currentCredits()
 *   if (credits) credits.actual = out.usage.totalTokens
 *   return out.text
 * }
 */
export function currentCredits(): RequestCredits | null {
  return storage.getStore() ?? null
}
