/**
 * Input validation. Scalars on the hot path (account, amount) are checked by hand; option
 * objects go through zod 4 strict schemas, so unknown keys are refused. Every failure is an
 * {@link InvalidInputError} naming the field, raised before anything reaches the store. Every
 * free-text field is a {@link text} schema (or {@link checkText} by hand) and every integer a
 * {@link wholeNumber}: one place decides what text can be stored and how numbers are refused.
 */
import { z } from 'zod'
import { NO_METADATA } from '../engine/apply.js'
import { InvalidInputError } from '../errors.js'
import { checkInt } from '../options-kit.js'
import {
  LEDGER_ENTRY_TYPES,
  type Metadata,
  USAGE_INTERVALS,
  type UsageOptions,
  type UsageRequest,
} from '../types.js'
import { isTransportKey, TRANSPORT_KEY_PREFIX } from './transport-key.js'

const MAX_ACCOUNT_CHARS = 200
const MAX_METADATA_BYTES = 4096
/**
 * What no text field may hold: NUL, which PostgreSQL `text` and `jsonb` cannot store (the whole
 * statement fails), and lone surrogates, which are not UTF-8 (a driver silently stores U+FFFD
 * instead). Checked here, at the edge, so such input never reaches a store.
 */
const UNSTORABLE = /[\0\p{Cs}]/u
/**
 * NUL or any surrogate, paired or not: a quick test (no Unicode mode) that clears the usual
 * text, which has neither, before the exact one above runs on what it flags.
 */
const SUSPECT = /[\0\uD800-\uDFFF]/
const TEXT_MESSAGE = 'must be well-formed text without NUL characters'

/** True when a string can be stored as it is: no NUL and no lone surrogate. */
export function isStorableText(value: string): boolean {
  return !SUSPECT.test(value) || !UNSTORABLE.test(value)
}

/**
 * Checks a free-text field by hand (where no zod schema runs): a string of `min`–`max` UTF-16
 * units that {@link isStorableText} accepts.
 * @example checkText(holdId, 'holdId', 1, 100)
 */
export function checkText(value: unknown, field: string, min: number, max: number): string {
  if (typeof value !== 'string' || value.length < min || value.length > max) {
    throw new InvalidInputError(field, `must be text of ${min}–${max} characters`)
  }
  if (!isStorableText(value)) throw new InvalidInputError(field, TEXT_MESSAGE)
  return value
}

/**
 * The zod schema of every free-text field (reasons, names, ids, cursors, idempotency keys…):
 * `min`–`max` UTF-16 units of storable text. One definition, so every text field refuses NUL
 * and lone surrogates with the same message.
 * @example const reason = text(1, 500)
 */
export function text(min: number, max: number) {
  return z
    .string({ error: `must be text of ${min}–${max} characters` })
    .min(min)
    .max(max)
    .refine(isStorableText, TEXT_MESSAGE)
}

/**
 * The zod schema of every integer field: a safe integer in `[min, max]` whose every failure
 * (a fraction, a string, out of range) says so in words, e.g. `must be a whole number from 1
 * to 36500` instead of zod's `expected int, received number`.
 * @example const days = wholeNumber(1, 36_500)
 */
export function wholeNumber(min?: number, max?: number) {
  let message = 'must be a whole number'
  if (min !== undefined && max !== undefined) message += ` from ${min} to ${max}`
  else if (min !== undefined) message += ` ≥ ${min}`
  else if (max !== undefined) message += ` ≤ ${max}`
  let schema = z.int({ error: message })
  if (min !== undefined) schema = schema.min(min)
  if (max !== undefined) schema = schema.max(max)
  return schema
}

/** Strings nested in a JSON value are walked at most this deep (an explicit stack, no recursion). */
const MAX_JSON_DEPTH = 10_000

/**
 * The path of a string (object key or value) in a JSON value that is not storable text, or null
 * when there is none. Iterative, so a deeply nested value cannot exhaust the stack.
 * `false` when the value nests deeper than {@link MAX_JSON_DEPTH}.
 */
