/**
 * The REST API's zod schemas. Request schemas are built from core's option schemas (same
 * fields, same limits, same messages); the idempotency key travels as a header instead of a
 * field. Response schemas describe what the routes send: the OpenAPI document is generated
 * from all of them, never written by hand.
 */

import { LEDGER_ENTRY_TYPES, PROBLEM_CONTENT_TYPE, USAGE_INTERVALS } from '@tollgate/core'
import {
  accountSchema,
  accountsQuerySchema,
  adjustOptionsSchema,
  commitOptionsSchema,
  configureSchema,
  createCodesSchema,
  grantOptionsSchema,
  idempotencyKeySchema,
  increaseOptionsSchema,
  releaseOptionsSchema,
  reserveOptionsSchema,
  startCycleSchema,
  textSchema,
  ttlSchema,
  wholeNumberSchema,
} from '@tollgate/core/protocol'
import type { StoredEventType } from '@tollgate/core/store'
import { z } from 'zod'

// Request schemas use core's text and whole-number schemas: every text field refuses NUL and
// lone surrogates, and every integer is refused in the same words, in one place.
const amount = wholeNumberSchema(0)
const timestampMs = wholeNumberSchema(0).describe('ms since epoch')
/** A whole number in a query string (where every value arrives as text). */
const queryNumber = (min: number, max?: number) =>
  z.preprocess(
    (v) => (typeof v === 'string' && v.trim() !== '' ? Number(v) : v),
    wholeNumberSchema(min, max),
  )
const g = grantOptionsSchema.shape
const metadataSchema = g.metadata
const categorySchema = z.enum(['paid', 'promotional'])

// ---- parameters and headers ------------------------------------------------------------

export const accountParams = z.strictObject({ account: accountSchema })
export const holdParams = z.strictObject({ id: textSchema(1, 100) })
export const keyParams = z.strictObject({ id: textSchema(1, 100) })

/** `Tollgate-Deadline-Ms`: how long the client waits, in whole ms. */
const deadlineHeader = z
  .string()
  .regex(/^[1-9][0-9]{0,8}$/, 'must be a whole number of milliseconds, at least 1')
  .optional()
  .describe(
    "How long the client waits, in ms. The operation runs within it (capped by the server's `timeoutMs`) or is answered 503 and never applied.",
  )

/** Headers every `/v1` route reads (other headers pass through untouched). */
export const tenantHeaders = z.looseObject({
  'tollgate-tenant': z
    .string()
    .optional()
    .describe('Admin keys: the tenant to act for (default: `default`).'),
  'tollgate-deadline-ms': deadlineHeader,
})
/** Headers of mutations: the tenant, the deadline and the idempotency key. */
export const mutationHeaders = z.looseObject({
  'tollgate-tenant': tenantHeaders.shape['tollgate-tenant'],
  'tollgate-deadline-ms': deadlineHeader,
  'idempotency-key': idempotencyKeySchema
    .optional()
    .describe('Same key and body replay the first answer; a different body is 409.'),
})

// ---- request bodies --------------------------------------------------------------------

export const grantBody = z
  .strictObject({
    amount: wholeNumberSchema(1),
    expiresAt: timestampMs.optional(),
    validityDays: g.validityDays,
    priority: g.priority,
    category: g.category,
    metadata: g.metadata,
  })
  .refine((o) => o.expiresAt === undefined || o.validityDays === undefined, {
    message: 'give expiresAt or validityDays, not both',
    path: ['validityDays'],
  })

export const debitBody = z.strictObject({ amount, metadata: metadataSchema })

const adjust = adjustOptionsSchema.shape
export const adjustBody = z.strictObject({
  delta: wholeNumberSchema().refine((d) => d !== 0, 'must be non-zero'),
  reason: adjust.reason,
  metadata: adjust.metadata,
})

const reserve = reserveOptionsSchema.shape
export const holdBody = z.strictObject({ amount, ttlMs: reserve.ttlMs, metadata: reserve.metadata })

const commit = commitOptionsSchema.shape
export const commitBody = z.strictObject({
  actual: amount.optional(),
  overage: commit.overage,
  metadata: commit.metadata,
})

