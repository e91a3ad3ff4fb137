/**
 * An open-loop load generator: requests leave at a fixed rate whether or not earlier ones have
 * been answered, so every scenario of a framework sees the same load and latency can be
 * compared at that load.
 *
 * autocannon's `overallRate` / `connectionRate` cannot do this: a connection sends its quota
 * for the second back to back and then waits for the next second (mcollina/autocannon#174),
 * so latency "at a fixed rate" is latency at saturation, in bursts. This paces requests with
 * a 1 ms timer (each tick sends what has come due) over undici's Pool (keep-alive
 * connections, no pipelining; requests beyond the busy connections wait in the pool's queue).
 *
 * Two latencies per request: from when it was sent (the `p…` figures: what the server and the
 * network add, queueing in the pool included), and from when it was due (`…Due`: also the
 * pacing timer's lag, which on a busy machine is the generator's own delay; wrk2's
 * coordinated-omission-free figure).
 */
import { createHistogram } from 'node:perf_hooks'
import { Pool } from 'undici'

export interface FixedRateOptions {
  url: string
  /** Requests per second. */
  rate: number
  /** Measured seconds. */
  seconds: number
  /** Seconds at the same rate before measuring (JIT of the generator, the server's new pace). */
  leadIn: number
  connections: number
  /** Headers of request i (rotated by the caller). */
  headers: (i: number) => Record<string, string>
}

export interface FixedRateResult {
  /** The rate asked for. */
  rate: number
  /** Responses per second over the measured part. */
  achieved: number
  /** Requests not sent because too many were outstanding (the server fell behind). */
  dropped: number
  errors: number
  non2xx: number
  /** Latency from the send, ms. */
  p50: number
  p90: number
  p99: number
  p999: number
  max: number
  /** Latency from when the request was due, ms. */
  p50Due: number
  p99Due: number
}

/** The most requests outstanding before the generator drops instead of queueing more. */
const MAX_OUTSTANDING = 2_000

export async function fixedRate(o: FixedRateOptions): Promise<FixedRateResult> {
  const pool = new Pool(o.url, { connections: o.connections, pipelining: 1 })
  const fromSend = createHistogram({ lowest: 1_000, highest: 60_000_000_000, figures: 3 })
  const fromDue = createHistogram({ lowest: 1_000, highest: 60_000_000_000, figures: 3 })
  let sent = 0
  let done = 0
  let dropped = 0
  let errors = 0
  let non2xx = 0
  let outstanding = 0
  const interval = 1_000 / o.rate
  const start = performance.now()
  const measureFrom = start + o.leadIn * 1_000
  const end = measureFrom + o.seconds * 1_000

  const finish = (due: number, at: number) => {
    outstanding--
    if (due < measureFrom) return
    done++
    const now = performance.now()
    fromSend.record(Math.max(1_000, Math.round((now - at) * 1e6)))
    fromDue.record(Math.max(1_000, Math.round((now - due) * 1e6)))
  }
  // dispatch() with a bare handler: no promise and no body stream per request, so the
  // generator's own cost stays small next to the server's
  const send = (i: number, due: number) => {
    const at = performance.now()
    outstanding++
    try {
      // the classic handler shape, which Pool.dispatch() asserts
      pool.dispatch(
        { origin: o.url, path: '/', method: 'GET', headers: o.headers(i) },
        {
          onConnect() {},
          onHeaders(statusCode) {
            if (due >= measureFrom && (statusCode < 200 || statusCode >= 300)) non2xx++
            return true
          },
          onData() {
            return true
          },
          onComplete() {
            finish(due, at)
          },
          onError() {
            if (due >= measureFrom) errors++
            finish(due, at)
          },
        },
      )
    } catch {
      errors++
      finish(due, at)
    }
  }

  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = Math.min(performance.now(), end)
      const due = Math.floor((now - start) / interval)
      while (sent < due) {
        const at = start + sent * interval
        if (outstanding >= MAX_OUTSTANDING) {
          if (at >= measureFrom) dropped++
        } else send(sent, at)
        sent++
      }
      if (now >= end) {
        clearInterval(timer)
        resolve()
      }
    }
    const timer = setInterval(tick, 1)
  })
  // Let what is in flight finish (bounded: at most MAX_OUTSTANDING requests).
  const deadline = performance.now() + 30_000
  while (outstanding > 0 && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 5))
  }
  await pool.destroy()
  const ms = (h: typeof fromSend, p: number) => (h.count > 0 ? h.percentile(p) / 1e6 : Number.NaN)
  return {
    rate: o.rate,
    achieved: done / o.seconds,
    dropped,
    errors,
    non2xx,
    p50: ms(fromSend, 50),
    p90: ms(fromSend, 90),
    p99: ms(fromSend, 99),
    p999: ms(fromSend, 99.9),
    max: fromSend.count > 0 ? fromSend.max / 1e6 : Number.NaN,
    p50Due: ms(fromDue, 50),
    p99Due: ms(fromDue, 99),
  }
}
