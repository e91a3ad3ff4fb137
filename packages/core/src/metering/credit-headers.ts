/**
 * The credit headers of a metered response, named and written once for every adapter: the
 * `X-Credits-Cost` / `X-Credits-Remaining` pair (DESIGN section 3) and, when the app opts in,
 * the IETF `RateLimit-Policy` / `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers-11),
 * so clients that already read those fields see the account's credits without Tollgate's own
 * names. docs/decisions.md ("Middleware", standard headers) says how credits map to them.
 */
import { InvalidInputError } from '../errors.js'

/** The header names of a metering kit; null (the whole) when no header is written. */
export interface CreditHeaderNames {
  /** The reserved cost's header (`X-Credits-Cost`); null with `headers: false`. */
  cost: string | null
  /** What the account has available after the reserve (`X-Credits-Remaining`); null likewise. */
  remaining: string | null
  /** The quota policy the `RateLimit` fields name (`credits`); null without `standardHeaders`. */
  policy: string | null
}

/** The quota policy's name when `standardHeaders: true`. */
export const DEFAULT_RATE_LIMIT_POLICY = 'credits'

/** RFC 7230 token: what a header name may contain. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * What a policy name may be: printable ASCII without `"` or `\`, so it is a Structured Field
 * String (RFC 9651) written between quotes as it is.
 */
const POLICY_NAME = /^[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}$/

/**
 * The largest Structured Field Integer (15 digits, RFC 9651). A balance beyond it (a safe
 * integer may have 16) is reported as this, so the field stays one a client can parse.
 */
const SF_INTEGER_MAX = 999_999_999_999_999

function headerName(value: unknown, fallback: string, field: string): string {
  if (value === undefined) return fallback
  if (typeof value !== 'string' || !HEADER_NAME.test(value)) {
    throw new InvalidInputError(field, 'must be a valid HTTP header name')
  }
  return value
}

/**
 * The names of the `headers` and `standardHeaders` options, checked once at creation: an
 * invalid one is an `InvalidInputError` naming the field. Null when both are off.
 */
export function resolveCreditHeaders(
  headers: unknown,
  standard: unknown,
): CreditHeaderNames | null {
  const names: CreditHeaderNames = { cost: null, remaining: null, policy: null }
  if (headers === true) {
    names.cost = 'X-Credits-Cost'
    names.remaining = 'X-Credits-Remaining'
  } else if (typeof headers === 'object' && headers !== null) {
    const h = headers as { cost?: unknown; remaining?: unknown }
    names.cost = headerName(h.cost, 'X-Credits-Cost', 'headers.cost')
    names.remaining = headerName(h.remaining, 'X-Credits-Remaining', 'headers.remaining')
  } else if (headers !== false) {
    throw new InvalidInputError('headers', 'must be a boolean or { cost, remaining }')
  }
  if (standard === true) names.policy = DEFAULT_RATE_LIMIT_POLICY
  else if (typeof standard === 'object' && standard !== null) {
    const policy = (standard as { policy?: unknown }).policy ?? DEFAULT_RATE_LIMIT_POLICY
    if (typeof policy !== 'string' || !POLICY_NAME.test(policy)) {
      throw new InvalidInputError(
        'standardHeaders.policy',
        'must be 1-64 printable ASCII characters without " or \\',
      )
    }
    names.policy = policy
  } else if (standard !== false) {
    throw new InvalidInputError('standardHeaders', 'must be a boolean or { policy }')
  }
  return names.cost === null && names.policy === null ? null : names
}

function sfInteger(n: number): number {
  return Math.min(Math.max(0, n), SF_INTEGER_MAX)
}

/**
 * The credit headers for one response as name → value: the cost reserved, what the account has
 * `available` after the reserve, and (for `RateLimit-Policy`) its `total` credits, held ones
 * included, when known. `RateLimit-Policy: "credits";q=<total>` and
 * `RateLimit: "credits";r=<available>`: no window (`w`, `t`), since prepaid credits do not
 * reset, and no quota unit (`qu`; `credits` is not a registered unit). Empty when `names` is null.
 * @example
 * creditHeaderFields(names, 3, 97, 100)
 * // { 'X-Credits-Cost': '3', 'X-Credits-Remaining': '97',
 * //   'RateLimit-Policy': '"credits";q=100', RateLimit: '"credits";r=97' }
 */
export function creditHeaderFields(
  names: CreditHeaderNames | null,
  cost: number,
  available: number,
  total: number | null,
): Record<string, string> {
  const out: Record<string, string> = {}
  if (names === null) return out
  if (names.cost !== null) out[names.cost] = String(cost)
  if (names.remaining !== null) out[names.remaining] = String(available)
  if (names.policy !== null) {
    if (total !== null) out['RateLimit-Policy'] = `"${names.policy}";q=${sfInteger(total)}`
    out.RateLimit = `"${names.policy}";r=${sfInteger(available)}`
  }
  return out
}
