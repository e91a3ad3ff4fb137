import { isTollgateError } from '@tollgate/core'
import type { Admission } from '@tollgate/core/metering'
import { type TRPC_ERROR_CODE_KEY, TRPCError } from '@trpc/server'

/** A refusal as the request-metering kit reports it. */
type Refusal = Extract<Admission, { type: 'refused' }>

/**
 * tRPC codes for the HTTP statuses a refusal carries. Anything else (a misconfigured HTTP
 * store's 401, say) is the server's problem, not the caller's, so it becomes a 500.
 */
const CODES: Record<number, TRPC_ERROR_CODE_KEY> = {
  400: 'BAD_REQUEST',
  402: 'PAYMENT_REQUIRED',
  429: 'TOO_MANY_REQUESTS',
  503: 'SERVICE_UNAVAILABLE',
}

/**
 * The `TRPCError` a refused call throws: `PAYMENT_REQUIRED` (402) when the account is short,
 * `SERVICE_UNAVAILABLE` (503) when the ledger is down under `failMode: 'closed'`, `BAD_REQUEST`
 * (400) for an account id or cost the call itself made invalid. The Tollgate error is the
 * `cause`, so `account`, `required` and `available` stay reachable (see {@link creditsErrorData}).
 */
export function refusalError(refusal: Refusal): TRPCError {
  return new TRPCError({
    code: CODES[refusal.problem.status] ?? 'INTERNAL_SERVER_ERROR',
    message: refusal.problem.detail,
    cause: refusal.error,
  })
}

/** What a client needs to know about a call refused for want of credits. */
export interface CreditsErrorData {
  account: string
  /** The credits the call needed. */
  required: number
  /** The credits the account had available. */
  available: number
}

/**
 * The `{ account, required, available }` of a `PAYMENT_REQUIRED` error thrown by `metered()`,
 * or null for any other error. Put it into the error shape so clients see it.
 * @example
 * const t = initTRPC.create({
 *   errorFormatter: ({ shape, error }) => ({
 *     ...shape,
 *     data: { ...shape.data, credits: creditsErrorData(error) },
 *   }),
 * })
 * // client: if (err.data?.credits) showTopUp(err.data.credits.required)
 */
export function creditsErrorData(error: unknown): CreditsErrorData | null {
  const cause =
    isTollgateError(error) || typeof error !== 'object' || error === null
      ? error
      : (error as { cause?: unknown }).cause
  // By code, not instanceof: two copies of @tollgate/core may be loaded.
  if (!isTollgateError(cause, 'insufficient_credits')) return null
  const e = cause as unknown as CreditsErrorData
  return { account: e.account, required: e.required, available: e.available }
}
