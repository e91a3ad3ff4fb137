/**
 * The store protocol between `httpStore()` and a Tollgate server: zod schemas for what travels
 * (operations, engine settings, code batches) and the encoding of outcomes and errors. Both
 * sides import it, so the client and the server cannot drift; the server also derives its
 * OpenAPI document from these schemas. See docs/server.md, "Store protocol".
 */
import { z } from 'zod'
import type { EngineEvent, Operation } from '../engine/state.js'
import {
  AuthError,
  CodeUnavailableError,
  type CodeUnavailableReason,
  type ErrorCode,
  HoldExpiredError,
  HoldResolvedError,
  IdempotencyConflictError,
  InsufficientCreditsError,
  InvalidInputError,
  NotFoundError,
  OverageError,
  RateLimitedError,
  StoreUnavailableError,
  type TollgateError,
} from '../errors.js'
import type { CodeBatch, Outcome } from '../store/store.js'
import type { Balance } from '../types.js'
import { LEDGER_ENTRY_TYPES, USAGE_INTERVALS } from '../types.js'
import { type ProblemDetails, problemDetails } from './problem.js'
import {
  accountsQuerySchema,
  category,
  checkAccount,
  every,
  metadata,
  overage,
  priority,
  refineStorableJson,
  safeInt,
  storedIdempotencyKey,
  text,
  timestamp,
  ttlMs,
  validityDays,
  wholeNumber,
} from './validation.js'

/** An account id as {@link checkAccount} accepts it. */
export const accountSchema = z
  .string({ error: 'must be a non-empty string' })
  .superRefine((value, ctx) => {
    try {
      checkAccount(value)
    } catch (err) {
      // The check's own words, without the "account: " it puts before them.
      const e = err as InvalidInputError
      ctx.addIssue({ code: 'custom', message: e.message.slice(e.field.length + 2) })
    }
  })
const holdId = text(1, 100)
const key = storedIdempotencyKey.optional()

// Field order matches the meter's, so an operation's fingerprint (its JSON) is the same whether
// it was built in process or parsed from the wire.
const grantOp = z.strictObject({
  type: z.literal('grant'),
  amount: safeInt(1),
  expiresAt: wholeNumber(0).nullable(),
  validityDays: validityDays.nullable(),
  priority,
  category,
  metadata,
  idempotencyKey: key,
})
const debitOp = z.strictObject({
  type: z.literal('debit'),
  amount: safeInt(),
  metadata,
  idempotencyKey: key,
})
const adjustOp = z.strictObject({
  type: z.literal('adjust'),
  delta: wholeNumber().refine((d) => d !== 0, 'must be non-zero'),
  reason: text(1, 500),
  metadata,
  idempotencyKey: key,
})
const reserveOp = z.strictObject({
  type: z.literal('reserve'),
  amount: safeInt(),
  ttlMs,
  metadata,
  idempotencyKey: key,
})
const commitOp = z.strictObject({
  type: z.literal('commit'),
  holdId,
  actual: safeInt().optional(),
  overage: overage.optional(),
  metadata,
  idempotencyKey: key,
})
const releaseOp = z.strictObject({
  type: z.literal('release'),
  holdId,
  metadata,
  idempotencyKey: key,
})
const extendOp = z.strictObject({
  type: z.literal('extend'),
  holdId,
  ttlMs,
  idempotencyKey: key,
})
const increaseOp = z.strictObject({
  type: z.literal('increase'),
  holdId,
  amount: safeInt(),
  partial: z.boolean(),
  idempotencyKey: key,
})
const balanceOp = z.strictObject({ type: z.literal('balance') })
const configureOp = z.strictObject({
  type: z.literal('configure'),
  lowBalanceThreshold: safeInt().nullable().optional(),
  overdraftLimit: safeInt().nullable().optional(),
  idempotencyKey: key,
})
const startCycleOp = z.strictObject({
  type: z.literal('startCycle'),
  amount: safeInt(1),
  every,
  rolloverMax: safeInt().nullable(),
  priority,
  category,
  idempotencyKey: key,
})
const stopCycleOp = z.strictObject({ type: z.literal('stopCycle'), idempotencyKey: key })
const redeemOp = z.strictObject({
  type: z.literal('redeem'),
  codeHash: z.string().regex(/^[0-9a-f]{64}$/, 'must be a SHA-256 hex digest'),
  idempotencyKey: key,
})

