/**
 * What the meter's account calls ask of the store: each call's input checked (an
 * `InvalidInputError` naming the field, before anything reaches the store), its defaults
 * applied, as one engine operation, or for `createCodes` one code batch. The hold calls
 * (`reserve`, `commit`…) build theirs in the meter, which may serve them from a lease.
 */
import { canonicalCode, generateCode, hashCode } from '../engine/codes.js'
import { codeBatchFingerprint } from '../engine/idempotency.js'
import type {
  AdjustOp,
  CodeRecord,
  ConfigureOp,
  DebitOp,
  GrantOp,
  RedeemOp,
  StartCycleOp,
  StopCycleOp,
} from '../engine/state.js'
import { InvalidInputError } from '../errors.js'
import {
  adjustOptionsSchema,
  checkAccount,
  checkAmount,
  configureSchema,
  createCodesSchema,
  debitOptionsSchema,
  grantOptionsSchema,
  metadataOf,
  parse,
  redeemOptionsSchema,
  startCycleSchema,
  stopCycleSchema,
} from '../protocol/validation.js'
import { newId } from '../store/ids.js'
import type { CodeBatch } from '../store/store.js'
import type { CreateCodesResult, Metadata } from '../types.js'
import type {
  CreateCodesOptions,
  GrantOptions,
  MutationOptions,
  StartCycleOptions,
} from './operation-options.js'

export function grantOperation(
  account: string,
  amount: number,
  options: GrantOptions | undefined,
  now: () => number,
): GrantOp {
  checkAccount(account)
  checkAmount(amount, 'amount', 1)
  const o = parse(grantOptionsSchema, options)
  const expiresAt = o.expiresAt ?? null
  if (expiresAt !== null && expiresAt <= now()) {
    throw new InvalidInputError('expiresAt', 'must be in the future')
  }
  return {
    type: 'grant',
    amount,
    expiresAt,
    validityDays: o.validityDays ?? null,
    priority: o.priority ?? 50,
    category: o.category ?? 'paid',
    metadata: metadataOf(o.metadata),
    idempotencyKey: o.idempotencyKey,
  }
}

export function debitOperation(
  account: string,
  amount: number,
  options: MutationOptions | undefined,
): DebitOp {
  checkAccount(account)
  checkAmount(amount)
  const o = options === undefined ? undefined : parse(debitOptionsSchema, options)
  return {
    type: 'debit',
    amount,
    metadata: metadataOf(o?.metadata),
    idempotencyKey: o?.idempotencyKey,
  }
}

export function adjustOperation(
  account: string,
  delta: number,
  options: { reason?: string; metadata?: Metadata; idempotencyKey?: string } | undefined,
): AdjustOp {
  checkAccount(account)
  if (!Number.isSafeInteger(delta) || delta === 0) {
    throw new InvalidInputError('delta', 'must be a non-zero safe integer')
  }
  const o = parse(adjustOptionsSchema, options)
  return {
    type: 'adjust',
    delta,
    reason: o.reason ?? 'adjustment',
    metadata: metadataOf(o.metadata),
    idempotencyKey: o.idempotencyKey,
  }
}

export function configureOperation(account: string, settings: unknown): ConfigureOp {
  checkAccount(account)
  // The call's deadline is not part of the operation.
  const { timeoutMs: _deadline, ...s } = parse(configureSchema, settings, 'settings')
  return { type: 'configure', ...s }
}

export function startCycleOperation(account: string, options: StartCycleOptions): StartCycleOp {
  checkAccount(account)
  const o = parse(startCycleSchema, options)
  return {
    type: 'startCycle',
    amount: o.amount,
    every: o.every,
    rolloverMax: o.rollover?.max ?? null,
    priority: o.priority ?? 50,
    category: o.category ?? 'paid',
    idempotencyKey: o.idempotencyKey,
  }
}

export function stopCycleOperation(
  account: string,
  options: { idempotencyKey?: string } | undefined,
): StopCycleOp {
  checkAccount(account)
  const o = parse(stopCycleSchema, options)
  return { type: 'stopCycle', idempotencyKey: o.idempotencyKey }
}

export function redeemOperation(
  account: string,
  code: string,
  options: { idempotencyKey?: string } | undefined,
): RedeemOp {
  checkAccount(account)
  const canonical = canonicalCode(code)
  const o = parse(redeemOptionsSchema, options)
  return { type: 'redeem', codeHash: hashCode(canonical), idempotencyKey: o.idempotencyKey }
}

/** The `createCodes` options, checked: the batch is made once the store is ready. */
export function parseCreateCodes(options: CreateCodesOptions) {
  return parse(createCodesSchema, options)
}

/**
 * A batch of new codes: the plaintext codes (returned once), the hashed records the store
 * keeps, and the summary a replay of the same idempotency key answers with.
 */
export function codeBatch(
  o: ReturnType<typeof parseCreateCodes>,
  now: number,
): { batch: CodeBatch; codes: string[]; summary: Omit<CreateCodesResult, 'codes' | 'replayed'> } {
  const codeExpiresAt = o.codeExpiresAt ?? null
  if (codeExpiresAt !== null && codeExpiresAt <= now) {
    throw new InvalidInputError('codeExpiresAt', 'must be in the future')
  }
  const prefix = o.prefix ?? 'TG'
  const batchId = newId('cdb', now)
  const codes: string[] = []
  const records: CodeRecord[] = []
  const seen = new Set<string>()
  while (codes.length < o.count) {
    const code = generateCode(prefix)
    if (seen.has(code)) continue
    seen.add(code)
    codes.push(code)
    records.push({
      hash: hashCode(code),
      batchId,
      credits: o.credits,
      validityDays: o.validityDays ?? null,
      codeExpiresAt,
      maxRedemptions: o.maxRedemptions ?? 1,
      redemptions: 0,
      priority: o.priority ?? 50,
      category: o.category ?? 'promotional',
      createdAt: now,
    })
  }
  const summary = { batchId, count: o.count, credits: o.credits, codeExpiresAt }
  const { idempotencyKey, ...input } = o
  const idempotency =
    idempotencyKey === undefined
      ? null
      : {
          key: idempotencyKey,
          fingerprint: codeBatchFingerprint(input),
          result: summary,
        }
  return { batch: { batchId, codes: records, idempotency, now }, codes, summary }
}
