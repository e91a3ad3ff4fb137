/**
 * Idempotency keys that `httpStore()` generates for its own retries. They dedupe a retried
 * request like any key, but they are not the caller's: ledger entries leave them out, the
 * client reports a replay under one as the first answer, and the meter refuses them as input.
 *
 * The engine knows nothing of this prefix: where an operation arrives over the store protocol,
 * {@link markTransportKey} turns a transport key into the engine's neutral `hideKey` flag.
 */
import type { Operation } from '../engine/state.js'

export const TRANSPORT_KEY_PREFIX = 'tg-retry:'

/** True for a key `httpStore()` generated for its retries. */
export function isTransportKey(key: string): boolean {
  return key.startsWith(TRANSPORT_KEY_PREFIX)
}

/**
 * The operation as the engine should take it: under a transport key, with `hideKey: true`
 * (the key dedupes and replays, but ledger entries leave it out); any other operation as it is.
 * A server calls it on every operation the store protocol brings.
 * @example store.execute({ ...request, op: markTransportKey(body.op) })
 */
export function markTransportKey<T extends Operation>(op: T): T {
  const key = op.idempotencyKey
  return key !== undefined && isTransportKey(key) ? { ...op, hideKey: true } : op
}