export function unstorablePath(value: unknown): (string | number)[] | null | false {
  // Each entry links to its parent instead of copying its path: a path is built only when found.
  interface Node {
    value: unknown
    key: string | number
    parent: Node | null
    depth: number
  }
  const pathOf = (node: Node | null): (string | number)[] => {
    const path: (string | number)[] = []
    for (let n = node; n !== null && n.parent !== null; n = n.parent) path.push(n.key)
    return path.reverse()
  }
  const stack: Node[] = [{ value, key: '', parent: null, depth: 0 }]
  while (stack.length > 0) {
    const node = stack.pop()!
    const v = node.value
    if (typeof v === 'string') {
      if (!isStorableText(v)) return pathOf(node)
    } else if (typeof v === 'object' && v !== null) {
      if (node.depth >= MAX_JSON_DEPTH) return false
      const depth = node.depth + 1
      if (Array.isArray(v)) {
        for (let i = v.length - 1; i >= 0; i--) {
          stack.push({ value: v[i], key: i, parent: node, depth })
        }
      } else {
        for (const [k, child] of Object.entries(v)) {
          // A key that cannot be stored is named by its parent: the key itself cannot be shown.
          if (!isStorableText(k)) return pathOf(node)
          stack.push({ value: child, key: k, parent: node, depth })
        }
      }
    }
  }
  return null
}

/**
 * Refines a JSON value (metadata, a stored idempotency result): every string in it, keys
 * included, must be storable text; the issue names the path of the offending string.
 */
export function refineStorableJson(value: unknown, ctx: z.RefinementCtx): void {
  const path = unstorablePath(value)
  if (path === false) ctx.addIssue({ code: 'custom', message: 'is nested too deeply' })
  else if (path !== null) ctx.addIssue({ code: 'custom', message: TEXT_MESSAGE, path })
}

/** Checks an account id: 1–200 characters of well-formed text. */
export function checkAccount(account: unknown, field = 'account'): string {
  if (typeof account !== 'string' || account.length === 0) {
    throw new InvalidInputError(field, 'must be a non-empty string')
  }
  if (account.length > MAX_ACCOUNT_CHARS && [...account].length > MAX_ACCOUNT_CHARS) {
    throw new InvalidInputError(field, `must be at most ${MAX_ACCOUNT_CHARS} characters`)
  }
  if (!isStorableText(account)) throw new InvalidInputError(field, TEXT_MESSAGE)
  return account
}

/** Checks an amount: a safe integer ≥ `min` (0 unless said). */
export function checkAmount(amount: unknown, field = 'amount', min = 0): number {
  return checkInt(amount, field, min)
}

/** Checks a hold id handed back by the caller. */
export function checkHoldId(id: unknown): string {
  if (typeof id !== 'string' || id.length === 0 || id.length > 100) {
    throw new InvalidInputError('holdId', 'must be a hold id string')
  }
  if (!isStorableText(id)) throw new InvalidInputError('holdId', TEXT_MESSAGE)
  return id
}

export const safeInt = (min = 0) => wholeNumber(min)
/** Any idempotency key a store accepts, transport keys included. */
export const storedIdempotencyKey = text(1, 255)
/** An idempotency key a caller gives. */
export const idempotencyKey = storedIdempotencyKey.refine(
  (k) => !isTransportKey(k),
  `must not start with "${TRANSPORT_KEY_PREFIX}" (reserved for httpStore retries)`,
)
export const metadata = z
  .record(z.string(), z.unknown())
  .refine(
    (m) => {
      try {
        return Buffer.byteLength(JSON.stringify(m)) <= MAX_METADATA_BYTES
      } catch {
        return false
      }
    },
    { message: `must be a JSON object of at most ${MAX_METADATA_BYTES} bytes`, abort: true },
  )
  // Runs only on metadata within the size limit (the check above aborts), so the walk is short.
  .superRefine(refineStorableJson)
export const category = z.enum(['paid', 'promotional'])
export const priority = wholeNumber(0, 1_000_000)
export const timestamp = z
  .union([wholeNumber(0), z.date()])
  .transform((v) => (typeof v === 'number' ? v : v.getTime()))
