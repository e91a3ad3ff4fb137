/**
 * `meter.stats()` over known traffic (cache hits and refusals, leases, store refusals), and the
 * same figures exported through a real prom-client registry and a real OpenTelemetry SDK meter
 * provider with an in-memory reader.
 */
import type { metrics as otelApi } from '@opentelemetry/api'
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics'
import * as promClient from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import { memoryStore } from '../store/memory-store.js'
import type { Store } from '../store/store.js'
import { openTelemetryMetrics, prometheusCollector } from './export-stats.js'
import { createMeter, type Meter } from './meter.js'
import type { MeterStats } from './stats.js'

const NOW = Date.UTC(2030, 0, 1)
const clock = () => NOW

const meters: Meter[] = []
afterEach(async () => {
  for (const m of meters.splice(0)) await m.close()
})

/**
 * Known traffic on a cached meter and a leasing meter over one store; returns the figures the
 * traffic must produce (derived from what each call does, not read back from the meter).
 */
async function traffic(): Promise<{ cached: Meter; leased: Meter; expected: MeterStats[] }> {
  const store = memoryStore()
  const cached = createMeter({ store, clock })
  const leased = createMeter({ store, clock, lease: { size: 10 } })
  meters.push(cached, leased)

  // Cached meter: 1 grant (the change feed then marks the account stale in the cache); a
  // balance read the cache cannot answer (miss: a store read, which caches it); the same read
  // again (hit); a reserve the cached figure refuses without a round trip; a keyed reserve,
  // which only the store may answer (a replay?), refused by the store.
  await cached.grant('a', 10)
  await cached.balance('a')
  await cached.balance('a')
  const short = { code: 'insufficient_credits' }
  await expect(cached.reserve('a', 100)).rejects.toMatchObject(short)
  await expect(cached.reserve('a', 100, { idempotencyKey: 'k' })).rejects.toMatchObject(short)

  // Leasing meter: 1 grant; 5 reserves of 1 served from one lease of 10 (one store hold) and
  // committed locally; a flush settles the lease (one store commit). An empty account cannot
  // fund a lease: refused by the leases (the lease's own store refusal is not the caller's).
  await leased.grant('b', 25)
  for (let i = 0; i < 5; i++) await (await leased.reserve('b', 1)).commit()
  await leased.flush()
  await expect(leased.reserve('empty', 1)).rejects.toMatchObject({ code: 'insufficient_credits' })

  const none: MeterStats = {
    storeOperations: 0,
    storeErrors: 0,
    storeSeconds: 0,
    refusals: 0,
    cacheRefusals: 0,
    leaseRefusals: 0,
    cacheHits: 0,
    cacheMisses: 0,
    leaseGrants: 0,
    leaseServes: 0,
    leaseSettles: 0,
    leaseSettleFailures: 0,
  }
  return {
    cached,
    leased,
    expected: [
      // grant, balance read, keyed reserve
      { ...none, storeOperations: 3, refusals: 2, cacheRefusals: 1, cacheHits: 1, cacheMisses: 1 },
      // grant, lease hold, lease settlement, the empty account's lease attempt
      {
        ...none,
        storeOperations: 4,
        refusals: 1,
        leaseRefusals: 1,
        leaseGrants: 1,
        leaseServes: 5,
        leaseSettles: 1,
      },
    ],
  }
}

/** Stats without the latency sum (a measured figure), which is checked apart. */
function counts(stats: MeterStats): MeterStats {
  expect(stats.storeSeconds).toBeGreaterThanOrEqual(0)
  return { ...stats, storeSeconds: 0 }
}

describe('meter.stats()', () => {
  it('counts store operations, cache hits and refusals, and leases', async () => {
    const { cached, leased, expected } = await traffic()
    expect(counts(cached.stats())).toEqual(expected[0])
    expect(counts(leased.stats())).toEqual(expected[1])
  })

  it('is a snapshot: later traffic does not change a copy already taken', async () => {
    const meter = createMeter({ store: memoryStore(), clock })
    meters.push(meter)
    const before = meter.stats()
    await meter.grant('a', 1)
    expect(before.storeOperations).toBe(0)
    expect(meter.stats().storeOperations).toBe(1)
  })

  it('counts a store that fails as a store error', async () => {
    const down = () => Promise.reject(new Error('down'))
    const failing: Store = {
      kind: 'failing',
      execute: down,
      ledger: down,
      createCodes: down,
      dueAccounts: down,
      prune: down,
      close: async () => {},
    }
    const broken = createMeter({ store: failing, clock })
    meters.push(broken)
    await expect(broken.grant('a', 1)).rejects.toMatchObject({ code: 'store_unavailable' })
    expect(broken.stats()).toMatchObject({ storeOperations: 1, storeErrors: 1 })
  })
})

