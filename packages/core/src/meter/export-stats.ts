/**
 * `meter.stats()` offered to an app's own metrics: a prom-client registry or an OpenTelemetry
 * meter. Neither library is a dependency of core: the app passes in the module (or meter) it
 * already has, typed here by the few members used. Both read the counters when scraped or
 * collected, never on the meter's hot path. See docs/metrics.md.
 */
import type { MeterStats } from './stats.js'

/** What the exporters need of a meter. */
export interface StatsSource {
  stats(): MeterStats
}

/** One exported figure: its field, its name (without prefix) and what it means. */
interface StatMetric {
  field: keyof MeterStats
  name: string
  help: string
  unit?: string
}

const STAT_METRICS: readonly StatMetric[] = [
  {
    field: 'storeOperations',
    name: 'store_operations',
    help: 'Operations the meter sent to its store.',
  },
  { field: 'storeErrors', name: 'store_errors', help: 'Store operations that failed (not run).' },
  {
    field: 'storeSeconds',
    name: 'store_seconds',
    help: 'Seconds spent waiting for the store, summed over its operations.',
    unit: 's',
  },
  { field: 'refusals', name: 'refusals', help: 'Requests refused for insufficient credits.' },
  {
    field: 'cacheRefusals',
    name: 'cache_refusals',
    help: 'Refusals answered from the balance cache, without a round trip.',
  },
  {
    field: 'leaseRefusals',
    name: 'lease_refusals',
    help: 'Refusals answered by the leases (no lease could be funded).',
  },
  { field: 'cacheHits', name: 'cache_hits', help: 'Balance reads answered from the cache.' },
  { field: 'cacheMisses', name: 'cache_misses', help: 'Balance reads sent to the store.' },
  { field: 'leaseGrants', name: 'lease_grants', help: 'Lease blocks taken from the store.' },
  { field: 'leaseServes', name: 'lease_serves', help: 'Reserves served from a lease, in process.' },
  { field: 'leaseSettles', name: 'lease_settles', help: 'Lease blocks settled with the store.' },
  {
    field: 'leaseSettleFailures',
    name: 'lease_settle_failures',
    help: 'Lease settlements the store did not take (retried).',
  },
]

/** A prom-client counter, as far as {@link prometheusCollector} uses it. */
export interface PromCounterLike {
  inc(value?: number): void
  reset(): void
}

/** The prom-client module (`import * as promClient from 'prom-client'`), as far as used. */
export interface PromClientLike<R> {
  Counter: new (configuration: {
    name: string
    help: string
    registers?: R[]
    collect?: (this: PromCounterLike) => void
  }) => PromCounterLike
}

/** Options of {@link prometheusCollector}. */
export interface PrometheusCollectorOptions<R> {
  /** The registry to add the counters to. @default prom-client's default registry */
  registry?: R
  /**
   * Prepended to every name (each also ends in `_total`); give a second meter in one registry
   * a prefix of its own.
   * @default 'tollgate_meter_'
   */
  prefix?: string
}

/**
 * Adds the meter's counters to a prom-client registry: `tollgate_meter_refusals_total`,
 * `tollgate_meter_cache_hits_total`, … (docs/metrics.md lists them). Each counter reads
 * `meter.stats()` when the registry is scraped.
 * @example
 * import * as promClient from 'prom-client'
 * import { prometheusCollector } from '@tollgate/core'
 * const registry = new promClient.Registry()
 * prometheusCollector(meter, promClient, { registry })
 */
export function prometheusCollector<R>(
  meter: StatsSource,
  promClient: PromClientLike<R>,
  options: PrometheusCollectorOptions<R> = {},
): void {
  const prefix = options.prefix ?? 'tollgate_meter_'
  const registers = options.registry === undefined ? undefined : [options.registry]
  for (const metric of STAT_METRICS) {
    new promClient.Counter({
      name: `${prefix}${metric.name}_total`,
      help: metric.help,
      ...(registers === undefined ? {} : { registers }),
      collect() {
        // A counter that mirrors a monotonic figure: set it by reset + inc.
        this.reset()
        this.inc(meter.stats()[metric.field])
      },
    })
  }
}

/** The result an OpenTelemetry batch callback observes into, as far as used. */
export interface OtelBatchResultLike<O> {
  observe(observable: O, value: number): void
}

/** An OpenTelemetry `Meter` (`metrics.getMeter(name)` of `@opentelemetry/api`), as far as used. */
export interface OtelMeterLike<O> {
  createObservableCounter(name: string, options?: { description?: string; unit?: string }): O
  addBatchObservableCallback(
    callback: (result: OtelBatchResultLike<O>) => void,
    observables: O[],
  ): void
  removeBatchObservableCallback(
    callback: (result: OtelBatchResultLike<O>) => void,
    observables: O[],
  ): void
}

/** Options of {@link openTelemetryMetrics}. */
export interface OpenTelemetryMetricsOptions {
  /** Prepended to every instrument name. @default 'tollgate.meter.' */
  prefix?: string
}

/**
 * Reports the meter's counters as OpenTelemetry observable counters (`tollgate.meter.refusals`,
 * `tollgate.meter.cache_hits`, …), read once per collection. Returns the function that stops it.
 * @example
 * import { metrics } from '@opentelemetry/api'
 * import { openTelemetryMetrics } from '@tollgate/core'
 * const stop = openTelemetryMetrics(meter, metrics.getMeter('my-app'))
 */
export function openTelemetryMetrics<O>(
  meter: StatsSource,
  otelMeter: OtelMeterLike<O>,
  options: OpenTelemetryMetricsOptions = {},
): () => void {
  const prefix = options.prefix ?? 'tollgate.meter.'
  const instruments = STAT_METRICS.map((metric) =>
    otelMeter.createObservableCounter(`${prefix}${metric.name}`, {
      description: metric.help,
      ...(metric.unit === undefined ? {} : { unit: metric.unit }),
    }),
  )
  const callback = (result: OtelBatchResultLike<O>) => {
    const stats = meter.stats()
    for (let i = 0; i < STAT_METRICS.length; i++) {
      result.observe(instruments[i]!, stats[STAT_METRICS[i]!.field])
    }
  }
  otelMeter.addBatchObservableCallback(callback, instruments)
  return () => otelMeter.removeBatchObservableCallback(callback, instruments)
}
