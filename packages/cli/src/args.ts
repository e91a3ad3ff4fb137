/**
 * Argument parsers for commander. Each refuses a bad value with `InvalidArgumentError` before
 * any request is sent; the program turns that into exit code 2.
 */
import type { CycleEvery, LedgerEntryType } from '@tollgate/core'
import { LEDGER_ENTRY_TYPES } from '@tollgate/core'
import { InvalidArgumentError } from 'commander'

/** An amount of credits: a non-negative safe integer; `_` and `,` may group digits (`1_000`). */
export function parseAmount(value: string): number {
  if (!/^\d[\d_,]*$/.test(value))
    throw new InvalidArgumentError('must be a whole number of credits')
  const n = Number(value.replace(/[_,]/g, ''))
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError('is too large')
  return n
}

/** A positive safe integer (counts, days, limits). */
export function parsePositive(value: string): number {
  const n = parseAmount(value)
  if (n < 1) throw new InvalidArgumentError('must be at least 1')
  return n
}

/** A non-negative safe integer (priorities, rollover caps). */
export function parseNonNegative(value: string): number {
  return parseAmount(value)
}

/** A TCP port, 0 (any free one) to 65535. */
export function parsePort(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN
  if (!Number.isInteger(n) || n > 65_535) throw new InvalidArgumentError('must be a port, 0–65535')
  return n
}

/** A point in time: ISO 8601 (`2027-01-31`, `2027-01-31T12:00:00Z`) or ms since epoch. */
export function parseTime(value: string): number {
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value)
  if (!Number.isSafeInteger(ms)) {
    throw new InvalidArgumentError('must be an ISO 8601 date/time or ms since epoch')
  }
  return ms
}

/** An account id: 1–200 characters (DESIGN §1); the server checks the rest. */
export function parseAccount(value: string): string {
  if (value.length === 0 || [...value].length > 200) {
    throw new InvalidArgumentError('must be 1–200 characters')
  }
  return value
}

/** A cycle period: `day`, `week`, `month`, or a number of days. */
export function parseEvery(value: string): CycleEvery {
  if (value === 'day' || value === 'week' || value === 'month') return value
  if (/^\d+$/.test(value) && Number(value) >= 1) return { days: Number(value) }
  throw new InvalidArgumentError('must be day, week, month or a number of days')
}

/** A code prefix: 1–10 letters and digits, upper-cased. */
export function parsePrefix(value: string): string {
  if (!/^[A-Za-z0-9]{1,10}$/.test(value)) {
    throw new InvalidArgumentError('must be 1–10 letters and digits')
  }
  return value.toUpperCase()
}

/**
 * Text an HTTP header can carry as it is: Latin-1 without control characters (Node reads header
 * values as Latin-1, and undici refuses line breaks and NUL outright).
 */
export const HEADER_TEXT = /^[\x20-\x7e\xa0-\xff]+$/

/** An idempotency key: 1–200 characters (the CLI may suffix it, and the server allows 255). */
export function parseIdempotencyKey(value: string): string {
  if (value.length === 0 || value.length > 200) {
    throw new InvalidArgumentError('must be 1–200 characters')
  }
  // It travels in the Idempotency-Key header: refuse here what the request could not carry.
  if (!HEADER_TEXT.test(value)) {
    throw new InvalidArgumentError('must be Latin-1 text without control characters')
  }
  return value
}

/** Ledger entry types, comma-separated: `grant,debit`. */
export function parseTypes(value: string): LedgerEntryType[] {
  const types = value.split(',').map((t) => t.trim())
  for (const t of types) {
    if (!(LEDGER_ENTRY_TYPES as readonly string[]).includes(t)) {
      throw new InvalidArgumentError(
        `must be a comma-separated list of ${LEDGER_ENTRY_TYPES.join(', ')}`,
      )
    }
  }
  return types as LedgerEntryType[]
}

/** A JSON object, for `--metadata`. */
export function parseMetadata(value: string): Record<string, unknown> {
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch {
    throw new InvalidArgumentError('must be a JSON object')
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InvalidArgumentError('must be a JSON object')
  }
  return parsed as Record<string, unknown>
}
