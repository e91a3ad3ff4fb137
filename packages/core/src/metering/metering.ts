/**
 * Request metering, shared by the framework adapters (`@tollgate/express`, `/koa`, `/trpc`,
 * `/decorators`): DESIGN section 3 written once, so every adapter validates the same options,
 * reserves and settles the same way and refuses with the same problem details. An adapter only
 * maps its framework's request, response and lifecycle onto {@link RequestMeter}.
 */
import {
  InsufficientCreditsError,
  InvalidInputError,
  isTollgateError,
  type TollgateError,
} from '../errors.js'
import type { Hold, Meter } from '../meter/meter.js'
import { checkFunction, checkOneOf, type OptionDefaults, readOptions } from '../options-kit.js'
import { type ProblemDetails, problemDetails } from '../protocol/problem.js'
import { checkAmount, parse, ttlSchema } from '../protocol/validation.js'
import type { Balance, CommitResult, ReleaseResult } from '../types.js'
import { type CreditHeaderNames, resolveCreditHeaders } from './credit-headers.js'
import { type CreditsOwner, MeteredCredits, type RequestCredits } from './stream.js'

export type { RequestCredits } from './stream.js'

/** A value or a promise of it: option callbacks may be sync or async. */
export type Awaitable<T> = T | PromiseLike<T>

/** Options every adapter takes (DESIGN section 3); `Req`/`Res` are the framework's. */
export interface MeteringOptions<Req, Res = unknown> {
  /** The account to charge. Required. @example (req) => req.user.id */
  account: (req: Req) => Awaitable<string>
  /**
   * Credits to reserve before the handler: a number or a function of the request.
   * @default 1
   * @example (req) => req.body.maxTokens
   */
  cost?: number | ((req: Req) => Awaitable<number>)
  /** Whether a finished response is charged (committed) or released. @default status < 400 */
  shouldCharge?: (req: Req, res: Res) => boolean
  /** Hold TTL; a request still running is extended before it lapses. 1 s–24 h. @default 60_000 */
  ttlMs?: number
  /**
   * `X-Credits-Cost` / `X-Credits-Remaining` on every metered response; `false` for none, or
   * other names. @default true
   */
  headers?: boolean | { cost?: string; remaining?: string }
  /**
   * The IETF `RateLimit-Policy` / `RateLimit` fields on every metered response, beside the
   * `X-Credits-*` pair (with `headers: false`, instead of it): `RateLimit-Policy:
   * "credits";q=<the account's credits>`, `RateLimit: "credits";r=<available after the
   * reserve>`, in credits, no window. `{ policy }` names the policy. @default false
   * @example { headers: false, standardHeaders: true }
   */
  standardHeaders?: boolean | { policy?: string }
  /** Answers a request the account cannot pay for, instead of the default 402 problem+json. */
  onInsufficient?: (error: InsufficientCreditsError, req: Req, res: Res) => Awaitable<void>
  /**
   * When the ledger cannot be reached: `'closed'` answers 503, `'open'` serves the request
   * unmetered and reports the failure to `onError`. @default 'closed'
   */
  failMode?: 'closed' | 'open'
  /** Requests for which this returns true are not metered at all. */
  skip?: (req: Req) => Awaitable<boolean>
  /**
   * Failures that cannot reach the client: a store failure under `failMode: 'open'`, a settle
   * or extend that failed after the response started. @default process.emitWarning
   */
  onError?: (error: unknown, req: Req) => void
  /**
   * What a request the client abandons pays: `'release'` frees its hold (nothing), `'commit'`
   * charges its `actual` cost, the reserved cost unless the handler set it (work that ran
   * anyway, e.g. a model call), `'used'` charges exactly what `credits.use(n)` counted as
   * served (pay as you stream; 0 when it was never called). @default 'release'
   * @example onAbort: 'used'
   */
  onAbort?: 'release' | 'commit' | 'used'
  /**
   * Pay as you stream: a block of credits by which the hold grows, in the background, when less
   * than half a block of it is left unused by `credits.use(n)`, so a stream may outgrow its
   * `cost`. Each top-up takes what the account has, up to a block; once one adds nothing,
   * `use()` refuses past the hold and `credits.signal` aborts. Off (0) by default: the hold
   * stays at `cost`, and `use()` refuses past it.
   * @default 0
   * @example { cost: 100, topUp: 100 } // start with 100 credits, grow 100 at a time
   */
  topUp?: number
}

export type { CreditHeaderNames } from './credit-headers.js'

/** How a request ended, for {@link MeteredRequest.finish}. */
export type FinishReason = 'success' | 'failure' | 'abort'

