/**
 * Idempotency keys that `httpStore()` generates for its own retries. They dedupe a retried
 * request like any key, but they are not the caller's: ledger entries leave them out, the
 * client reports a replay under one as the first answer, and the meter refuses them as input.
 */
export const TRANSPORT_KEY_PREFIX = 'tg-retry:'

/** True for a key `httpStore()` generated for its retries. */
export function isTransportKey(key: string): boolean {
  return key.startsWith(TRANSPORT_KEY_PREFIX)
}
