/**
 * Input validation. Scalars on the hot path (account, amount) are checked by hand; option
 * objects go through zod 4 strict schemas, so unknown keys are refused. Every failure is an
 * {@link InvalidInputError} naming the field, raised before anything reaches the store.
 */
import { z } from 'zod'
import { NO_METADATA } from './engine/apply.js'
import { InvalidInputError } from './errors.js'
import { isTransportKey, TRANSPORT_KEY_PREFIX } from './transport-key.js'
import { LEDGER_ENTRY_TYPES, type Metadata } from './types.js'

const MAX_ACCOUNT_CHARS = 200
const MAX_METADATA_BYTES = 4096
// Lone surrogates are not UTF-8.
const LONE_SURROGATE = /\p{Cs}/u

/** Checks an account id: 1–200 characters of well-formed text. */
export function checkAccount(account: unknown, field = 'account'): string {
  if (typeof account !== 'string' || account.length === 0) {
    throw new InvalidInputError(field, 'must be a non-empty string')
  }
  if (account.length > MAX_ACCOUNT_CHARS && [...account].length > MAX_ACCOUNT_CHARS) {
    throw new InvalidInputError(field, `must be at most ${MAX_ACCOUNT_CHARS} characters`)
  }
  // NUL is refused too: PostgreSQL text cannot store it.
  if (LONE_SURROGATE.test(account) || account.includes('\0')) {
    throw new InvalidInputError(field, 'must be well-formed text without NUL characters')
  }
  return account
}

/** Checks an integer option: a safe integer from `min` to `max`. */
export function checkInt(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidInputError(field, `must be an integer from ${min} to ${max}`)
  }
  return value
}

/** Checks an amount: a safe integer ≥ `min` (0 unless said). */
export function checkAmount(amount: unknown, field = 'amount', min = 0): number {
  if (typeof amount !== 'number' || !Number.isSafeInteger(amount) || amount < min) {
    throw new InvalidInputError(
      field,
      min === 0 ? 'must be a non-negative safe integer' : `must be a safe integer ≥ ${min}`,
    )
  }
  return amount
}

/** Checks a hold id handed back by the caller. */
export function checkHoldId(id: unknown): string {
  if (typeof id !== 'string' || id.length === 0 || id.length > 100) {
    throw new InvalidInputError('holdId', 'must be a hold id string')
  }
  return id
}

export const safeInt = (min = 0) => z.int().min(min)
/** Any idempotency key a store accepts, transport keys included. */
export const storedIdempotencyKey = z
  .string()
  .min(1)
  .max(255)
  .refine(
    (k) => !LONE_SURROGATE.test(k) && !k.includes('\0'),
    'must be well-formed text without NUL characters',
  )
/** An idempotency key a caller gives. */
export const idempotencyKey = storedIdempotencyKey.refine(
  (k) => !isTransportKey(k),
  `must not start with "${TRANSPORT_KEY_PREFIX}" (reserved for httpStore retries)`,
)
export const metadata = z.record(z.string(), z.unknown()).refine((m) => {
  try {
    return Buffer.byteLength(JSON.stringify(m)) <= MAX_METADATA_BYTES
  } catch {
    return false
  }
}, `must be a JSON object of at most ${MAX_METADATA_BYTES} bytes`)
export const category = z.enum(['paid', 'promotional'])
export const priority = z.int().min(0).max(1_000_000)
export const timestamp = z
  .union([z.int().min(0), z.date()])
  .transform((v) => (typeof v === 'number' ? v : v.getTime()))
export const validityDays = z.int().min(1).max(36_500)
export const ttlMs = z.int().min(1_000).max(86_400_000)
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
  reason: z.string().min(1).max(500).optional(),
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
  limit: z.int().min(1).max(1000).optional(),
  cursor: z.string().min(1).max(200).optional(),
  types: z
    .array(z.enum(LEDGER_ENTRY_TYPES as [string, ...string[]]))
    .min(1)
    .optional(),
  from: timestamp.optional(),
  to: timestamp.optional(),
})

export const configureSchema = z.strictObject({
  lowBalanceThreshold: safeInt().nullable().optional(),
  overdraftLimit: safeInt().nullable().optional(),
  idempotencyKey: idempotencyKey.optional(),
  timeoutMs: timeoutMs.optional(),
})

export const every = z.union([
  z.enum(['day', 'week', 'month']),
  z.strictObject({ days: z.int().min(1).max(3_660) }),
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
  count: z.int().min(1).max(100_000),
  prefix: z
    .string()
    .regex(/^[A-Z0-9]{1,10}$/, 'must be 1–10 of A–Z and 0–9')
    .optional(),
  codeExpiresAt: timestamp.optional(),
  validityDays: validityDays.optional(),
  maxRedemptions: z.int().min(1).max(1_000_000_000).optional(),
  priority: priority.optional(),
  category: category.optional(),
  idempotencyKey: idempotencyKey.optional(),
})

export const sweepOptionsSchema = z.strictObject({ limit: z.int().min(1).max(100_000).optional() })

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
