/**
 * Typed errors. Every error Tollgate raises is a {@link TollgateError} with a stable
 * `code` and an HTTP `status`. Check errors with {@link isTollgateError} or by `code`:
 * `instanceof` fails when two copies of the package are loaded.
 */

/** Stable machine-readable error codes. */
export type ErrorCode =
  | 'invalid_input'
  | 'auth'
  | 'insufficient_credits'
  | 'code_unavailable'
  | 'not_found'
  | 'idempotency_conflict'
  | 'hold_resolved'
  | 'hold_expired'
  | 'overage'
  | 'rate_limited'
  | 'store_unavailable'

const BRAND = Symbol.for('tollgate.error')

/** Base class of every Tollgate error. */
export class TollgateError extends Error {
  /** Stable machine-readable code; compare this, not the class. */
  readonly code: ErrorCode
  /** The HTTP status a server or middleware answers with. */
  readonly status: number
  readonly [BRAND] = true

  /**
   * The HTTP status again, under the name frameworks read from an error they did not expect
   * (NestJS's and Fastify's default error handlers, `http-errors`): a Tollgate error that
   * escapes a handler is then answered with its own status (402, 409, 503…) instead of a 500.
   * A getter, so it is not serialised a second time by `toJSON`.
   */
  get statusCode(): number {
    return this.status
  }

  /**
   * Whether the message may be shown to the client, as `http-errors` has it: true below 500.
   * NestJS 12 recognises an error of unknown class by `statusCode` with `expose`, and shows a
   * 5xx error's status text rather than its message. A getter, as `statusCode`.
   */
  get expose(): boolean {
    return this.status < 500
  }

  constructor(code: ErrorCode, status: number, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.status = status
    this.name = new.target.name
  }

  /** The fields an HTTP layer puts into an RFC 9457 problem+json body. */
  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = {
      code: this.code,
      status: this.status,
      message: this.message,
    }
    for (const [key, value] of Object.entries(this)) {
      if (key !== 'code' && key !== 'status' && value !== undefined) out[key] = value
    }
    return out
  }
}

/**
 * True for any Tollgate error, from any copy of the package.
 * @example if (isTollgateError(err, 'insufficient_credits')) res.status(402)
 */
export function isTollgateError(err: unknown, code?: ErrorCode): err is TollgateError {
  if (typeof err !== 'object' || err === null) return false
  const e = err as { [BRAND]?: unknown; code?: unknown }
  if (e[BRAND] !== true) return false
  return code === undefined || e.code === code
}

/** 400: an argument is malformed; `field` names it. Nothing was changed. */
export class InvalidInputError extends TollgateError {
  readonly field: string
  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super('invalid_input', 400, `${field}: ${message}`, options)
    this.field = field
  }
}

/** 401: missing or unknown credentials (used by the server and the HTTP store). */
export class AuthError extends TollgateError {
  constructor(message = 'authentication failed', options?: { cause?: unknown }) {
    super('auth', 401, message, options)
  }
}

/** 402: the account cannot cover the amount. Nothing was changed. */
export class InsufficientCreditsError extends TollgateError {
  readonly account: string
  readonly required: number
  readonly available: number
  constructor(account: string, required: number, available: number) {
    super(
      'insufficient_credits',
      402,
      `account needs ${required} credits but has ${available} available`,
    )
    this.account = account
    this.required = required
    this.available = available
  }
}

/** Why a well-formed, known redeem code cannot be used. */
export type CodeUnavailableReason = 'already_redeemed' | 'expired' | 'exhausted'

/** 402: the redeem code exists but cannot be used by this account. */
export class CodeUnavailableError extends TollgateError {
  readonly reason: CodeUnavailableReason
  constructor(reason: CodeUnavailableReason) {
    super('code_unavailable', 402, `code is unavailable: ${reason.replace('_', ' ')}`)
    this.reason = reason
  }
}

/** 404: no such hold (or other addressed object) in this tenant. */
export class NotFoundError extends TollgateError {
  readonly resource: string
  readonly id: string
  constructor(resource: string, id: string) {
    super('not_found', 404, `${resource} not found`)
    this.resource = resource
    this.id = id
  }
}

/** 409: the idempotency key was used before with different input. */
export class IdempotencyConflictError extends TollgateError {
  readonly idempotencyKey: string
  constructor(idempotencyKey: string) {
    super('idempotency_conflict', 409, 'idempotency key was already used with different input')
    this.idempotencyKey = idempotencyKey
  }
}

/** 409: the hold was already committed or released. */
export class HoldResolvedError extends TollgateError {
  readonly holdId: string
  readonly resolution: 'committed' | 'released'
  constructor(holdId: string, resolution: 'committed' | 'released') {
    super('hold_resolved', 409, `hold was already ${resolution}`)
    this.holdId = holdId
    this.resolution = resolution
  }
}

/** 410: the hold passed its `expiresAt` and its credits were released. */
export class HoldExpiredError extends TollgateError {
  readonly holdId: string
  readonly expiredAt: number
  constructor(holdId: string, expiredAt: number) {
    super('hold_expired', 410, 'hold expired and was released')
    this.holdId = holdId
    this.expiredAt = expiredAt
  }
}

/** 409: commit asked for more than the hold under the `'reject'` overage policy. Hold untouched. */
export class OverageError extends TollgateError {
  readonly holdId: string
  readonly held: number
  readonly actual: number
  constructor(holdId: string, held: number, actual: number) {
    super('overage', 409, `commit of ${actual} exceeds the hold of ${held}`)
    this.holdId = holdId
    this.held = held
    this.actual = actual
  }
}

/** 429: too many failed attempts (redeem codes); retry after `retryAfterMs`. */
export class RateLimitedError extends TollgateError {
  readonly retryAfterMs: number
  constructor(retryAfterMs: number) {
    super('rate_limited', 429, 'too many failed attempts; try again later')
    this.retryAfterMs = retryAfterMs
  }
}

/**
 * 503: the store cannot be reached, is saturated, or did not run the operation within its
 * deadline. The operation was not applied (a connection lost while committing is the one case
 * where it may have been: retry with the same idempotency key to find out).
 */
export class StoreUnavailableError extends TollgateError {
  /** A hint for when to try again, in ms (a server sends it as `Retry-After`). */
  readonly retryAfterMs: number | undefined
  constructor(message = 'store unavailable', options?: { cause?: unknown; retryAfterMs?: number }) {
    super('store_unavailable', 503, message, options)
    this.retryAfterMs = options?.retryAfterMs
  }
}
