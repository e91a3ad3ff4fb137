/**
 * One web-standard request's metering, from admission to settlement: what `@tollgate/fetch`
 * and `@tollgate/hono` map their request and response onto, as the Node adapters map theirs
 * onto `settleOnResponseEnd`. Only web APIs (`Request`, `Response`, `ReadableStream`,
 * `AbortSignal`), so it runs wherever those do: Node, Bun, Deno, Workers-style runtimes.
 *
 * A `Response` does not say whether its body was given whole (a string, bytes, JSON) or as a
 * stream that is still being produced: every body is a `ReadableStream`. So the body is read
 * for as long as its chunks are there at once (a few microtask turns each, up to a bound): one
 * that ends that way was whole, is answered as bytes with an exact `Content-Length`, and
 * settles as it is returned; one that is still waiting for its producer (or declares
 * `Transfer-Encoding`) is a stream, answered through a pull-through stream that settles when
 * the runtime has read it to its end, and treats a cancel (the client went away) or a broken
 * source as an abort.
 */
import type {
  Admission,
  CreditHeaderNames,
  MeteredRequest,
  RequestMeter,
} from '@tollgate/core/metering'
import { canCopy, withCreditHeaders } from './responses.js'

/** Microtask turns a body read may take and still count as "there at once". */
const PROBE_TURNS = 16
/** Past this many bytes read at once, a body is sent as a stream rather than held whole. */
const PROBE_MAX_BYTES = 1024 * 1024
/** Past this many chunks read at once, likewise. */
const PROBE_MAX_CHUNKS = 64

const LATER: unique symbol = Symbol('later')

/** What a body read resolves to (the web type, spelled out: not every lib names it). */
type ReadResult = Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']>>

/** `promise`'s value if it settles within {@link PROBE_TURNS} microtask turns, else LATER. */
function atOnce<T>(promise: Promise<T>): Promise<T | typeof LATER> {
  let turn: Promise<unknown> = Promise.resolve()
  for (let i = 0; i < PROBE_TURNS; i++) turn = turn.then()
  return Promise.race([promise, turn.then((): typeof LATER => LATER)])
}

function concat(chunks: Uint8Array[], bytes: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!
  const all = new Uint8Array(bytes)
  let at = 0
  for (const chunk of chunks) {
    all.set(chunk, at)
    at += chunk.byteLength
  }
  return all
}

/**
 * How a Response's body was given, when the adapter saw it made: whole (a string, bytes, JSON,
 * none) or as a stream.
 */
export type BodyGiven = 'whole' | 'stream'

/** Whether a handler's answer is a Response (of this realm or another: duck-typed). */
function isResponse(value: unknown): value is Response {
  const r = value as Partial<Response> | null
  // `'headers' in r`, not `r.headers`: reading it makes `@hono/node-server`'s lightweight
  // Response build its Headers, which a body given whole and left alone never needs.
  return typeof r === 'object' && r !== null && typeof r.status === 'number' && 'headers' in r
}

/**
 * What `@hono/node-server` hands a fetch handler as its environment: Node's request and
 * response. Duck-typed (this module imports nothing of Node's), see {@link nodeEnvOf}.
 */
export interface NodeEnv {
  incoming: { errored?: unknown }
  outgoing: {
    writableFinished: boolean
    closed?: boolean
    on(event: 'close', listener: () => void): unknown
  }
}

/**
 * The Node request and response under a fetch handler, when the runtime is Node serving through
 * `@hono/node-server` (it passes them as the handler's env); null anywhere else.
 */
export function nodeEnvOf(env: unknown): NodeEnv | null {
  const e = env as Partial<NodeEnv> | null | undefined
  const out = e?.outgoing
  return typeof e?.incoming === 'object' &&
    typeof out === 'object' &&
    out !== null &&
    typeof out.on === 'function' &&
    typeof out.writableFinished === 'boolean'
    ? (e as NodeEnv)
    : null
}