export const releaseBody = z.strictObject({ metadata: releaseOptionsSchema.shape.metadata })

export const extendBody = z.strictObject({ ttlMs: ttlSchema })

export const increaseBody = z.strictObject({
  amount: amount.describe('credits to add to the hold'),
  partial: increaseOptionsSchema.shape.partial.describe(
    'grow by what is available (possibly 0) instead of answering 402 when it is less',
  ),
})

const configure = configureSchema.shape
export const settingsBody = z.strictObject({
  lowBalanceThreshold: configure.lowBalanceThreshold,
  overdraftLimit: configure.overdraftLimit,
})

const cycle = startCycleSchema.shape
export const cycleBody = z.strictObject({
  amount: cycle.amount,
  every: cycle.every,
  rollover: cycle.rollover,
  priority: cycle.priority,
  category: cycle.category,
})

const codes = createCodesSchema.shape
/** At most 10,000 codes per request: the answer carries every plaintext code. */
export const MAX_CODES_PER_REQUEST = 10_000
export const codesBody = z.strictObject({
  credits: codes.credits,
  count: wholeNumberSchema(1, MAX_CODES_PER_REQUEST),
  prefix: codes.prefix,
  codeExpiresAt: timestampMs.optional(),
  validityDays: codes.validityDays,
  maxRedemptions: codes.maxRedemptions,
  priority: codes.priority,
  category: codes.category,
})

export const redeemBody = z.strictObject({ code: textSchema(1, 100) })

const ledgerTypes = z.enum(LEDGER_ENTRY_TYPES as [string, ...string[]])
export const ledgerQuery = z.strictObject({
  limit: queryNumber(1, 1000).optional(),
  cursor: textSchema(1, 200).optional(),
  types: z
    .string()
    .optional()
    .describe('Comma-separated entry types, e.g. `grant,debit`.')
    .transform((v, ctx) => {
      if (v === undefined) return undefined
      const list = v.split(',').filter((t) => t !== '')
      for (const t of list) {
        if (!ledgerTypes.safeParse(t).success) {
          ctx.addIssue({ code: 'custom', message: `unknown entry type "${t.slice(0, 20)}"` })
          return z.NEVER
        }
      }
      if (list.length === 0) {
        ctx.addIssue({ code: 'custom', message: 'must name at least one type' })
        return z.NEVER
      }
      return list
    }),
  from: queryNumber(0).optional().describe('Only entries with `at ≥ from`.'),
  to: queryNumber(0).optional().describe('Only entries with `at < to`.'),
})

/** A yes/no query parameter: `true` or `false`, nothing else (a typo is a 400, not a no). */
const queryBoolean = z
  .enum(['true', 'false'], { error: 'must be true or false' })
  .transform((v) => v === 'true')
const accountsOptions = accountsQuerySchema.shape
export const accountsQuery = z.strictObject({
  limit: queryNumber(1, 1000).optional().describe('At most this many (default 100).'),
  cursor: accountsOptions.cursor.unwrap().unwrap().optional(),
  prefix: accountsOptions.prefix.describe('Only accounts whose id starts with this.'),
  low: queryBoolean.optional().describe('Only accounts whose `low` is this.'),
  inDebt: queryBoolean.optional().describe('Only accounts with (true) or without (false) debt.'),
  hasHolds: queryBoolean
    .optional()
    .describe('Only accounts with (true) or without (false) credits held.'),
  sort: accountsOptions.sort.describe(
    '`account` (id), `balance` (available) or `activity` (last ledger change); default `account`.',
  ),
  order: accountsOptions.order.describe('Default `asc` for `account`, `desc` for the others.'),
})

export const createKeyBody = z.strictObject({
  tenant: accountSchema,
  name: textSchema(0, 200).optional(),
  role: z.enum(['admin', 'tenant']).optional(),
})
export const listKeysQuery = z.strictObject({ tenant: accountSchema.optional() })

// ---- responses -------------------------------------------------------------------------