export const validityDays = wholeNumber(1, 36_500)
export const ttlMs = wholeNumber(1_000, 86_400_000)
export const overage = z.enum(['reject', 'clamp', 'overdraft'])
/** A call's deadline: how long the caller waits for the store, in ms. */
export const timeoutMs = z.int().min(1).max(3_600_000)

export const grantOptionsSchema = z
  .strictObject({
    expiresAt: timestamp.optional(),
    validityDays: validityDays.optional(),
    priority: priority.optional(),
    category: category.optional(),
    metadata: metadata.optional(),
    idempotencyKey: idempotencyKey.optional(),
    timeoutMs: timeoutMs.optional(),
  })
  .refine((o) => o.expiresAt === undefined || o.validityDays === undefined, {
    message: 'give expiresAt or validityDays, not both',
    path: ['validityDays'],
  })

export const debitOptionsSchema = z.strictObject({
  metadata: metadata.optional(),
  idempotencyKey: idempotencyKey.optional(),
  timeoutMs: timeoutMs.optional(),
})

export const adjustOptionsSchema = z.strictObject({
  reason: text(1, 500).optional(),
  metadata: metadata.optional(),
  idempotencyKey: idempotencyKey.optional(),
  timeoutMs: timeoutMs.optional(),
})

export const reserveOptionsSchema = z.strictObject({
  ttlMs: ttlMs.optional(),
  metadata: metadata.optional(),
  idempotencyKey: idempotencyKey.optional(),
  timeoutMs: timeoutMs.optional(),
})

export const commitOptionsSchema = z.strictObject({
  overage: overage.optional(),
  metadata: metadata.optional(),
  idempotencyKey: idempotencyKey.optional(),
  timeoutMs: timeoutMs.optional(),
})

export const releaseOptionsSchema = z.strictObject({
  metadata: metadata.optional(),
  idempotencyKey: idempotencyKey.optional(),
  timeoutMs: timeoutMs.optional(),
})

export const extendOptionsSchema = z.strictObject({
  idempotencyKey: idempotencyKey.optional(),
  timeoutMs: timeoutMs.optional(),
})

export const increaseOptionsSchema = z.strictObject({
  partial: z.boolean({ error: 'must be true or false' }).optional(),
  idempotencyKey: idempotencyKey.optional(),
  timeoutMs: timeoutMs.optional(),
})

export const ttlSchema = ttlMs

/**
 * `reserve` options, parsed. The common `{ ttlMs }` alone (what the middleware passes on every
 * request) is checked by hand: a zod parse per request cost more than the reserve itself.
 */
export function parseReserveOptions(
  options: unknown,
): z.infer<typeof reserveOptionsSchema> | undefined {
  if (options === undefined) return undefined
  if (
    typeof options === 'object' &&
    options !== null &&
    Object.getPrototypeOf(options) === Object.prototype
  ) {
    const o = options as { ttlMs?: unknown }
    let keys = 0
    for (const _ in o) keys++
    const t = o.ttlMs
    if (
      keys === 1 &&
      typeof t === 'number' &&
      Number.isInteger(t) &&
      t >= 1_000 &&
      t <= 86_400_000
    ) {
      return { ttlMs: t }
    }
  }
  return parse(reserveOptionsSchema, options)
}

export const balanceOptionsSchema = z.strictObject({
  fresh: z.boolean().optional(),
  timeoutMs: timeoutMs.optional(),
})

export const ledgerQuerySchema = z.strictObject({
  limit: wholeNumber(1, 1000).optional(),
  cursor: text(1, 200).optional(),
  types: z
    .array(z.enum(LEDGER_ENTRY_TYPES as [string, ...string[]]))
    .min(1)
    .optional(),
  from: timestamp.optional(),
  to: timestamp.optional(),
})

export const usageOptionsSchema = z.strictObject({
  interval: z.enum(USAGE_INTERVALS as [string, ...string[]]).optional(),
  from: timestamp.optional(),
  to: timestamp.optional(),
  groupBy: text(1, 64).optional(),
})

/** The default window of a usage read: the 30 days before `to`. */
export const USAGE_DEFAULT_WINDOW_MS = 30 * 86_400_000

