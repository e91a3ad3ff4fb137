/**
 * One test of the adapter suite: a meter with a fake clock over a spied memory store (or a
 * store that is down), the routes the adapter mounts, what they saw, and a client that talks
 * to the adapter over real HTTP.
 */
import { createMeter, type LedgerEntryType, type Meter, memoryStore } from '@tollgate/core'
import { type Awaitable, problemDetails, type RequestCredits } from '@tollgate/core/metering'
import { expect, onTestFinished, vi } from 'vitest'
import { type Deferred, deferred } from '../testing/async.js'
import { expectLedgerReplays, ledgerTypes } from '../testing/ledger.js'
import { downStore, type SpyStore, spyStore } from '../testing/stores.js'
import type {
  AdapterConformanceOptions,
  RequestView,
  SuiteMeteringOptions,
  SuitePath,
  SuiteRequest,
  SuiteRoute,
} from './contract.js'

/** The account every test charges. */
export const ACCOUNT = 'u'

/** How long a test waits for something the adapter does after the response (a settle). */
const WAIT = { timeout: 5_000, interval: 10 }

/** The options a test sets, over the suite's view of a request. */
export interface TestOptions {
  cost?: number | ((req: SuiteRequest) => Awaitable<number>)
  skip?: (req: SuiteRequest) => boolean
  ttlMs?: number
  headers?: boolean | { cost: string; remaining: string }
  standardHeaders?: boolean | { policy: string }
  failMode?: 'closed' | 'open'
  onAbort?: 'release' | 'commit' | 'used'
  topUp?: number
}

/** What one test sets up. */
export interface RunConfig {
  /** Credits granted to {@link ACCOUNT} first. @default 100 */
  grant?: number
  options?: TestOptions
  /** A store that is down instead of a memory store. */
  down?: boolean
}

/** What the routes saw, for the test to check. */
export interface Seen {
  /** Calls per route. */
  calls: Record<SuitePath | '/stream', number>
  /** The credits the last call saw. */
  credits: RequestCredits | null | undefined
  /** `held` of the account, read from the store while the last metered `/ok` ran. */
  heldDuring: number | undefined
}

/**
 * Chunks a test feeds to `/stream` one by one, and ends. An iterator written by hand rather than
 * an async generator, so `return()` (the client went away) ends a pending `next()` at once.
 */
export class Chunks {
  readonly #queue: string[] = []
  #ended = false
  #wake: (() => void) | null = null

  push(chunk: string): void {
    this.#queue.push(chunk)
    this.#wake?.()
  }

  end(): void {
    this.#ended = true
    this.#wake?.()
  }

  /** The stream one request reads; each chunk delivered calls `onChunk(count so far)`. */
  iterable(onChunk: (count: number) => void): AsyncIterable<string> {
    let count = 0
    const next = async (): Promise<IteratorResult<string>> => {
      for (;;) {
        const chunk = this.#queue.shift()
        if (chunk !== undefined) {
          count++
          onChunk(count)
          return { done: false, value: chunk }
        }
        if (this.#ended) return { done: true, value: undefined }
        await new Promise<void>((resolve) => {
          this.#wake = resolve
        })
        this.#wake = null
      }
    }
    const stop = async (): Promise<IteratorResult<string>> => {
      this.end()
      return { done: true, value: undefined }
    }
    return { [Symbol.asyncIterator]: () => ({ next, return: stop }) }
  }
}

/** One test's meter, adapter and client. */
export class Run {
  readonly meter: Meter
  readonly spy: SpyStore | null
  readonly url: string
  readonly seen: Seen
  /** Errors the adapter reported to `onError`. */
  readonly errors: unknown[]
  /** `/slow` has started. */
  readonly entered: Deferred<void>
  readonly chunks: Chunks
  /** How the routes behave; set before the requests. */
  readonly control: RouteControl
  readonly #clock: { now: number }

  constructor(init: {
    meter: Meter
    spy: SpyStore | null
    url: string
    seen: Seen
    errors: unknown[]
    entered: Deferred<void>
    chunks: Chunks
    control: RouteControl
    clock: { now: number }
  }) {
    this.meter = init.meter
    this.spy = init.spy
    this.url = init.url
    this.seen = init.seen
    this.errors = init.errors
    this.entered = init.entered
    this.chunks = init.chunks
    this.control = init.control
    this.#clock = init.clock
  }

  /** Moves the meter's clock forward (the hold TTLs with it; real time does not). */
  advance(ms: number): void {
    this.#clock.now += ms
  }