const allocation = z.object({ bucketId: z.string(), amount })
export const balanceSchema = z
  .object({
    account: z.string(),
    total: amount,
    held: amount,
    available: amount,
    debt: amount,
    low: z.boolean(),
    buckets: z.array(
      z.object({
        id: z.string(),
        remaining: amount,
        held: amount,
        expiresAt: timestampMs.nullable(),
        priority: z.int(),
        category: categorySchema,
      }),
    ),
    asOf: timestampMs,
  })
  .meta({ id: 'Balance' })

const mutation = { replayed: z.boolean(), balance: balanceSchema }
const metadataOut = z.record(z.string(), z.unknown())

export const grantResponse = z
  .object({
    id: z.string(),
    account: z.string(),
    amount,
    repaidDebt: amount,
    expiresAt: timestampMs.nullable(),
    priority: z.int(),
    category: categorySchema,
    metadata: metadataOut,
    createdAt: timestampMs,
    ...mutation,
  })
  .meta({ id: 'Grant' })

export const debitResponse = z
  .object({
    account: z.string(),
    amount: z.int(),
    allocations: z.array(allocation),
    grantId: z.string().optional(),
    ...mutation,
  })
  .meta({ id: 'DebitResult' })

const holdFields = {
  id: z.string(),
  account: z.string(),
  amount,
  expiresAt: timestampMs,
  createdAt: timestampMs,
  allocations: z.array(allocation),
  metadata: metadataOut,
  ...mutation,
}
export const holdResponse = z.object(holdFields).meta({ id: 'Hold' })

export const commitResponse = z
  .object({
    holdId: z.string(),
    account: z.string(),
    charged: amount,
    shortfall: amount,
    debt: amount,
    freed: amount,
    ...mutation,
  })
  .meta({ id: 'CommitResult' })

export const increaseResponse = z
  .object({
    holdId: z.string(),
    account: z.string(),
    amount: amount.describe("the hold's new total"),
    added: amount.describe('credits this call added'),
    expiresAt: timestampMs,
    ...mutation,
  })
  .meta({ id: 'IncreaseResult' })

export const releaseResponse = z
  .object({ holdId: z.string(), account: z.string(), freed: amount, ...mutation })
  .meta({ id: 'ReleaseResult' })

export const usageQuery = z.strictObject({
  interval: z
    .enum(USAGE_INTERVALS as [string, ...string[]])
    .optional()
    .describe('UTC hours, days or calendar months. Default `day`.'),
  from: queryNumber(0)
    .optional()
    .describe('ms since epoch, widened down to its period start. Default: 30 days before `to`.'),
  to: queryNumber(0)
    .optional()
    .describe('ms since epoch (exclusive), widened up to a period boundary. Default: now.'),
  groupBy: textSchema(1, 64).optional().describe('A metadata key to break the figures down by.'),
})

const usagePeriodSchema = z
  .object({
    start: timestampMs,
    granted: z.int(),
    spent: z.int(),
    released: z.int(),
    expired: z.int(),
  })
  .meta({ id: 'UsagePeriod' })

export const usageResponse = z
  .object({
    account: z.string().nullable(),
    interval: z.enum(USAGE_INTERVALS as [string, ...string[]]),
    from: timestampMs,
    to: timestampMs,
    groupBy: z.string().nullable(),
    periods: z.array(usagePeriodSchema),
    groups: z
      .array(z.object({ value: z.string().nullable(), periods: z.array(usagePeriodSchema) }))
      .optional(),
    other: z
      .object({ count: z.int(), periods: z.array(usagePeriodSchema) })
      .nullable()
      .optional(),
  })
  .meta({ id: 'UsageReport' })

export const ledgerEntrySchema = z
  .object({
    id: z.string(),
    account: z.string(),
    type: ledgerTypes,
    delta: z.int(),
    heldDelta: z.int(),
    debtDelta: z.int(),
    balanceAfter: z.int(),
    holdId: z.string().optional(),
    grantId: z.string().optional(),
    redemptionId: z.string().optional(),
    cycleId: z.string().optional(),
    idempotencyKey: z.string().optional(),
    reason: z.string().optional(),
    metadata: metadataOut,
    at: timestampMs,
  })
  .meta({ id: 'LedgerEntry' })