/**
 * A usage request from the meter's or the server's options, defaults applied: `interval` day,
 * `to` now, `from` 30 days before `to`. The store checks the window (`usageWindow`).
 * @example usageRequestOf('acct', { groupBy: 'feature' }, Date.now())
 */
export function usageRequestOf(
  account: string | null,
  options: UsageOptions | undefined,
  now: number,
): UsageRequest {
  const o = parse(usageOptionsSchema, options)
  const to = o.to ?? now
  const request: UsageRequest = {
    interval: (o.interval ?? 'day') as UsageRequest['interval'],
    from: o.from ?? Math.max(0, to - USAGE_DEFAULT_WINDOW_MS),
    to,
  }
  if (account !== null) request.account = checkAccount(account)
  if (o.groupBy !== undefined) request.groupBy = o.groupBy
  return request
}

/** Longest accounts cursor: it carries an account id (up to 200 characters) and a number. */
export const MAX_ACCOUNTS_CURSOR = 2_000

/** `meter.accounts()` options (see `AccountsQuery`). */
export const accountsQuerySchema = z.strictObject({
  limit: wholeNumber(1, 1000).optional(),
  cursor: text(1, MAX_ACCOUNTS_CURSOR).nullable().optional(),
  prefix: text(1, 200).optional(),
  low: z.boolean().optional(),
  inDebt: z.boolean().optional(),
  hasHolds: z.boolean().optional(),
  sort: z.enum(['account', 'balance', 'activity']).optional(),
  order: z.enum(['asc', 'desc']).optional(),
})

export const configureSchema = z.strictObject({
  lowBalanceThreshold: safeInt().nullable().optional(),
  overdraftLimit: safeInt().nullable().optional(),
  idempotencyKey: idempotencyKey.optional(),
  timeoutMs: timeoutMs.optional(),
})

export const every = z.union([
  z.enum(['day', 'week', 'month']),
  z.strictObject({ days: wholeNumber(1, 3_660) }),
])

export const startCycleSchema = z.strictObject({
  amount: safeInt(1),
  every,
  rollover: z.strictObject({ max: safeInt() }).optional(),
  priority: priority.optional(),
  category: category.optional(),
  idempotencyKey: idempotencyKey.optional(),
  timeoutMs: timeoutMs.optional(),
})

export const stopCycleSchema = z.strictObject({
  idempotencyKey: idempotencyKey.optional(),
  timeoutMs: timeoutMs.optional(),
})

export const createCodesSchema = z.strictObject({
  credits: safeInt(1),
  count: wholeNumber(1, 100_000),
  prefix: z
    .string()
    .regex(/^[A-Z0-9]{1,10}$/, 'must be 1–10 of A–Z and 0–9')
    .optional(),
  codeExpiresAt: timestamp.optional(),
  validityDays: validityDays.optional(),
  maxRedemptions: wholeNumber(1, 1_000_000_000).optional(),
  priority: priority.optional(),
  category: category.optional(),
  idempotencyKey: idempotencyKey.optional(),
})

export const sweepOptionsSchema = z.strictObject({ limit: wholeNumber(1, 100_000).optional() })

export const redeemOptionsSchema = z.strictObject({
  idempotencyKey: idempotencyKey.optional(),
  timeoutMs: timeoutMs.optional(),
})

/**
 * Parses `value` with `schema`; an absent options argument is `{}`.
 * Throws {@link InvalidInputError} naming the first offending field (`options.<key>` paths
 * are reported by their key, e.g. `ttlMs`).
 */
export function parse<S extends z.ZodType>(
  schema: S,
  value: unknown,
  field = 'options',
): z.output<S> {
  const result = schema.safeParse(value === undefined ? {} : value)
  if (result.success) return result.data
  const issue = result.error.issues[0]!
  let name = field
  if (issue.path.length > 0) name = issue.path.map(String).join('.')
  else if (issue.code === 'unrecognized_keys') name = issue.keys.join(', ')
  const message = issue.code === 'unrecognized_keys' ? 'is not a known option' : issue.message
  throw new InvalidInputError(name, message)
}

/** Metadata as stored: the shared empty object when none was given. */
export function metadataOf(m: Metadata | undefined): Metadata {
  return m ?? NO_METADATA
}