/** Every {@link Operation}, as it travels. */
export const operationSchema = z.discriminatedUnion('type', [
  grantOp,
  debitOp,
  adjustOp,
  reserveOp,
  commitOp,
  releaseOp,
  extendOp,
  increaseOp,
  balanceOp,
  configureOp,
  startCycleOp,
  stopCycleOp,
  redeemOp,
])

/** Operations addressed by hold id rather than account. */
export const HOLD_OPERATIONS: ReadonlySet<Operation['type']> = new Set([
  'commit',
  'release',
  'extend',
  'increase',
])

/** The meter's engine settings, sent with every operation. */
export const engineConfigSchema = z.strictObject({
  lowBalanceThreshold: safeInt().nullable(),
  overdraftLimit: safeInt().nullable(),
  overage,
  redeemMaxFailures: safeInt(1),
  redeemWindowMs: safeInt(1),
})

/** `POST /v1/store/execute`: one operation. */
export const executeBodySchema = z.strictObject({
  /** Null for hold operations. */
  account: accountSchema.nullable(),
  op: operationSchema,
  /** The client's clock; a server uses it only when started with `clientClock: true`. */
  now: wholeNumber(0),
  config: engineConfigSchema,
})
export type ExecuteBody = z.infer<typeof executeBodySchema>

/**
 * Most operations in one `POST /v1/store/batch`. A bound on the work one request starts on the
 * server (and on its answer's size); `httpStore()` sends at most its `maxBatch` (64 by default).
 */
export const MAX_BATCH_OPERATIONS = 256

/**
 * One operation of `POST /v1/store/batch`: the body of `/v1/store/execute`, plus the tenant it
 * acts on (admin keys; `null`: the key's tenant, or `Tollgate-Tenant`) and its own deadline in
 * ms (the request's `Tollgate-Deadline-Ms` bounds it).
 */
export const batchItemSchema = executeBodySchema.extend({
  tenant: z.string().nullable().optional(),
  timeoutMs: wholeNumber(1).optional(),
})
export type BatchItem = z.infer<typeof batchItemSchema>

/**
 * `POST /v1/store/batch`: operations that waited at the same moment in one client. Items are
 * checked one by one (with {@link batchItemSchema}), so one malformed operation fails alone.
 */
export const batchBodySchema = z.strictObject({
  items: z.array(z.unknown()).min(1).max(MAX_BATCH_OPERATIONS),
})

/** The answer to one batch item: its outcome, or the problem that kept it from running. */
export type WireBatchAnswer = { outcome: WireOutcome } | { problem: ProblemDetails }

/** `POST /v1/store/accounts`: a page of the tenant's accounts (`Store.accounts`). */
export const accountsBodySchema = accountsQuerySchema.extend({ limit: wholeNumber(1, 1000) })

/** `POST /v1/store/ledger`: a page of one account's ledger. */
export const ledgerBodySchema = z.strictObject({
  account: accountSchema,
  limit: wholeNumber(1, 1000),
  before: wholeNumber(1).nullable(),
  types: z
    .array(z.enum(LEDGER_ENTRY_TYPES as [string, ...string[]]))
    .min(1)
    .nullable(),
  from: timestamp.nullable(),
  to: timestamp.nullable(),
})

/** A usage read of the store protocol (`httpStore().usage()`): a `UsageRequest`. */
export const usageBodySchema = z.strictObject({
  account: accountSchema.optional(),
  interval: z.enum(USAGE_INTERVALS as [string, ...string[]]),
  from: wholeNumber(0),
  to: wholeNumber(0),
  groupBy: text(1, 64).optional(),
})

const codeRecord = z.strictObject({
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  batchId: text(1, 100),
  credits: safeInt(1),
  validityDays: validityDays.nullable(),
  codeExpiresAt: wholeNumber(0).nullable(),
  maxRedemptions: safeInt(1),
  redemptions: z.literal(0),
  priority,
  category,
  createdAt: wholeNumber(0),
})