export const ledgerResponse = z
  .object({ entries: z.array(ledgerEntrySchema), nextCursor: z.string().nullable() })
  .meta({ id: 'LedgerPage' })

export const accountSummarySchema = balanceSchema
  .pick({ account: true, total: true, held: true, available: true, debt: true })
  .extend({
    low: z
      .boolean()
      .describe(
        "available ≤ the account's lowBalanceThreshold, else the tenant's stored default (PUT /v1/settings)",
      ),
    updatedAt: timestampMs.describe("the account's last ledger change"),
  })
  .meta({ id: 'AccountSummary' })

export const accountsResponse = z
  .object({ accounts: z.array(accountSummarySchema), nextCursor: z.string().nullable() })
  .meta({ id: 'AccountsPage' })

export const settingsResponse = z.object({
  lowBalanceThreshold: amount.nullable(),
  overdraftLimit: amount.nullable(),
  ...mutation,
})

export const tenantSettingsResponse = z
  .object({
    lowBalanceThreshold: amount
      .nullable()
      .describe(
        "`low` is `available ≤ this` for accounts without their own; null: each meter's option",
      ),
    overdraftLimit: amount
      .nullable()
      .describe("most debt an overdraft commit may create; null: each meter's option"),
  })
  .meta({ id: 'TenantSettings' })

export const accountSettingsResponse = z.object({
  account: z.string(),
  lowBalanceThreshold: amount.nullable().describe("the account's own; null: none"),
  overdraftLimit: amount.nullable().describe("the account's own; null: none"),
  effective: z
    .object({ lowBalanceThreshold: amount.nullable(), overdraftLimit: amount.nullable() })
    .describe("what applies: the account's own, else the tenant's, else the server's option"),
})

export const cycleResponse = z
  .object({
    cycle: z.object({
      id: z.string(),
      account: z.string(),
      amount,
      every: z.union([z.enum(['day', 'week', 'month']), z.object({ days: z.int() })]),
      rollover: z.object({ max: amount }).nullable(),
      anchor: timestampMs,
      periodStart: timestampMs,
      periodEnd: timestampMs,
      active: z.boolean(),
    }),
    replaced: z.string().nullable(),
    ...mutation,
  })
  .meta({ id: 'CycleResult' })

export const codesResponse = z.object({
  batchId: z.string(),
  count: z.int(),
  credits: amount,
  codeExpiresAt: timestampMs.nullable(),
  codes: z.array(z.string()).describe('The plaintext codes, shown this once (empty on replay).'),
  replayed: z.boolean(),
})

export const redeemResponse = z
  .object({
    redemptionId: z.string(),
    account: z.string(),
    creditsGranted: amount,
    newBalance: amount,
    expiresAt: timestampMs.nullable(),
    grantId: z.string(),
    ...mutation,
  })
  .meta({ id: 'RedeemResult' })

const keyInfoFields = {
  id: z.string(),
  tenant: z.string(),
  role: z.enum(['admin', 'tenant']),
  name: z.string(),
  createdAt: timestampMs,
  revokedAt: timestampMs.nullable(),
}
export const createdKeyResponse = z.object({
  ...keyInfoFields,
  key: z.string().describe('The API key, shown this once.'),
})
export const keyListResponse = z.object({ keys: z.array(z.object(keyInfoFields)) })
export const revokedKeyResponse = z.object({ id: z.string(), revokedAt: timestampMs })

export const problemSchema = z
  .looseObject({
    type: z.string(),
    title: z.string(),
    status: z.int(),
    detail: z.string(),
    code: z.string(),
    field: z.string().optional(),
    requestId: z
      .string()
      .optional()
      .describe(
        "The request's id, as in its X-Request-Id answer header and the server's log lines.",
      ),
  })
  .meta({ id: 'Problem' })

const problemResponse = {
  description: 'RFC 9457 problem details with the error `code`',
  content: { [PROBLEM_CONTENT_TYPE]: { schema: problemSchema } },
}
/** The error answers documented on every `/v1` route. */
export const problems = {
  400: problemResponse,
  401: problemResponse,
  402: problemResponse,
  404: problemResponse,
  409: problemResponse,
  410: problemResponse,
  413: problemResponse,
  429: problemResponse,
  503: problemResponse,
} as const

