/**
 * Pay as you stream (DESIGN section 3): the credits a metered request's handler sees, with
 * `use(n)` counting what was served, a `topUp` that grows the hold in blocks in the background
 * while a stream runs, and `signal` that aborts when the account cannot pay for more. Kept apart
 * from the admission and settlement in `metering.ts`, which only creates these and asks them
 * what to charge.
 */
import { InsufficientCreditsError } from '../errors.js'
import type { Hold } from '../meter/hold.js'
import { checkAmount } from '../protocol/validation.js'
import type { Balance, CommitResult, ReleaseResult } from '../types.js'

/** What a handler sees of its request's credits (`req.credits`, `ctx.state.credits`). */
export interface RequestCredits {
  readonly account: string
  /** Credits reserved before the handler ran. */
  readonly cost: number
  /** The hold; null when the cost is 0. Its `amount` grows with each top-up. */
  readonly hold: Hold | null
  /**
   * What the request is charged on success; set it to charge what the work really cost. Until
   * it is set, it is the reserved `cost`, and a request that called {@link RequestCredits.use}
   * is charged `used` instead.
   */
  actual: number
  /** What {@link RequestCredits.use} has counted so far: what was served. */
  readonly used: number
  /**
   * Counts `n` more credits as served, when the hold covers them: returns `true` and adds `n` to
   * `used` (and, with `topUp`, grows the hold in the background as it runs low). Returns
   * `false`, counting nothing, when the hold cannot cover them: the account cannot pay for more
   * (`signal` then aborts with the `InsufficientCreditsError`), or the request already settled.
   * Stop serving when it returns `false`.
   * @example
   * for await (const token of model.stream(prompt)) {
   *   if (!credits.use(1)) break
   *   res.write(token)
   * }
   */
  use(n: number): boolean
  /**
   * Aborts when the request can pay for no more (its reason an `InsufficientCreditsError`) or
   * the client went away (an `AbortError`): end the stream then. Never aborts otherwise.
   */
  readonly signal: AbortSignal
  /** The balance after the reserve, after each top-up, and after settlement once it settled. */
  balance: Balance | null
  /** The commit or release result, once settled. */
  settlement: CommitResult | ReleaseResult | null
}

/** What the credits report to: the request they belong to. */
export interface CreditsOwner {
  /** The top-up block; 0 when `topUp` is off. */
  readonly topUp: number
  /** A failure the client cannot see (a top-up that failed): the adapter's `onError`. */
  report(error: unknown): void
}

/** Why `signal` aborts when the client went away. */
function clientGone(): Error {
  const error = new Error('the client went away')
  error.name = 'AbortError'
  return error
}

/** The credits of one admitted request; see {@link RequestCredits}. */
export class MeteredCredits implements RequestCredits {
  readonly account: string
  readonly cost: number
  readonly hold: Hold | null
  balance: Balance | null
  settlement: CommitResult | ReleaseResult | null = null
  readonly #owner: CreditsOwner
  #actual: number
  #actualSet = false
  #used = 0
  /** `use()` was called: the request is charged `used` rather than its cost. */
  #counting = false
  /** Settled, or out of credits: `use()` answers false from now on. */
  #stopped = false
  #reason: unknown = undefined
  /** Made on first read of `signal`: most requests never look at it. */
  #controller: AbortController | null = null
  #growing = false
  /** A top-up added nothing (or failed): no more are tried. */
  #dry = false

  constructor(
    owner: CreditsOwner,
    account: string,
    cost: number,
    hold: Hold | null,
    balance: Balance,
  ) {
    this.#owner = owner
    this.account = account
    this.cost = cost
    this.hold = hold
    this.balance = balance
    this.#actual = cost
  }

  get actual(): number {
    return this.#actual
  }

  set actual(value: number) {
    this.#actual = value
    this.#actualSet = true
  }

  get used(): number {
    return this.#used
  }

  get signal(): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController()
      if (this.#reason !== undefined) this.#controller.abort(this.#reason)
    }
    return this.#controller.signal
  }

  use(n: number): boolean {
    checkAmount(n, 'n')
    this.#counting = true
    if (this.#stopped) return false
    const held = this.hold?.amount ?? 0
    if (this.#used + n > held) {
      const left = held - this.#used
      this.#stop(new InsufficientCreditsError(this.account, n, left + this.#accountAvailable()))
      return false
    }
    this.#used += n
    this.#topUp()
    return true
  }

  /** What a successful request is charged: `actual` if set, else `used` once counted, else cost. */
  charge(): number {
    if (this.#actualSet || !this.#counting) return this.#actual
    return this.#used
  }

  /** The request is settling: `use()` answers false from now on; a client gone aborts `signal`. */
  settle(clientLeft: boolean): void {
    if (this.#stopped) return
    if (clientLeft) this.#stop(clientGone())
    else this.#stopped = true
  }

  toJSON() {
    return {
      account: this.account,
      cost: this.cost,
      hold: this.hold,
      actual: this.#actual,
      used: this.#used,
      balance: this.balance,
      settlement: this.settlement,
    }
  }

  #stop(reason: unknown): void {
    this.#stopped = true
    this.#reason = reason
    this.#controller?.abort(reason)
  }

  /** What the account had available at the last reserve or top-up (the hold not counted). */
  #accountAvailable(): number {
    return this.#dry ? 0 : (this.balance?.available ?? 0)
  }

  /**
   * Grows the hold by a block when less than half a block of it is left, one top-up at a time,
   * in the background: early enough that a stream served at a steady pace never waits for it.
   * With `partial`, so the last credits of an account are served too; one that adds nothing
   * ends the top-ups.
   */
  #topUp(): void {
    const block = this.#owner.topUp
    const hold = this.hold
    if (block === 0 || hold === null || this.#growing || this.#dry || this.#stopped) return
    if (hold.amount - this.#used >= block / 2) return
    this.#growing = true
    hold.increase(block, { partial: true }).then(
      (grown) => {
        this.#growing = false
        if (this.#stopped) return
        this.balance = grown.balance
        if (grown.added === 0) this.#dry = true
        else this.#topUp()
      },
      (err: unknown) => {
        this.#growing = false
        this.#dry = true
        // Settled meanwhile (the hold resolved under it): nothing was lost, nothing to report.
        if (!this.#stopped) this.#owner.report(err)
      },
    )
  }
}