/** `POST /v1/store/codes`: a batch of redeem code hashes. */
export const codeBatchBodySchema = z.strictObject({
  batchId: text(1, 100),
  codes: z.array(codeRecord).min(1).max(100_000),
  idempotency: z
    .strictObject({
      key: storedIdempotencyKey,
      fingerprint: text(0, 10_000),
      // Stored as JSON beside the batch: its strings are text fields like any other.
      result: z.unknown().superRefine(refineStorableJson),
    })
    .nullable(),
  now: wholeNumber(0),
})

/** `POST /v1/store/due`: accounts with work due. */
export const dueBodySchema = z.strictObject({
  now: wholeNumber(0),
  limit: wholeNumber(1, 100_000),
})

/** `POST /v1/store/prune`: drop records older than `before`. */
export const pruneBodySchema = z.strictObject({ before: wholeNumber(0) })

/** An {@link Outcome} as it travels: the error as problem details. */
export interface WireOutcome {
  result: Record<string, unknown> | null
  error: ProblemDetails | null
  replayed: boolean
  balance: Balance | null
  events: EngineEvent[]
}

/** Encodes an outcome for the wire. */
export function outcomeToWire(out: Outcome): WireOutcome {
  return {
    result: out.result,
    error: out.error ? problemDetails(out.error) : null,
    replayed: out.replayed,
    balance: out.balance,
    events: out.events,
  }
}

/** Decodes {@link outcomeToWire}. */
export function outcomeFromWire(wire: WireOutcome): Outcome {
  return {
    result: wire.result,
    error: wire.error ? errorFromProblem(wire.error) : null,
    replayed: wire.replayed,
    balance: wire.balance,
    events: wire.events,
  }
}

const num = (v: unknown): number => (typeof v === 'number' ? v : 0)
const str = (v: unknown): string => (typeof v === 'string' ? v : '')

/**
 * The typed error a problem details body stands for, with its fields (`account`, `required`,
 * `available`, `field`, `reason`…). A body without a known `code` becomes a
 * {@link StoreUnavailableError} for 5xx statuses, else an {@link InvalidInputError}.
 * @example throw errorFromProblem(await response.body.json())
 */
export function errorFromProblem(p: ProblemDetails): TollgateError {
  const detail = str(p.detail)
  switch (p.code as ErrorCode) {
    case 'invalid_input': {
      const field = str(p.field) || 'request'
      const prefix = `${field}: `
      return new InvalidInputError(
        field,
        detail.startsWith(prefix) ? detail.slice(prefix.length) : detail,
      )
    }
    case 'auth':
      return new AuthError(detail || undefined)
    case 'insufficient_credits':
      return new InsufficientCreditsError(str(p.account), num(p.required), num(p.available))
    case 'code_unavailable':
      return new CodeUnavailableError(str(p.reason) as CodeUnavailableReason)
    case 'not_found':
      return new NotFoundError(str(p.resource) || 'resource', str(p.id))
    case 'idempotency_conflict':
      return new IdempotencyConflictError(str(p.idempotencyKey))
    case 'hold_resolved':
      return new HoldResolvedError(
        str(p.holdId),
        p.resolution === 'released' ? 'released' : 'committed',
      )
    case 'hold_expired':
      return new HoldExpiredError(str(p.holdId), num(p.expiredAt))
    case 'overage':
      return new OverageError(str(p.holdId), num(p.held), num(p.actual))
    case 'rate_limited':
      return new RateLimitedError(num(p.retryAfterMs))
    case 'store_unavailable':
      return new StoreUnavailableError(detail || undefined)
    default:
      return num(p.status) >= 500
        ? new StoreUnavailableError(`server error ${num(p.status)}: ${detail}`)
        : new InvalidInputError('request', detail || `server answered ${num(p.status)}`)
  }
}

/** A batch as the wire carries it (the same shape as {@link CodeBatch}). */
export type CodeBatchBody = z.infer<typeof codeBatchBodySchema> & CodeBatch
