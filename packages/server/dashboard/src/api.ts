/**
 * The REST client of the dashboard: the key lives in `sessionStorage` only (gone with the tab,
 * never in localStorage or a cookie), every call carries it as a Bearer token, and refusals are
 * parsed as problem+json.
 */

const KEY_ITEM = 'tollgate.key'
const TENANT_ITEM = 'tollgate.tenant'
/** How long one API call may take before the dashboard gives up on it. */
const REQUEST_TIMEOUT_MS = 30_000

/** RFC 9457 problem details as the server sends them. */
export interface Problem {
  type?: string
  title: string
  status: number
  detail: string
  code: string
  field?: string
  required?: number
  available?: number
}

/** A refused or failed call. */
export class ApiError extends Error {
  readonly status: number
  readonly problem: Problem
  constructor(problem: Problem) {
    super(problem.detail || problem.title)
    this.status = problem.status
    this.problem = problem
  }
}

/** The signed-in key and the tenant an admin key acts for (empty: its default). */
export interface Session {
  key: string
  tenant: string
  admin: boolean
}

export function loadSession(): { key: string; tenant: string } | null {
  const key = sessionStorage.getItem(KEY_ITEM)
  return key === null ? null : { key, tenant: sessionStorage.getItem(TENANT_ITEM) ?? '' }
}

export function saveSession(key: string, tenant: string): void {
  sessionStorage.setItem(KEY_ITEM, key)
  sessionStorage.setItem(TENANT_ITEM, tenant)
}

export function clearSession(): void {
  sessionStorage.removeItem(KEY_ITEM)
  sessionStorage.removeItem(TENANT_ITEM)
}

/** The headers of every call of `session`. */
export function authHeaders(session: Pick<Session, 'key' | 'tenant'>): Record<string, string> {
  const headers: Record<string, string> = { authorization: `Bearer ${session.key}` }
  if (session.tenant !== '') headers['tollgate-tenant'] = session.tenant
  return headers
}

export interface CallOptions {
  body?: unknown
  /** Sent as `Idempotency-Key` (mutations). */
  idempotencyKey?: string
  query?: Record<string, string | number | boolean | null | undefined>
}

/** A query string of the defined values. */
export function queryString(query: CallOptions['query'] = {}): string {
  const params = new URLSearchParams()
  for (const [k, v] of Object.entries(query)) {
    if (v !== null && v !== undefined && v !== '' && v !== false) params.set(k, String(v))
  }
  const text = params.toString()
  return text === '' ? '' : `?${text}`
}

/** Encodes an account id as one path segment. */
export function seg(id: string): string {
  return encodeURIComponent(id)
}

let unauthorized: (() => void) | null = null

/**
 * What to do when a call of the signed-in session is refused with 401 (the key was revoked):
 * the shell signs out. Null while signed out (the sign-in probes expect 401s).
 */
export function onUnauthorized(handler: (() => void) | null): void {
  unauthorized = handler
}

/** One API call; resolves the JSON body, rejects with {@link ApiError}. */
export async function api<T>(
  session: Pick<Session, 'key' | 'tenant'>,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  options: CallOptions = {},
): Promise<T> {
  const headers = authHeaders(session)
  if (options.body !== undefined) headers['content-type'] = 'application/json'
  if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey
  let res: Response
  try {
    res = await fetch(path + queryString(options.query), {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      cache: 'no-store',
    })
  } catch (err) {
    throw new ApiError({
      title: 'Network error',
      status: 0,
      code: 'network',
      detail: `the server did not answer (${err instanceof Error ? err.message : String(err)})`,
    })
  }
  const text = await res.text()
  let body: unknown = null
  try {
    body = text === '' ? null : JSON.parse(text)
  } catch {
    body = null
  }
  if (!res.ok) {
    if (res.status === 401) unauthorized?.()
    const p = (body ?? {}) as Partial<Problem>
    throw new ApiError({
      ...p,
      title: p.title ?? res.statusText,
      status: res.status,
      code: p.code ?? 'http',
      detail: p.detail ?? `HTTP ${res.status}`,
    })
  }
  return body as T
}

/** A short, human sentence for an error (the field it names, the credits missing). */
export function describeError(err: unknown): string {
  if (!(err instanceof ApiError)) return err instanceof Error ? err.message : String(err)
  const p = err.problem
  if (p.code === 'insufficient_credits' && p.required !== undefined) {
    return `Insufficient credits: ${p.required} required, ${p.available ?? 0} available.`
  }
  const named = p.field === undefined || p.detail.startsWith(p.field)
  const field = named ? '' : ` (${p.field})`
  return `${p.title}${field}: ${p.detail}`
}