/** Where a Node response keeps the web request it settles (see `onNodeClose`). */
const WEB_REQUEST: unique symbol = Symbol('tollgate.webRequest')

/**
 * A web request being metered. Create it with {@link startWebRequest} before anything is
 * awaited, then `admit()`; run the handler when admitted (or skipped, or unmetered); then
 * `respond(response)` with what it answered, or `fail()` when it threw.
 */
export class WebMeteredRequest<Req> {
  /** The core metering of this request. */
  readonly call: MeteredRequest<Req, Response>
  readonly #rm: RequestMeter<Req, Response>
  readonly #names: CreditHeaderNames | null
  readonly #method: string
  readonly #signal: AbortSignal | null
  /** Settled, or about to be: later events change nothing. */
  #settled = false
  /** What `X-Credits-Remaining` reports: available right after the reserve. */
  #remaining = 0
  /** The account's credits right after the reserve: the quota of `RateLimit-Policy`. */
  #total: number | null = null
  /** The handler's body while it streams, so an abort can stop its producer. */
  #reader: ReadableStreamDefaultReader<Uint8Array> | null = null
  /** This request's own heartbeat, while it holds credits. */
  #heartbeat: ReturnType<typeof setInterval> | null = null

  /** The signal's listener, while one is attached. */
  #onAbort: (() => void) | null = null
  /** Node's request and response under the handler, when served by `@hono/node-server`. */
  readonly #node: NodeEnv | null

