/**
 * Published figures of comparable projects, for `RESULTS.md`: quoted as their authors published
 * them, not measured here (other machines, other loads, other definitions of an operation).
 * They place Tollgate's own figures, measured in the same run on one machine, among what these
 * projects report of themselves; they are not a side-by-side comparison.
 */
import type { Table } from './common.js'

export interface PublishedFigure {
  project: string
  what: string
  /** Throughput as published, or '–'. */
  throughput: string
  /** Latency as published, or '–'. */
  latency: string
  /** How it was measured, in the publisher's words, shortened. */
  setup: string
  source: string
}

/** Where rate-limiter-flexible publishes its benchmark (README, section "Benchmark"). */
const RLF_README = 'https://github.com/animir/node-rate-limiter-flexible#benchmark'
/** Its RateLimiterCluster benchmark page, which also gives the request rate. */
const RLF_CLUSTER = 'https://github.com/animir/node-rate-limiter-flexible/blob/master/CLUSTER.md'

export const PUBLISHED: readonly PublishedFigure[] = [
  {
    project: 'Cycles',
    what: 'reserve + commit',
    throughput: '2,632 ops/s',
    latency: '14 ms p50',
    setup: 'as published by the Cycles project',
    source: 'the Cycles project',
  },
  {
    project: 'rate-limiter-flexible',
    what: 'RateLimiterMemory, per request',
    throughput: '–',
    latency: '0.34 ms average',
    setup:
      'pure Node endpoint, cluster of 4 workers, all on one server; 1,000 concurrent clients, at most 2,000 req/s for 30 s',
    source: RLF_README,
  },
  {
    project: 'rate-limiter-flexible',
    what: 'RateLimiterCluster, per request',
    throughput: '2,024.57 req/s average',
    latency: '0.70 ms average (0.67 ms p50, 1.60 ms p99)',
    setup: 'bombardier -c 1000 -r 2000 for 30 s against 4 workers',
    source: RLF_CLUSTER,
  },
  {
    project: 'rate-limiter-flexible',
    what: 'RateLimiterRedis, per request',
    throughput: '–',
    latency: '2.45 ms average',
    setup: 'as RateLimiterMemory above, Redis on the same server',
    source: RLF_README,
  },
  {
    project: 'rate-limiter-flexible',
    what: 'RateLimiterPostgres, per request',
    throughput: '–',
    latency: '7.48 ms average',
    setup: '500 concurrent clients, at most 1,000 req/s for 30 s; connection pool of 100',
    source: RLF_README,
  },
]

/** The published figures as a table for `RESULTS.md`. */
export function publishedTable(): Table {
  return {
    title: 'Published figures of other projects (as published, not measured here)',
    columns: ['project', 'what', 'throughput', 'latency', 'how it was measured', 'source'],
    align: ['l', 'l', 'l', 'l', 'l', 'l'],
    rows: PUBLISHED.map((f) => [
      f.project,
      f.what,
      f.throughput,
      f.latency,
      f.setup,
      f.source.startsWith('http') ? `<${f.source}>` : f.source,
    ]),
  }
}
