/**
 * A meter's own figures (`meter.stats()`): monotonic counters, plain integer fields incremented
 * in place on the hot path (no allocation, no lookup), and a snapshot copy on request. See
 * docs/metrics.md; `prometheusCollector()` and `openTelemetryMetrics()` (export.ts) export them.
 */

/** A snapshot of a meter's counters; every field only grows over the meter's life. */
export interface MeterStats {
  /** Operations the meter sent to its store (lease blocks and settlements included). */
  storeOperations: number
  /** Of those, failed by the store (unavailable, past their deadline): not run. */
  storeErrors: number
  /**
   * Seconds spent waiting for the store's asynchronous answers, summed over its operations (a
   * store that answers at once, like `memoryStore()`, adds nothing): with
   * {@link storeOperations}, the mean store latency.
   */
  storeSeconds: number
  /**
   * Requests refused for insufficient credits (reserve, debit, increase, …), wherever the
   * answer came from: the store, the cache or the leases.
   */
  refusals: number
  /** Of {@link refusals}, answered from the balance cache without a round trip. */
  cacheRefusals: number
  /** Of {@link refusals}, answered by the leases (the account could not fund a lease). */
  leaseRefusals: number
  /** `balance()` reads answered from the cache. */
  cacheHits: number
  /** `balance()` reads the cache could not answer (sent to the store); fresh reads are neither. */
  cacheMisses: number
  /** Lease blocks taken from the store (one store hold each). */
  leaseGrants: number
  /** Reserves served from a lease, in process. */
  leaseServes: number
  /** Lease blocks settled with the store (one commit each). */
  leaseSettles: number
  /** Lease settlements the store did not take (retried; the usage stays owed). */
  leaseSettleFailures: number
}

/** The live counters of one meter. A class, so that every instance has one shape. */
export class MeterCounters implements MeterStats {
  storeOperations = 0
  storeErrors = 0
  storeSeconds = 0
  refusals = 0
  cacheRefusals = 0
  leaseRefusals = 0
  cacheHits = 0
  cacheMisses = 0
  leaseGrants = 0
  leaseServes = 0
  leaseSettles = 0
  leaseSettleFailures = 0

  /** A plain copy: the caller may keep it, the counters go on. */
  snapshot(): MeterStats {
    return {
      storeOperations: this.storeOperations,
      storeErrors: this.storeErrors,
      storeSeconds: this.storeSeconds,
      refusals: this.refusals,
      cacheRefusals: this.cacheRefusals,
      leaseRefusals: this.leaseRefusals,
      cacheHits: this.cacheHits,
      cacheMisses: this.cacheMisses,
      leaseGrants: this.leaseGrants,
      leaseServes: this.leaseServes,
      leaseSettles: this.leaseSettles,
      leaseSettleFailures: this.leaseSettleFailures,
    }
  }
}