  constructor(rm: RequestMeter<Req, Response>, req: Req, request: Request, node: NodeEnv | null) {
    this.#rm = rm
    this.call = rm.start(req)
    this.#names = rm.options.headers
    this.#method = request.method
    this.#node = node
    // Watched from the start: a client that leaves while the cost is reserved, or while the
    // handler runs, releases the hold (the kit applies it once the reserve has answered).
    if (node !== null) {
      // On Node, the response's 'close' says it as the signal would (`@hono/node-server`
      // aborts the signal from that very event), without an AbortController and an
      // EventTarget listener per request: those were most of this adapter's cost per request.
      this.#signal = null
      ;(node.outgoing as { [WEB_REQUEST]?: WebMeteredRequest<unknown> })[WEB_REQUEST] =
        this as WebMeteredRequest<unknown>
      node.outgoing.on('close', onNodeClose)
      if (node.outgoing.closed === true) this.nodeClosed()
      return
    }
    const signal: AbortSignal | undefined = request.signal
    this.#signal = signal ?? null
    if (signal?.aborted) this.#abort()
    else if (signal) {
      this.#onAbort = () => this.#abort()
      signal.addEventListener('abort', this.#onAbort)
    }
  }

  /** @internal The Node response closed: the client left unless it was sent whole. */
  nodeClosed(): void {
    const node = this.#node!
    if (node.incoming.errored || !node.outgoing.writableFinished) this.#abort()
  }

  /**
   * Reserves the request's cost (or skips it, or refuses it): the kit's admission, at once when
   * every step answered at once. What the app's `account`/`cost`/`skip` threw propagates.
   */
  admit(): Admission | Promise<Admission> {
    let admission: Admission | Promise<Admission>
    try {
      admission = this.call.admit()
    } catch (err) {
      this.#unwatch()
      throw err
    }
    if (!(admission instanceof Promise)) return this.#admitted(admission)
    return admission.then(
      (a) => this.#admitted(a),
      (err: unknown) => {
        this.#unwatch()
        throw err
      },
    )
  }

  /** `response` with this request's credit headers (as they stood after the reserve). */
  #headed(response: Response, cost: number): Response {
    return withCreditHeaders(response, this.#names, cost, this.#remaining, this.#total)
  }

  #admitted(admission: Admission): Admission {
    if (admission.type === 'admitted') {
      this.#remaining = admission.credits.balance?.available ?? 0
      this.#total = admission.credits.balance?.total ?? null
      if (admission.credits.hold !== null && !this.#settled) this.#keepAlive()
    } else {
      // Nothing to settle: refused, finished, or served without metering.
      this.#settled = true
      this.#unwatch()
    }
    return admission
  }

  /** The handler threw: release the hold (its error is the app's to handle). */
  fail(): void {
    this.#finish('failure')
  }

  /**
   * The Response to send for `response`, the handler's answer: with the credit headers, and
   * settled when it has been sent. A body given whole settles now (commit when `shouldCharge`,
   * else release); a streamed body settles when the runtime has read it to the end, and a
   * cancel or a broken source is an abort. A HEAD request, a body-less response or one
   * without a hold (cost 0) settles now. Throws a TypeError (and releases) when `response` is
   * not a Response; rejects (and releases) when the body fails before anything was sent.
   *
   * `given` is what the adapter knows of how the body was given, when it saw the Response made
   * (Hono's `c.json()` versus `c.body(stream)`): `'whole'` settles now without reading the
   * body, `'stream'` is sent as a stream without looking at it first. Unknown, the body is read
   * while its chunks are there at once (see the top of this file).
   */
  respond(response: Response, given?: BodyGiven): Response | Promise<Response> {
    if (!isResponse(response)) {
      this.fail()
      throw new TypeError('the handler must return a Response')
    }
    const credits = this.call.credits
    if (credits === null) {
      // Skipped or unmetered: nothing to add, nothing to settle.
      this.#settled = true
      this.#unwatch()
      return response
    }
    const cost = credits.cost
    if (this.#settled) return this.#headed(response, cost)
    const now = credits.hold === null || this.#method === 'HEAD' || given === 'whole'
    const body = now ? null : response.body
    if (body === null || body.locked || !canCopy(response)) {
      const out = this.#headed(response, cost)
      this.#finishResponse(out, true)
      return out
    }
    const reader = body.getReader()
    this.#reader = reader
    // Declared a stream (`streamSSE`, `streamText`): sent as one, however soon it ends.
    if (given === 'stream' || response.headers.has('transfer-encoding')) {
      return this.#streamed(response, reader, [], null)
    }
    return this.#probe(response, reader)
  }

  /** Reads what the body has at once: all of it (sent whole) or not (a stream). */
  async #probe(
    response: Response,
    reader: ReadableStreamDefaultReader<Uint8Array>,
  ): Promise<Response> {
    const chunks: Uint8Array[] = []
    let bytes = 0
    let pending: Promise<ReadResult> | null = null
    try {
      while (chunks.length < PROBE_MAX_CHUNKS && bytes <= PROBE_MAX_BYTES) {
        const read = reader.read()
        const result = await atOnce(read)
        if (result === LATER) {
          pending = read
          break
        }
        if (result.done) return this.#whole(response, concat(chunks, bytes))
        chunks.push(result.value)
        bytes += result.value.byteLength
      }
    } catch (err) {
      // The body broke before anything was sent: nothing to charge for.
      this.fail()
      throw err
    }
    return this.#streamed(response, reader, chunks, pending)
  }

  /**
   * A body read whole: answered as bytes with its length, and settled now. Built from a plain
   * init, not from `response`: a runtime that keeps bytes as they are (as `@hono/node-server`
   * does) then writes them in one go, where a copy of `response` would be one more stream.
   */
  #whole(response: Response, bytes: Uint8Array): Response {
    this.#reader = null
    const out = new Response(bytes, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    })
    if (!out.headers.has('content-length')) {
      // Stated, so a framework that copies the Response again keeps the length.
      out.headers.set('Content-Length', String(bytes.byteLength))
    }
    this.#headed(out, this.call.credits!.cost)
    this.#finishResponse(out, true)
    return out
  }

  /**
   * A body still being produced: sent through a pull-through stream that reads the handler's
   * body only as the runtime reads it (no read-ahead), so its end is when the last chunk has
   * been taken for sending.
   */
  #streamed(
    response: Response,
    reader: ReadableStreamDefaultReader<Uint8Array>,
    chunks: Uint8Array[],
    pending: Promise<ReadResult> | null,
  ): Response {
    let next = pending
    let out: Response | null = null
    const end = (sentWhole: boolean) => {
      this.#reader = null
      this.#finishResponse(out!, sentWhole)
    }
    const stream = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          const chunk = chunks.shift()
          if (chunk !== undefined) {
            controller.enqueue(chunk)
            return
          }
          const read = next ?? reader.read()
          next = null
          return read.then(
            (result) => {
              if (!result.done) {
                controller.enqueue(result.value)
                return
              }
              controller.close()
              end(true)
            },
            (err: unknown) => {
              // The producer broke off: the client gets a truncated body, as on an abort.
              end(false)
              controller.error(err)
            },
          )
        },
        cancel(reason) {
          // The runtime stopped reading: the client went away.
          end(false)
          return reader.cancel(reason)
        },
      },
      { highWaterMark: 0 },
    )
    out = new Response(stream, response)
    return this.#headed(out, this.call.credits!.cost)
  }

  #abort(): void {
    const reader = this.#reader
    this.#finish('abort')
    // A runtime that reports the client's leaving only on the signal still stops the producer.
    reader?.cancel().catch(() => {})
  }

  #finish(reason: 'failure' | 'abort'): void {
    if (this.#settled) return
    this.#settled = true
    this.#unwatch()
    // Never rejects: settle failures go to onError.
    void this.call.finish(reason)
  }

  #finishResponse(response: Response, sentWhole: boolean): void {
    if (this.#settled) return
    this.#settled = true
    this.#unwatch()
    void this.call.finishResponse(response, sentWhole)
  }

  /**
   * Extends the hold while the request runs, from a timer of its own. The kit's heartbeat is
   * one timer shared by every request of the middleware; on Workers a timer lives only as long
   * as the request that set it, and I/O is bound to the request it serves, so a shared timer
   * set by a request that has ended no longer fires for the others. Each request keeping its
   * own hold alive works everywhere; `keepAlive` extends only a hold that is due, so the two
   * heartbeats never extend the same hold twice.
   */
  #keepAlive(): void {
    // On Node the kit's one shared heartbeat outlives every request: no timer of our own.
    if (this.#node !== null) return
    const { meter, options } = this.#rm
    const ttlMs = options.ttlMs
    this.#heartbeat = setInterval(
      () => this.call.keepAlive(meter.now() + ttlMs / 2),
      Math.max(250, ttlMs / 4),
    )
    // Node's timers are objects to unref; web-standard ones are numbers.
    ;(this.#heartbeat as { unref?: () => void }).unref?.()
  }

  #unwatch(): void {
    if (this.#onAbort !== null) this.#signal?.removeEventListener('abort', this.#onAbort)
    if (this.#heartbeat !== null) {
      clearInterval(this.#heartbeat)
      this.#heartbeat = null
    }
  }
}

/**
 * Starts metering `request` (the web Request) for `req` (what the adapter's option functions
 * take: the Request itself, Hono's context…). Synchronous, so the client's abort is watched
 * before anything is awaited. `node`, from {@link nodeEnvOf}, watches Node's response instead
 * of `request.signal` and leaves the heartbeat to the kit's shared timer (cheaper on Node).
 * @example
 * const web = startWebRequest(rm, request, request)
 * const admission = await web.admit()
 * // …run the handler, then:
 * return web.respond(await handler(request, credits))
 */
export function startWebRequest<Req>(
  rm: RequestMeter<Req, Response>,
  req: Req,
  request: Request,
  node: NodeEnv | null = null,
): WebMeteredRequest<Req> {
  return new WebMeteredRequest(rm, req, request, node)
}

/** `'close'` of a Node response under a metered web request; shared, so no closure per request. */
function onNodeClose(this: { [WEB_REQUEST]?: WebMeteredRequest<unknown> }): void {
  this[WEB_REQUEST]?.nodeClosed()
}
