export { downStore as failingStore, expectLedgerReplays } from '@tollgate/conformance'

/** A promise with its resolver, for "the handler has started" signals. */
export function deferred<T = void>() {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => {
    resolve = r
  })
  return { promise, resolve }
}
