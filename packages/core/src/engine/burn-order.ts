import type { BucketState } from './state.js'

/**
 * The one total order buckets are spent in: priority ascending, then expiry ascending
 * (no expiry last), then promotional before paid, then created first, then id.
 */
export function compareBuckets(a: BucketState, b: BucketState): number {
  if (a.priority !== b.priority) return a.priority - b.priority
  const ea = a.expiresAt ?? Number.POSITIVE_INFINITY
  const eb = b.expiresAt ?? Number.POSITIVE_INFINITY
  if (ea !== eb) return ea < eb ? -1 : 1
  if (a.category !== b.category) return a.category === 'promotional' ? -1 : 1
  if (a.createdAt !== b.createdAt) return a.createdAt - b.createdAt
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

/** Inserts `bucket` at its place in the burn-ordered list. New buckets usually go last. */
export function insertBucket(buckets: BucketState[], bucket: BucketState): void {
  let i = buckets.length
  while (i > 0 && compareBuckets(buckets[i - 1]!, bucket) > 0) i--
  buckets.splice(i, 0, bucket)
}

/** Sorts in place unless already in burn order (stores may load buckets in any order). */
export function ensureBurnOrder(buckets: BucketState[]): void {
  for (let i = 1; i < buckets.length; i++) {
    if (compareBuckets(buckets[i - 1]!, buckets[i]!) > 0) {
      buckets.sort(compareBuckets)
      return
    }
  }
}