// ---- store protocol responses ----------------------------------------------------------

const record = z.record(z.string(), z.unknown())
export const wireOutcomeResponse = z.object({
  result: record.nullable(),
  error: problemSchema.nullable(),
  replayed: z.boolean(),
  balance: balanceSchema.nullable(),
  events: z.array(record),
})
export const batchResponse = z.object({
  outcomes: z.array(
    z.union([z.object({ outcome: wireOutcomeResponse }), z.object({ problem: problemSchema })]),
  ),
})
export const storeLedgerResponse = ledgerResponse
export const storeUsageResponse = usageResponse
export const storeAccountsResponse = accountsResponse
export const storeCodesResponse = z.object({
  status: z.enum(['created', 'replayed', 'conflict']),
  result: z.unknown().optional(),
})
export const dueResponse = z.object({ accounts: z.array(z.string()) })
export const pruneResponse = z.object({ pruned: z.int() })

export const healthResponse = z.object({ status: z.string() })

// ---- webhooks --------------------------------------------------------------------------

/** Event types a webhook may subscribe to (the outbox's types), or `*` for all of them. */
export const WEBHOOK_EVENT_TYPES = [
  'granted',
  'debited',
  'reserved',
  'committed',
  'released',
  'expired',
  'redeemed',
  'adjusted',
  'low',
  'depleted',
  'recovered',
  'debt_changed',
] as const satisfies readonly StoredEventType[]

export const webhookParams = z.strictObject({ id: textSchema(1, 100) })
export const deliveryParams = z.strictObject({
  id: textSchema(1, 100),
  deliveryId: textSchema(1, 100),
})
export const createWebhookBody = z.strictObject({
  url: textSchema(1, 2_000).describe(
    'Where deliveries are POSTed: https, and not a private, loopback or link-local address unless the server allows it.',
  ),
  events: z
    .array(z.enum([...WEBHOOK_EVENT_TYPES, '*']))
    .min(1)
    .max(WEBHOOK_EVENT_TYPES.length + 1)
    .optional()
    .describe('Event types to deliver (default: `["*"]`, every type).'),
})
export const deliveriesQuery = z.strictObject({
  limit: queryNumber(1, 1000).optional().describe('At most this many (default 50).'),
  before: queryNumber(1)
    .optional()
    .describe('Only deliveries of events with a lower seq: `nextBefore` of the previous page.'),
  status: z.enum(['pending', 'delivered', 'failed']).optional(),
})

const webhookFields = {
  id: z.string(),
  url: z.string(),
  events: z.array(z.string()),
  createdAt: timestampMs,
}
export const webhookResponse = z.object(webhookFields).meta({ id: 'Webhook' })
export const createdWebhookResponse = z
  .object({
    ...webhookFields,
    secret: z.string().describe('The signing secret (`whsec_…`), shown this once.'),
  })
  .meta({ id: 'CreatedWebhook' })
export const webhookListResponse = z.object({ webhooks: z.array(webhookResponse) })
export const deletedWebhookResponse = z.object({ id: z.string(), deleted: z.literal(true) })
export const deliveryResponse = z
  .object({
    id: z.string(),
    webhookId: z.string(),
    eventId: z.string().describe('The `webhook-id` header: the same on every attempt.'),
    eventSeq: z.int(),
    account: z.string(),
    type: z.string(),
    at: timestampMs,
    status: z.enum(['pending', 'delivered', 'failed']),
    attempts: z.int(),
    nextAt: timestampMs.describe('When the next attempt is due (while pending).'),
    lastAttemptAt: timestampMs.nullable(),
    lastStatus: z.int().nullable(),
    lastError: z.string().nullable(),
    deliveredAt: timestampMs.nullable(),
  })
  .meta({ id: 'WebhookDelivery' })
export const deliveryListResponse = z.object({
  deliveries: z.array(deliveryResponse),
  nextBefore: z.int().nullable().describe('Pass as `before` for the next page; null at the end.'),
})