describe('prometheusCollector', () => {
  it('exports the figures to an app registry, read at scrape time', async () => {
    const { cached, leased, expected } = await traffic()
    const registry = new promClient.Registry()
    prometheusCollector(cached, promClient, { registry })
    prometheusCollector(leased, promClient, { registry, prefix: 'tollgate_leased_' })
    const byName = new Map<string, number>()
    for (const metric of await registry.getMetricsAsJSON()) {
      expect(metric.type).toBe('counter')
      byName.set(metric.name, metric.values[0]!.value)
    }
    expect(byName.get('tollgate_meter_refusals_total')).toBe(expected[0]!.refusals)
    expect(byName.get('tollgate_meter_cache_refusals_total')).toBe(expected[0]!.cacheRefusals)
    expect(byName.get('tollgate_meter_cache_hits_total')).toBe(expected[0]!.cacheHits)
    expect(byName.get('tollgate_meter_cache_misses_total')).toBe(expected[0]!.cacheMisses)
    expect(byName.get('tollgate_meter_store_operations_total')).toBe(3)
    expect(byName.get('tollgate_leased_lease_grants_total')).toBe(expected[1]!.leaseGrants)
    expect(byName.get('tollgate_leased_lease_serves_total')).toBe(expected[1]!.leaseServes)
    expect(byName.get('tollgate_leased_lease_settles_total')).toBe(expected[1]!.leaseSettles)
    expect(byName.get('tollgate_leased_lease_refusals_total')).toBe(expected[1]!.leaseRefusals)
    expect(byName.get('tollgate_leased_store_seconds_total')).toBe(leased.stats().storeSeconds)
    expect(byName.size).toBe(24)

    // Read again at the next scrape: the counters follow the meter.
    await cached.grant('a', 1)
    const text = await registry.metrics()
    expect(text).toContain('tollgate_meter_store_operations_total 4\n')
  })
})

describe('openTelemetryMetrics', () => {
  it('exports the figures as observable counters of an OpenTelemetry meter', async () => {
    const { cached, leased, expected } = await traffic()
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 })
    const provider = new MeterProvider({ readers: [reader] })
    try {
      // Through the API package's types, as an app would hold its meter.
      const otelMeter: ReturnType<typeof otelApi.getMeter> = provider.getMeter('app')
      const stop = openTelemetryMetrics(cached, otelMeter)
      openTelemetryMetrics(leased, otelMeter, { prefix: 'tollgate.leased.' })
      const { resourceMetrics } = await reader.collect()
      const points = new Map<string, number>()
      for (const scope of resourceMetrics.scopeMetrics) {
        for (const metric of scope.metrics) {
          expect(metric.dataPoints).toHaveLength(1)
          points.set(metric.descriptor.name, metric.dataPoints[0]!.value as number)
        }
      }
      expect(points.get('tollgate.meter.refusals')).toBe(expected[0]!.refusals)
      expect(points.get('tollgate.meter.cache_refusals')).toBe(expected[0]!.cacheRefusals)
      expect(points.get('tollgate.meter.cache_hits')).toBe(expected[0]!.cacheHits)
      expect(points.get('tollgate.meter.cache_misses')).toBe(expected[0]!.cacheMisses)
      expect(points.get('tollgate.leased.lease_grants')).toBe(expected[1]!.leaseGrants)
      expect(points.get('tollgate.leased.lease_serves')).toBe(expected[1]!.leaseServes)
      expect(points.get('tollgate.leased.lease_settles')).toBe(expected[1]!.leaseSettles)
      expect(points.get('tollgate.leased.refusals')).toBe(expected[1]!.refusals)
      expect(points.size).toBe(24)

      // Stopped: later traffic on the first meter no longer reaches the collection (its last
      // cumulative point may stay); the second meter is still read.
      stop()
      await cached.grant('a', 1)
      await leased.grant('b', 1)
      const again = await reader.collect()
      const later = new Map<string, number>()
      for (const scope of again.resourceMetrics.scopeMetrics) {
        for (const metric of scope.metrics) {
          for (const point of metric.dataPoints) {
            later.set(metric.descriptor.name, point.value as number)
          }
        }
      }
      const before = points.get('tollgate.meter.store_operations')!
      expect(later.get('tollgate.meter.store_operations') ?? before).toBe(before)
      expect(later.get('tollgate.leased.store_operations')).toBe(
        points.get('tollgate.leased.store_operations')! + 1,
      )
    } finally {
      await provider.shutdown()
    }
  })
})