  /** A GET to `path` as {@link ACCOUNT} (unless `headers` say otherwise). */
  get(path: string, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
    return fetch(`${this.url}${path}`, {
      headers: { 'x-account': ACCOUNT, ...headers },
      ...(signal ? { signal } : {}),
    })
  }

  /** The fresh balance of {@link ACCOUNT}. */
  balance() {
    return this.meter.balance(ACCOUNT, { fresh: true })
  }

  /** The ledger's entry types, oldest first. */
  types(): Promise<LedgerEntryType[]> {
    return ledgerTypes(this.meter, ACCOUNT)
  }

  /** `extend` operations the store has executed: the heartbeat at work. */
  get extends(): number {
    return this.spy?.executes.filter((r) => r.op.type === 'extend').length ?? 0
  }

  /**
   * Waits until the ledger holds exactly `commits` commits and `releases` releases (the adapter
   * settles after the response went out), then checks nothing is held and the ledger replays.
   */
  async settled({ commits = 0, releases = 0 }: { commits?: number; releases?: number }) {
    await vi.waitFor(async () => {
      const types = await this.types()
      expect({
        commits: types.filter((t) => t === 'commit').length,
        releases: types.filter((t) => t === 'release').length,
      }).toEqual({ commits, releases })
    }, WAIT)
    const balance = await expectLedgerReplays(this.meter, ACCOUNT)
    expect(balance.held).toBe(0)
    return balance
  }

