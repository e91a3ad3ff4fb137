/**
 * Idempotency (DESIGN §1): the fingerprint of an operation's input, and what a repeated key
 * means (replay, or conflict). Operations go through {@link applyOperation}; a batch of redeem
 * codes, which touches no account, through {@link decideCodeBatch}, which every store calls.
 *
 * Fingerprints are canonical: each operation type has a fixed list of fields, in a fixed order,
 * and nested objects (metadata) are written with their keys sorted, so the same input has the
 * same fingerprint however the object carrying it was built (in the meter, parsed from the wire,
 * by a store author). The field order is the one the meter has always built operations in, so
 * a fingerprint stored by an earlier version is byte for byte what this one computes for the
 * same input, unless the input's metadata had its keys out of order; for those,
 * {@link fingerprintMatches} also accepts the earlier, as-built form. See docs/decisions.md,
 * "Idempotency".
 */
import type { IdempotencyRecord, Operation } from './state.js'

type OpOf<T extends Operation['type']> = Extract<Operation, { type: T }>
/** Fields of an operation that are not its input: the key itself and how entries show it. */
type NotInput = 'idempotencyKey' | 'hideKey'

/**
 * The input fields of each operation type, in the order the fingerprint writes them (the order
 * the meter builds operations in, and the wire schema keeps: stored fingerprints depend on it,
 * so never reorder; a new field goes at the end of its list).
 */
const INPUT_FIELDS = {
  grant: ['type', 'amount', 'expiresAt', 'validityDays', 'priority', 'category', 'metadata'],
  debit: ['type', 'amount', 'metadata'],
  adjust: ['type', 'delta', 'reason', 'metadata'],
  reserve: ['type', 'amount', 'ttlMs', 'metadata'],
  commit: ['type', 'holdId', 'actual', 'overage', 'metadata'],
  release: ['type', 'holdId', 'metadata'],
  extend: ['type', 'holdId', 'ttlMs'],
  increase: ['type', 'holdId', 'amount', 'partial'],
  balance: ['type'],
  configure: ['type', 'lowBalanceThreshold', 'overdraftLimit'],
  startCycle: ['type', 'amount', 'every', 'rolloverMax', 'priority', 'category'],
  stopCycle: ['type'],
  redeem: ['type', 'codeHash'],
} as const satisfies { [T in Operation['type']]: readonly Exclude<keyof OpOf<T>, NotInput>[] }

// A field added to an operation type but not to its list above would be left out of the
// fingerprint, and a retry with another value would replay: this fails to compile instead.
type Unlisted = {
  [T in Operation['type']]: Exclude<keyof OpOf<T>, NotInput | (typeof INPUT_FIELDS)[T][number]>
}[Operation['type']]
const everyFieldListed: [Unlisted] extends [never] ? true : Unlisted = true
void everyFieldListed

/** The input fields of an operation type, in fingerprint order (for tests and store authors). */
export function fingerprintFields(type: Operation['type']): readonly string[] {
  return INPUT_FIELDS[type]
}

/**
 * JSON with object keys sorted (by UTF-16 code units), recursively; otherwise what
 * `JSON.stringify` writes (undefined members left out, `toJSON` honoured).
 */
export function canonicalJson(value: unknown): string {
  if (value !== null && typeof value === 'object') {
    const json = (value as { toJSON?: unknown }).toJSON
    if (typeof json === 'function') return canonicalJson(json.call(value))
    if (Array.isArray(value)) {
      let out = '['
      for (let i = 0; i < value.length; i++) {
        if (i > 0) out += ','
        const item = value[i]
        out += item === undefined || typeof item === 'function' ? 'null' : canonicalJson(item)
      }
      return `${out}]`
    }
    let out = '{'
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k]
      if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue
      out += `${out.length > 1 ? ',' : ''}${JSON.stringify(k)}:${canonicalJson(v)}`
    }
    return `${out}}`
  }
  return JSON.stringify(value) ?? 'null'
}

/**
 * The canonical digest of an operation's input: its type's fields in a fixed order (undefined
 * ones left out), nested objects with sorted keys; the idempotency key is not input.
 * @example fingerprintOf({ type: 'debit', amount: 5, metadata: {} }) // '{"type":"debit","amount":5,"metadata":{}}'
 */
export function fingerprintOf(op: Operation): string {
  const fields: readonly string[] = INPUT_FIELDS[op.type]
  const input = op as unknown as Record<string, unknown>
  let out = '{'
  for (const f of fields) {
    const v = input[f]
    if (v === undefined) continue
    out += `${out.length > 1 ? ',' : ''}"${f}":${canonicalJson(v)}`
  }
  return `${out}}`
}