/** The answer of {@link MeteredRequest.admit}. */
export type Admission =
  /** Run the handler; `credits` are reserved. */
  | { type: 'admitted'; credits: RequestCredits }
  /** `skip` returned true: run the handler unmetered. */
  | { type: 'skipped' }
  /** The ledger failed under `failMode: 'open'`: run the handler unmetered. */
  | { type: 'unmetered'; error: unknown }
  /** Answer with `problem` (402, 503, 400…); `credits` headers apply when known. */
  | {
      type: 'refused'
      error: TollgateError
      problem: ProblemDetails
      credits: RefusedCredits | null
    }
  /** The request finished (client gone) while it was being admitted; its hold is released. */
  | { type: 'finished' }

/** What a refusal reports in the credit headers. */
export interface RefusedCredits {
  account: string
  cost: number
  available: number
}

/** {@link MeteringOptions} checked and precomputed, as adapters use them. */
export interface ResolvedMeteringOptions<Req, Res> {
  account: (req: Req) => Awaitable<string>
  /** The fixed cost, when `cost` is a number. */
  cost: number
  costOf: ((req: Req) => Awaitable<number>) | null
  shouldCharge: (req: Req, res: Res) => boolean
  ttlMs: number
  headers: CreditHeaderNames | null
  onInsufficient: ((error: InsufficientCreditsError, req: Req, res: Res) => Awaitable<void>) | null
  failMode: 'closed' | 'open'
  skip: ((req: Req) => Awaitable<boolean>) | null
  onError: (error: unknown, req: Req) => void
  onAbort: 'release' | 'commit' | 'used'
  /** The top-up block; 0 when off. */
  topUp: number
}

const METERING_DEFAULTS = {
  account: undefined,
  cost: 1,
  shouldCharge: undefined,
  ttlMs: undefined,
  headers: true,
  standardHeaders: false,
  onInsufficient: undefined,
  failMode: 'closed',
  skip: undefined,
  onError: undefined,
  onAbort: 'release',
  topUp: 0,
} satisfies OptionDefaults<MeteringOptions<unknown, unknown>>

/** What an adapter adds to {@link resolveMeteringOptions}: its name, its default, its own keys. */
export interface MeteringDefaults<Req, Res> {
  /** The adapter's package, as warnings and errors name it: `'@tollgate/express'`. */
  adapter: string
  /** Whether a finished response is charged, when the app does not say. */
  shouldCharge: (req: Req, res: Res) => boolean
  /** Options of the adapter's own, known besides {@link MeteringOptions}. @default [] */
  extraKeys?: string[]
}

/** The hold TTL when `ttlMs` is not given; a meter's `defaultTtlMs` is the same by default. */
const DEFAULT_TTL_MS = 60_000

function fn<T>(value: unknown, field: string): T | null {
  return value === undefined ? null : checkFunction<T>(value, field)
}

function defaultOnError(error: unknown): void {
  process.emitWarning(`Tollgate metering: ${String(error)}`, 'TollgateWarning')
}

/**
 * Checks adapter options once, at creation, so a mistake fails at startup with the field named
 * rather than on the first request. Unknown keys are warned about; `extraKeys` are the
 * adapter's own options.
 */
export function resolveMeteringOptions<Req, Res>(
  options: MeteringOptions<Req, Res>,
  defaults: MeteringDefaults<Req, Res>,
): ResolvedMeteringOptions<Req, Res> {
  const o = readOptions(options, {
    owner: `${defaults.adapter} metered()`,
    defaults: METERING_DEFAULTS,
    extraKeys: defaults.extraKeys,
    expected: `${defaults.adapter}: metered() needs { account }`,
  })
  const account = fn<(req: Req) => Awaitable<string>>(o.account, 'account')
  if (account === null) throw new InvalidInputError('account', 'is required: (req) => account id')
  let cost = 1
  let costOf: ((req: Req) => Awaitable<number>) | null = null
  if (typeof o.cost === 'function') costOf = o.cost
  else cost = checkAmount(o.cost, 'cost')
  const headers = resolveCreditHeaders(o.headers, o.standardHeaders)
  const failMode = checkOneOf(o.failMode, 'failMode', ['closed', 'open'])
  const onAbort = checkOneOf(o.onAbort, 'onAbort', ['release', 'commit', 'used'])
  return {
    account,
    cost,
    costOf,
    shouldCharge:
      fn<(req: Req, res: Res) => boolean>(o.shouldCharge, 'shouldCharge') ?? defaults.shouldCharge,
    ttlMs: parse(ttlSchema, o.ttlMs ?? DEFAULT_TTL_MS, 'ttlMs'),
    headers,
    onInsufficient: fn(o.onInsufficient, 'onInsufficient'),
    failMode,
    skip: fn(o.skip, 'skip'),
    onError: fn<(error: unknown, req: Req) => void>(o.onError, 'onError') ?? defaultOnError,
    onAbort,
    topUp: checkAmount(o.topUp, 'topUp'),
  }
}