  /** Waits for `check` to pass, for what the adapter does in the background. */
  waitFor(check: () => Promise<void> | void): Promise<void> {
    return vi.waitFor(check, WAIT)
  }
}

/** The options of a test as an adapter takes them: each callback reads the request through `view`. */
function optionsFor<Req>(
  options: TestOptions,
  errors: unknown[],
  view: RequestView<Req>,
): SuiteMeteringOptions<Req> {
  const out: SuiteMeteringOptions<Req> = {
    account: (req) => view(req).header('x-account') ?? '',
    onError: (error) => {
      errors.push(error)
    },
  }
  const { cost, skip } = options
  if (typeof cost === 'function') out.cost = (req) => cost(view(req))
  else if (cost !== undefined) out.cost = cost
  if (skip !== undefined) out.skip = (req) => skip(view(req))
  // Only what the test sets: an adapter may warn about an option it does not take.
  if (options.ttlMs !== undefined) out.ttlMs = options.ttlMs
  if (options.headers !== undefined) out.headers = options.headers
  if (options.standardHeaders !== undefined) out.standardHeaders = options.standardHeaders
  if (options.failMode !== undefined) out.failMode = options.failMode
  if (options.onAbort !== undefined) out.onAbort = options.onAbort
  if (options.topUp !== undefined) out.topUp = options.topUp
  return out
}

/** Behaviour of the routes a test may change before its requests. */
export interface RouteControl {
  /** What `/actual` and `/slow` set as the actual cost; unset leaves the reserved cost. */
  actual: number | undefined
  /** The status `/fail` answers. */
  failStatus: number
  /** What each chunk `/stream` delivers adds to the actual cost (or pays, when `paid`). */
  perChunk: number
  /**
   * `/stream` pays as it goes: each chunk calls `credits.use(perChunk)` instead of setting the
   * actual cost, and a refusal ends the stream with an SSE `event: error` carrying the problem.
   */
  paid: boolean
  /**
   * When above 0, each `/stream` request sends this many chunks of its own (`data: chunk-<i>`,
   * one event-loop turn apart, a steady stream) instead of those the test pushes to `chunks`.
   */
  generate: number
}

/** Yields between generated chunks: one turn of the event loop, as a steady source would. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * `count` chunks, one event-loop turn apart. Written by hand, as {@link Chunks}, so `return()`
 * (the client went away) stops it at once.
 */
function generated(count: number): AsyncIterable<string> {
  let sent = 0
  let stopped = false
  const next = async (): Promise<IteratorResult<string>> => {
    await turn()
    if (stopped || sent === count) return { done: true, value: undefined }
    sent++
    return { done: false, value: `data: chunk-${sent}\n\n` }
  }
  const stop = async (): Promise<IteratorResult<string>> => {
    stopped = true
    return { done: true, value: undefined }
  }
  return { [Symbol.asyncIterator]: () => ({ next, return: stop }) }
}

/**
 * A stream that pays as it goes (DESIGN section 3): each chunk of `source` is served only when
 * `credits.use(perChunk)` covers it; on a refusal (`credits.signal` aborted) it sends an SSE
 * `event: error` with the problem and ends, so the response ends cleanly and is charged what
 * was served. Unmetered (`credits` null), it passes the chunks on.
 */
function paying(
  source: AsyncIterable<string>,
  credits: RequestCredits | null,
  perChunk: number,
): AsyncIterable<string> {
  const it = source[Symbol.asyncIterator]()
  let over = false
  const next = async (): Promise<IteratorResult<string>> => {
    if (over) return { done: true, value: undefined }
    const chunk = await it.next()
    if (chunk.done || credits === null) return chunk
    if (credits.use(perChunk)) return chunk
    over = true
    void it.return?.()
    const problem = problemDetails(credits.signal.reason)
    return { done: false, value: `event: error\ndata: ${JSON.stringify(problem)}\n\n` }
  }
  const stop = async (): Promise<IteratorResult<string>> => {
    over = true
    await it.return?.()
    return { done: true, value: undefined }
  }
  return { [Symbol.asyncIterator]: () => ({ next, return: stop }) }
}

/**
 * Sets up one test: meter, routes, the adapter mounted over them. Everything is torn down when
 * the test finishes, whatever its outcome.
 */
export async function start(
  adapter: AdapterConformanceOptions,
  config: RunConfig = {},
): Promise<Run> {
  const clock = { now: Date.now() }
  const spy = config.down ? null : spyStore(memoryStore())
  const store = spy?.store ?? downStore()
  // No cache: every balance a test reads is the store's.
  const meter = createMeter({ store, cache: false, clock: () => clock.now })
  const grant = config.grant ?? 100
  if (!config.down && grant > 0) await meter.grant(ACCOUNT, grant)
  const errors: unknown[] = []
  const entered = deferred()
  const gate = deferred()
  const chunks = new Chunks()
  const control: RouteControl = {
    actual: undefined,
    failStatus: 500,
    perChunk: 5,
    paid: false,
    generate: 0,
  }
  const seen: Seen = {
    calls: { '/ok': 0, '/actual': 0, '/fail': 0, '/throw': 0, '/slow': 0, '/stream': 0 },
    credits: undefined,
    heldDuring: undefined,
  }
  const called = (path: SuitePath | '/stream', credits: RequestCredits | null) => {
    seen.calls[path]++
    seen.credits = credits
  }
  const setActual = (credits: RequestCredits | null) => {
    if (credits !== null && control.actual !== undefined) credits.actual = control.actual
  }
  const routes: Record<SuitePath, SuiteRoute> = {
    '/ok': async (credits) => {
      called('/ok', credits)
      if (credits !== null) seen.heldDuring = (await meter.balance(ACCOUNT, { fresh: true })).held
      return { status: 200, body: 'ok' }
    },
    '/actual': async (credits) => {
      called('/actual', credits)
      setActual(credits)
      return { status: 200, body: 'actual' }
    },
    '/fail': async (credits) => {
      called('/fail', credits)
      return { status: control.failStatus, body: 'failed' }
    },
    '/throw': async (credits) => {
      called('/throw', credits)
      throw new Error('the route threw')
    },
    '/slow': async (credits) => {
      called('/slow', credits)
      setActual(credits)
      entered.resolve()
      await gate.promise
      return { status: 200, body: 'slow' }
    },
  }
  const mounted = await adapter.mount({
    meter,
    options: (view) => optionsFor(config.options ?? {}, errors, view),
    routes,
    stream: (credits) => {
      called('/stream', credits)
      if (!control.paid) {
        return chunks.iterable((count) => {
          if (credits !== null) credits.actual = count * control.perChunk
        })
      }
      const source = control.generate > 0 ? generated(control.generate) : chunks.iterable(() => {})
      return paying(source, credits, control.perChunk)
    },
  })
  onTestFinished(async () => {
    // Let handlers still waiting finish, then drop the server and its connections.
    gate.resolve()
    chunks.end()
    await mounted.close()
    await meter.close()
  })
  return new Run({ meter, spy, url: mounted.url, seen, errors, entered, chunks, control, clock })
}

/**
 * Reads a streamed body until it contains `text`; returns everything read so far. Bounded by
 * the test's own timeout: a stream that never sends `text` fails the test.
 */
export async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  sofar: { text: string },
  text: string,
): Promise<void> {
  const decoder = new TextDecoder()
  while (!sofar.text.includes(text)) {
    const { done, value } = await reader.read()
    if (done) throw new Error(`the stream ended before "${text}": ${sofar.text}`)
    sofar.text += decoder.decode(value, { stream: true })
  }
}