/**
 * Whether a stored fingerprint is the operation's. Besides the canonical form, the form
 * earlier versions stored (the operation's JSON as built, key order as it came) is accepted:
 * equal JSON is the same input, so this never replays another input, and a retry that spans an
 * upgrade still replays when its metadata's keys were not in sorted order.
 */
export function fingerprintMatches(op: Operation, stored: string): boolean {
  if (stored === fingerprintOf(op)) return true
  const { idempotencyKey: _key, hideKey: _hide, ...asBuilt } = op
  return stored === JSON.stringify(asBuilt)
}

/** What decides a repeated key of an account operation: the record saved under it. */
export type KeyDecision = 'new' | 'replay' | 'conflict'

/**
 * What an operation carrying an idempotency key does, given the record saved under that key in
 * the tenant (null: none): runs (`new`), replays the record's result (`replay`: same account,
 * same input), or is refused with `IdempotencyConflictError` (`conflict`).
 */
export function decideKey(
  op: Operation,
  account: string,
  saved: IdempotencyRecord | null,
): KeyDecision {
  if (saved === null) return 'new'
  return saved.account === account && fingerprintMatches(op, saved.fingerprint)
    ? 'replay'
    : 'conflict'
}

/** The options a batch of redeem codes was created with (`meter.createCodes` minus the key). */
export interface CodeBatchInput {
  credits: number
  count: number
  prefix?: string | undefined
  codeExpiresAt?: number | undefined
  validityDays?: number | undefined
  maxRedemptions?: number | undefined
  priority?: number | undefined
  category?: string | undefined
}

/** Fingerprint order of {@link CodeBatchInput} (the order of `meter.createCodes`' options). */
const CODE_BATCH_FIELDS = [
  'credits',
  'count',
  'prefix',
  'codeExpiresAt',
  'validityDays',
  'maxRedemptions',
  'priority',
  'category',
] as const satisfies readonly (keyof CodeBatchInput)[]

/**
 * The fingerprint of a code batch's input: `["createCodes",{…}]` with the fields in a fixed
 * order (undefined ones left out), the form stored since code batches took keys.
 */
export function codeBatchFingerprint(input: CodeBatchInput): string {
  let out = '{'
  for (const f of CODE_BATCH_FIELDS) {
    const v = input[f]
    if (v === undefined) continue
    out += `${out.length > 1 ? ',' : ''}"${f}":${canonicalJson(v)}`
  }
  return `["createCodes",${out}}]`
}

/** The idempotency part of a code batch: the key, its input's fingerprint, the result to keep. */
export interface CodeBatchKey {
  key: string
  fingerprint: string
  result: unknown
}

/** What a code batch with an idempotency key does. */
export type CodeBatchDecision =
  | { status: 'created'; save: IdempotencyRecord }
  | { status: 'replayed'; result: unknown }
  | { status: 'conflict' }

/**
 * The record a code batch saves under its key: tenant-level (account `''`, which no account
 * operation's record has, so the key of one never replays the other).
 */
export function codeBatchRecord(incoming: CodeBatchKey, now: number): IdempotencyRecord {
  return {
    key: incoming.key,
    account: '',
    fingerprint: incoming.fingerprint,
    result: incoming.result,
    createdAt: now,
  }
}

/**
 * The replay/conflict decision of `createCodes` with an idempotency key, given the record saved
 * under the key in the tenant (null: none). No record: store the codes and save
 * {@link codeBatchRecord}. A code batch's record with the same fingerprint: `replayed` with its
 * result, storing nothing. Anything else (another input, or the key of an account operation):
 * `conflict`. A store that inserts the record first (a unique index serialising concurrent
 * batches) calls it with the record it found when the insert did nothing.
 * @example
 * const d = decideCodeBatch(records.get(batch.idempotency.key) ?? null, batch.idempotency, batch.now)
 * if (d.status !== 'created') return d
 */
export function decideCodeBatch(
  saved: Pick<IdempotencyRecord, 'account' | 'fingerprint' | 'result'> | null,
  incoming: CodeBatchKey,
  now: number,
): CodeBatchDecision {
  if (saved === null) return { status: 'created', save: codeBatchRecord(incoming, now) }
  return saved.account === '' && saved.fingerprint === incoming.fingerprint
    ? { status: 'replayed', result: saved.result }
    : { status: 'conflict' }
}