function isThenable<T>(value: Awaitable<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

/**
 * One adapter instance's metering: makes a {@link MeteredRequest} per request and keeps the
 * holds of requests still running alive (one unref'd timer for all of them, not one each).
 */
export class RequestMeter<Req, Res = unknown> {
  readonly meter: Meter
  readonly options: ResolvedMeteringOptions<Req, Res>
  /**
   * Requests holding credits that have not finished: the heartbeat extends their holds. An
   * array whose every request knows its index (removal swaps the last one in): a Set's add and
   * delete cost more than the rest of a request's bookkeeping.
   */
  readonly #running: MeteredRequest<Req, Res>[] = []
  #timer: NodeJS.Timeout | null = null
  /** What `reserve` is given: one object for every request (the meter checks it by hand). */
  readonly reserveOptions: { readonly ttlMs: number }

  constructor(meter: Meter, options: ResolvedMeteringOptions<Req, Res>) {
    if (
      typeof meter !== 'object' ||
      meter === null ||
      typeof (meter as Partial<Meter>).tryReserve !== 'function'
    ) {
      throw new InvalidInputError('meter', 'must be a meter from createMeter()')
    }
    this.meter = meter
    this.options = options
    this.reserveOptions = { ttlMs: options.ttlMs }
  }

  /**
   * Starts metering a request. Synchronous, so the adapter can attach its response listeners
   * before anything is awaited; then it calls `admit()`.
   */
  start(req: Req): MeteredRequest<Req, Res> {
    return new MeteredRequest(this, req)
  }

  /** Requests whose holds the heartbeat is keeping alive. */
  get running(): number {
    return this.#running.length
  }

  /** @internal */
  track(request: MeteredRequest<Req, Res>): void {
    request.runningAt = this.#running.length
    this.#running.push(request)
    if (this.#timer === null) {
      // Extend when half the TTL is left; look four times per TTL so none is missed.
      this.#timer = setInterval(() => this.#beat(), Math.max(250, this.options.ttlMs / 4))
      this.#timer.unref()
    }
  }

  /** @internal */
  untrack(request: MeteredRequest<Req, Res>): void {
    const i = request.runningAt
    if (i < 0) return
    request.runningAt = -1
    const running = this.#running
    const last = running.pop()!
    if (last !== request) {
      running[i] = last
      last.runningAt = i
    }
  }

  #beat(): void {
    if (this.#running.length === 0) {
      clearInterval(this.#timer!)
      this.#timer = null
      return
    }
    const due = this.meter.now() + this.options.ttlMs / 2
    // A copy: a request that finishes meanwhile is swapped out of the array (once per beat).
    for (const request of this.#running.slice()) request.keepAlive(due)
  }
}

const SKIPPED: Admission = { type: 'skipped' }
/** What `finish` answers when nothing is left to wait for: one settled promise for all. */
const DONE: Promise<void> = Promise.resolve()

/** A hold's settlement: what `credits.settlement` is once the request settled. */
type Settlement = CommitResult | ReleaseResult
const ADMITTING = 0
const RUNNING = 1
const FINISHED = 2

/** One request's credits: reserve, then settle exactly once. */
export class MeteredRequest<Req, Res = unknown> implements CreditsOwner {
  readonly req: Req
  /** Set once admitted with a cost; what the handler sees. */
  credits: MeteredCredits | null = null
  readonly #rm: RequestMeter<Req, Res>
  #phase = ADMITTING
  /** Set by an early `finish()` (client gone while admitting), applied once the hold exists. */
  #early: FinishReason | null = null
  #expiresAt = 0
  #extending = false
  /** @internal Index in the request meter's running requests; −1 when not there. */
  runningAt = -1

  constructor(rm: RequestMeter<Req, Res>, req: Req) {
    this.#rm = rm
    this.req = req
  }

  /**
   * Decides whether the request runs: skip, reserve its cost, or refuse it. Returns the
   * admission itself when every step answered at once (sync options, a reserve served from a
   * lease or a memory store), else a promise of it. Throws (or rejects with) only what the
   * app's own `account`/`cost`/`skip` functions threw (not Tollgate errors): that is the app's
   * bug, for its framework's error handler.
   */
  admit(): Admission | Promise<Admission> {
    const skip = this.#rm.options.skip
    if (skip === null) return this.#fromAccount()
    let yes: Awaitable<boolean>
    try {
      yes = skip(this.req)
    } catch (err) {
      return this.#refusal(err)
    }
    if (isThenable(yes)) {
      return Promise.resolve(yes).then(
        (y) => (y ? this.#done(SKIPPED) : this.#fromAccount()),
        (err: unknown) => this.#refusal(err),
      )
    }
    return yes ? this.#done(SKIPPED) : this.#fromAccount()
  }

  // Each step calls the app's function and goes on at once when it answered at once (no
  // closure, no promise: the path of every request with sync options), after it resolves
  // otherwise. What it throws or rejects with goes to #refusal.

  #fromAccount(): Admission | Promise<Admission> {
    let account: Awaitable<string>
    try {
      account = this.#rm.options.account(this.req)
    } catch (err) {
      return this.#refusal(err)
    }
    if (isThenable(account)) {
      return Promise.resolve(account).then(
        (a) => this.#fromCost(a),
        (err: unknown) => this.#refusal(err),
      )
    }
    return this.#fromCost(account)
  }

  #fromCost(account: string): Admission | Promise<Admission> {
    const costOf = this.#rm.options.costOf
    if (costOf === null) return this.#reserve(account, this.#rm.options.cost)
    let cost: Awaitable<number>
    try {
      cost = costOf(this.req)
    } catch (err) {
      return this.#refusal(err)
    }
    if (isThenable(cost)) {
      return Promise.resolve(cost).then(
        (c) => this.#reserve(account, c),
        (err: unknown) => this.#refusal(err),
      )
    }
    return this.#reserve(account, cost)
  }

  #reserve(account: string, cost: number): Admission | Promise<Admission> {
    const meter = this.#rm.meter
    try {
      if (cost === 0) {
        return meter.balance(account).then(
          (balance) => this.#admitted(account, 0, null, balance),
          (err: unknown) => this.#refusal(err),
        )
      }
      const hold = meter.tryReserve(account, cost, this.#rm.reserveOptions)
      if (hold instanceof Promise) {
        return hold.then(
          (h) => this.#admitted(account, cost, h, h.balance),
          (err: unknown) => this.#refusal(err),
        )
      }
      return this.#admitted(account, cost, hold, hold.balance)
    } catch (err) {
      return this.#refusal(err)
    }
  }

  /** A Tollgate error as the admission it makes; anything else is rethrown (the app's bug). */
  #refusal(err: unknown): Admission {
    if (!isTollgateError(err)) throw err
    const o = this.#rm.options
    if (err.code === 'store_unavailable' && o.failMode === 'open') {
      o.onError(err, this.req)
      return this.#done({ type: 'unmetered', error: err })
    }
    let credits: RefusedCredits | null = null
    if (err instanceof InsufficientCreditsError || isTollgateError(err, 'insufficient_credits')) {
      const e = err as InsufficientCreditsError
      credits = { account: e.account, cost: e.required, available: e.available }
    }
    return this.#done({ type: 'refused', error: err, problem: problemDetails(err), credits })
  }

  #done(admission: Admission): Admission {
    this.#phase = FINISHED
    return admission
  }

  #admitted(account: string, cost: number, hold: Hold | null, balance: Balance): Admission {
    const credits = new MeteredCredits(this, account, cost, hold, balance)
    this.credits = credits
    if (this.#early !== null) {
      // The client left while we reserved: settle now, do not run the handler.
      this.#phase = RUNNING
      const reason = this.#early
      this.#early = null
      void this.finish(reason)
      return { type: 'finished' }
    }
    this.#phase = RUNNING
    if (hold !== null) {
      this.#expiresAt = hold.expiresAt
      this.#rm.track(this)
    }
    return { type: 'admitted', credits }
  }

  /** @internal The top-up block of pay-as-you-stream credits; 0 when off. */
  get topUp(): number {
    return this.#rm.options.topUp
  }

  /** @internal A failure of the credits' own (a top-up), for `onError`. */
  report(error: unknown): void {
    this.#rm.options.onError(error, this.req)
  }

  /**
   * Settles the request exactly once: on success commit `credits.actual` when the handler set
   * it, else what `credits.use(n)` counted once it was called, else the cost; on abort follow
   * `onAbort` (`'commit'`: `actual`, `'used'`: what was served); release otherwise. Later calls
   * do nothing. Never rejects: failures go to `onError` (the response is usually on its way).
   */
  finish(reason: FinishReason): Promise<void> {
    if (this.#phase === ADMITTING) {
      this.#early ??= reason
      return DONE
    }
    if (this.#phase === FINISHED) return DONE
    this.#phase = FINISHED
    const credits = this.credits
    const hold = credits?.hold
    credits?.settle(reason === 'abort')
    if (!credits || !hold) return DONE
    this.#rm.untrack(this)
    const o = this.#rm.options
    let settled: Settlement | Promise<Settlement>
    try {
      settled = this.#settle(reason, credits, hold)
    } catch (err) {
      o.onError(err, this.req)
      return DONE
    }
    if (!(settled instanceof Promise)) {
      // Settled at once (a lease, the memory store): no promise to wait for.
      credits.settlement = settled
      credits.balance = settled.balance
      return DONE
    }
    return settled.then(
      (r) => {
        credits.settlement = r
        credits.balance = r.balance
      },
      (err: unknown) => o.onError(err, this.req),
    )
  }

  /**
   * Settles by how the response ended: one sent whole is charged when `shouldCharge(req, res)`
   * says so (one that throws is reported and not charged: it runs in an event listener, where
   * a throw would crash the process); one that was not sent whole is an abort.
   */
  finishResponse(res: Res, sentWhole: boolean): Promise<void> {
    let reason: FinishReason = 'abort'
    if (sentWhole) {
      const o = this.#rm.options
      try {
        reason = o.shouldCharge(this.req, res) ? 'success' : 'failure'
      } catch (err) {
        o.onError(err, this.req)
        reason = 'failure'
      }
    }
    return this.finish(reason)
  }

  // Settling goes through the meter's `try…` methods: a store that answers at once (memory, a
  // lease) costs no promise. They throw what is refused at once, and `finish` reports it.

  #settle(
    reason: FinishReason,
    credits: MeteredCredits,
    hold: Hold,
  ): Settlement | Promise<Settlement> {
    if (reason === 'success') return this.#commit(credits.charge(), hold)
    if (reason === 'abort') {
      const onAbort = this.#rm.options.onAbort
      if (onAbort === 'commit') return this.#commit(credits.actual, hold)
      // What was served: never above the hold, since `use()` refuses past it.
      if (onAbort === 'used') return this.#rm.meter.tryCommit(hold.id, credits.used)
    }
    return this.#rm.meter.tryRelease(hold.id)
  }

  #commit(actual: number, hold: Hold): CommitResult | Promise<CommitResult> {
    const meter = this.#rm.meter
    try {
      checkAmount(actual, 'actual')
    } catch (err) {
      // A bad `actual` from the handler must not make the work free: charge the reserved cost.
      this.#rm.options.onError(err, this.req)
      return meter.tryCommit(hold.id)
    }
    if (actual <= hold.amount) return meter.tryCommit(hold.id, actual)
    // Above the hold under `overage: 'reject'` the commit is refused and the hold stays
    // pending: charge what was reserved rather than let the hold lapse into free work.
    let committed: CommitResult | Promise<CommitResult>
    try {
      committed = meter.tryCommit(hold.id, actual)
    } catch (err) {
      return this.#overage(err, hold)
    }
    if (!(committed instanceof Promise)) return committed
    return committed.catch((err: unknown) => this.#overage(err, hold))
  }

  /** A refused commit above the hold: an overage is reported and the reserved cost charged. */
  #overage(err: unknown, hold: Hold): CommitResult | Promise<CommitResult> {
    if (!isTollgateError(err, 'overage')) throw err
    this.#rm.options.onError(err, this.req)
    return this.#rm.meter.tryCommit(hold.id)
  }

  /** @internal Extends the hold when it expires before `due`. */
  keepAlive(due: number): void {
    const hold = this.credits?.hold
    if (!hold || this.#extending || this.#expiresAt > due) return
    this.#extending = true
    hold.extend(this.#rm.options.ttlMs).then(
      (r) => {
        this.#expiresAt = r.expiresAt
        this.#extending = false
      },
      (err: unknown) => {
        this.#extending = false
        // Settled meanwhile: nothing to keep alive, nothing to report.
        if (this.#phase !== FINISHED) this.#rm.options.onError(err, this.req)
      },
    )
  }
}

/**
 * Creates the metering for one adapter instance.
 * @example
 * const rm = createRequestMeter(meter, options, { adapter: '@tollgate/express', shouldCharge })
 * const m = rm.start(req) // attach listeners that call m.finish(...), then:
 * const admission = await m.admit()
 */
export function createRequestMeter<Req, Res>(
  meter: Meter,
  options: MeteringOptions<Req, Res>,
  defaults: MeteringDefaults<Req, Res>,
): RequestMeter<Req, Res> {
  return new RequestMeter(meter, resolveMeteringOptions(options, defaults))
}
