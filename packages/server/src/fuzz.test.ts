/**
 * Malformed requests over every route family, sent byte for byte on real sockets: no answer is a
 * 5xx, and every 4xx is problem+json with a `code`. TOLLGATE_FUZZ_REQUESTS scales it (default
 * 2,000 per store); TOLLGATE_FUZZ_SEED replays a run.
 */
import fc from 'fast-check'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { describeSqlStores, rawRequest, startServer, type TestServer } from './test-support.js'

const REQUESTS = Number(process.env.TOLLGATE_FUZZ_REQUESTS ?? 2_000)
const SEED = process.env.TOLLGATE_FUZZ_SEED ? Number(process.env.TOLLGATE_FUZZ_SEED) : undefined

// ---- values -------------------------------------------------------------------------------

const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c))
/** Text that stores, parsers and schemas find hard. */
const nastyText = fc.oneof(
  fc.constantFrom(
    '',
    '\u0000',
    'a\u0000b',
    '\uD800',
    'x\uDFFF',
    '😀',
    'é',
    ' ',
    '%',
    '\\',
    '"',
    '__proto__',
    'constructor',
    'null',
    '‮rtl',
    'x'.repeat(201),
    'y'.repeat(10_001),
    'TG-0000-0000-0000-0',
    'hld_x',
  ),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.string({ unit: 'binary-ascii', maxLength: 20 }),
  fc.string({ maxLength: 20 }),
  fc.string({ unit: loneSurrogate, minLength: 1, maxLength: 3 }),
)
const nastyNumber = fc.oneof(
  fc.constantFrom(0, -1, 0.5, 1.5, 2 ** 53, -(2 ** 53), 1e300, -0, 36_501, 86_400_001),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
)
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  nastyText,
  nastyNumber,
  fc.boolean(),
  fc.constant(null),
  fc.jsonValue({ maxDepth: 3 }),
  fc.dictionary(nastyText, fc.oneof(nastyText, nastyNumber), { maxKeys: 4 }),
  fc.array(nastyText, { maxLength: 3 }),
)

/** Each field of a route: a plausible value or a hostile one, or left out. */
type Fields = Record<string, fc.Arbitrary<unknown>>
function bodyOf(fields: Fields): fc.Arbitrary<unknown> {
  const entries = Object.entries(fields).map(([k, valid]) =>
    fc.option(
      fc
        .oneof({ weight: 2, arbitrary: valid }, { weight: 1, arbitrary: anyValue })
        .map((v) => [k, v] as const),
      { nil: undefined, freq: 4 },
    ),
  )
  return fc
    .tuple(
      fc.tuple(...entries),
      fc.option(fc.tuple(nastyText, anyValue), { nil: undefined, freq: 5 }),
    )
    .map(([pairs, extra]) => {
      const o: Record<string, unknown> = {}
      for (const p of pairs) if (p) o[p[0]] = p[1]
      if (extra) o[extra[0]] = extra[1]
      return o
    })
}

const amount = fc.oneof(fc.integer({ min: 1, max: 1_000 }), nastyNumber)
const metadata = fc.oneof(
  fc.constant({ feature: 'chat' }),
  fc.dictionary(nastyText, anyValue, { maxKeys: 3 }),
)
const ttlMs = fc.integer({ min: 1_000, max: 86_400_000 })
const later = fc.integer({ min: Date.UTC(2100, 0, 1), max: Date.UTC(2200, 0, 1) })
const days = fc.integer({ min: 1, max: 365 })
const priority = fc.integer({ min: 0, max: 100 })
const text = fc.oneof(fc.string({ minLength: 1, maxLength: 10 }), nastyText)

const opTypes = [
  'grant',
  'debit',
  'adjust',
  'reserve',
  'commit',
  'release',
  'extend',
  'balance',
  'configure',
  'startCycle',
  'stopCycle',
  'redeem',
  'nope',
]
const operation = bodyOf({
  type: fc.constantFrom(...opTypes),
  amount,
  delta: nastyNumber,
  reason: text,
  metadata,
  idempotencyKey: text,
  holdId: text,
  ttlMs,
  actual: amount,
  overage: fc.constantFrom('clamp', 'reject', 'overdraft', 'x'),
  expiresAt: nastyNumber,
  validityDays: nastyNumber,
  priority: nastyNumber,
  category: fc.constantFrom('paid', 'promotional', 'x'),
  every: fc.oneof(fc.constantFrom('day', 'week', 'year'), fc.record({ days: nastyNumber })),
  rolloverMax: nastyNumber,
  codeHash: fc.oneof(fc.constant('ab'.repeat(32)), text),
  lowBalanceThreshold: nastyNumber,
  overdraftLimit: nastyNumber,
})
const engineConfig = bodyOf({
  lowBalanceThreshold: fc.constantFrom(null, 5),
  overdraftLimit: fc.constantFrom(null, 5),
  overage: fc.constantFrom('clamp', 'x'),
  redeemMaxFailures: fc.integer({ min: 1, max: 10 }),
  redeemWindowMs: fc.integer({ min: 1, max: 60_000 }),
})
const codeRecord = bodyOf({
  hash: fc.oneof(fc.constant('cd'.repeat(32)), text),
  batchId: text,
  credits: amount,
  validityDays: fc.oneof(fc.constant(null), nastyNumber),
  codeExpiresAt: fc.oneof(fc.constant(null), nastyNumber),
  maxRedemptions: amount,
  redemptions: fc.constantFrom(0, 1),
  priority: fc.constantFrom(50, -1),
  category: fc.constantFrom('paid', 'x'),
  createdAt: nastyNumber,
})

// ---- paths ----------------------------------------------------------------------------------

/** A path segment: percent-encoded text (lone surrogates as CESU-8 bytes) or broken encoding. */
const segment = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('alice', 'bob', 'hld_x', 'default', 'k1') },
  {
    weight: 3,
    arbitrary: nastyText.map((s) => {
      try {
        return encodeURIComponent(s)
      } catch {
        return s.replace(/[\uD800-\uDFFF]/g, '%ED%A0%80').replace(/[^%\w-]/g, encodeURIComponent)
      }
    }),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '%',
      '%zz',
      '%E0%A4',
      '%ED%A0%80',
      '%00',
      '%C0%80',
      '%FF',
      '%2F',
      '..',
      '',
      'a'.repeat(201),
      'b'.repeat(3_000),
      '%41'.repeat(900),
    ),
  },
)
const query = fc.oneof(
  fc.constant(''),
  fc
    .array(
      fc.tuple(fc.constantFrom('limit', 'cursor', 'types', 'from', 'to', 'tenant', 'x'), segment),
      {
        maxLength: 4,
      },
    )
    .map((pairs) => `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`),
  fc.constantFrom('?%', '?limit=%zz', '?types=grant,,nope', '?limit=1&limit=2', '?&&=&'),
)

interface Route {
  family: string
  method: fc.Arbitrary<string>
  path: fc.Arbitrary<string>
  body: fc.Arbitrary<unknown>
}
const methods = (...m: string[]) =>
  fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...m) },
    { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS') },
  )
const account = (tail: string) => segment.map((a) => `/v1/accounts/${a}/${tail}`)
const hold = (tail: string) => segment.map((h) => `/v1/holds/${h}/${tail}`)
const noBody = fc.constant(undefined)

const ROUTES: Route[] = [
  {
    family: 'accounts',
    method: methods('POST'),
    path: account('grants'),
    body: bodyOf({
      amount,
      expiresAt: later,
      validityDays: days,
      priority,
      category: fc.constantFrom('paid', 'x'),
      metadata,
    }),
  },
  {
    family: 'accounts',
    method: methods('POST'),
    path: account('debits'),
    body: bodyOf({ amount, metadata }),
  },
  {
    family: 'accounts',
    method: methods('POST'),
    path: account('adjustments'),
    body: bodyOf({ delta: nastyNumber, reason: text, metadata }),
  },
  {
    family: 'accounts',
    method: methods('GET'),
    path: fc.tuple(account('balance'), query).map(([p, q]) => p + q),
    body: noBody,
  },
  {
    family: 'accounts',
    method: methods('GET'),
    path: fc.tuple(account('ledger'), query).map(([p, q]) => p + q),
    body: noBody,
  },
  {
    family: 'settings',
    method: methods('PUT'),
    path: account('settings'),
    body: bodyOf({ lowBalanceThreshold: nastyNumber, overdraftLimit: nastyNumber }),
  },
  {
    family: 'accounts',
    method: methods('PUT', 'DELETE'),
    path: account('cycle'),
    body: bodyOf({
      amount,
      every: fc.constantFrom('day', 'year'),
      rollover: anyValue,
      priority: nastyNumber,
    }),
  },
  {
    family: 'holds',
    method: methods('POST'),
    path: account('holds'),
    body: bodyOf({ amount, ttlMs, metadata }),
  },
  {
    family: 'holds',
    method: methods('POST'),
    path: fc.constantFrom('commit', 'release', 'extend', 'increase').chain(hold),
    body: bodyOf({ actual: amount, overage: fc.constantFrom('clamp', 'x'), ttlMs, metadata }),
  },
  {
    family: 'codes',
    method: methods('POST'),
    path: fc.constant('/v1/codes'),
    body: bodyOf({
      credits: amount,
      count: fc.oneof(fc.integer({ min: 1, max: 3 }), nastyNumber),
      prefix: text,
      codeExpiresAt: nastyNumber,
      validityDays: nastyNumber,
      maxRedemptions: amount,
    }),
  },
  {
    family: 'codes',
    method: methods('POST'),
    path: account('redemptions'),
    body: bodyOf({ code: fc.oneof(fc.constant('TG-0000-0000-0000-0'), text) }),
  },
  {
    family: 'keys',
    method: methods('POST', 'GET'),
    path: fc.tuple(fc.constant('/v1/keys'), query).map(([p, q]) => p + q),
    body: bodyOf({ tenant: text, name: text, role: fc.constantFrom('admin', 'tenant', 'root') }),
  },
  {
    family: 'keys',
    method: methods('DELETE'),
    path: segment.map((id) => `/v1/keys/${id}`),
    body: noBody,
  },
  {
    family: 'store',
    method: methods('POST'),
    path: fc.constant('/v1/store/execute'),
    body: bodyOf({
      account: fc.oneof(fc.constant(null), text),
      op: operation,
      now: nastyNumber,
      config: engineConfig,
    }),
  },
  {
    family: 'store',
    method: methods('POST'),
    path: fc.constant('/v1/store/ledger'),
    body: bodyOf({
      account: text,
      limit: nastyNumber,
      before: nastyNumber,
      types: anyValue,
      from: nastyNumber,
      to: nastyNumber,
    }),
  },
  {
    family: 'store',
    method: methods('POST'),
    path: fc.constant('/v1/store/codes'),
    body: bodyOf({
      batchId: text,
      codes: fc.array(codeRecord, { maxLength: 3 }),
      idempotency: fc.oneof(
        fc.constant(null),
        bodyOf({ key: text, fingerprint: text, result: anyValue }),
      ),
      now: nastyNumber,
    }),
  },
  {
    family: 'store',
    method: methods('POST'),
    path: fc.constantFrom('/v1/store/due', '/v1/store/prune', '/v1/store/nope'),
    body: bodyOf({ now: nastyNumber, limit: nastyNumber, before: nastyNumber }),
  },
  {
    family: 'health',
    method: methods('GET', 'HEAD'),
    path: fc
      .tuple(fc.constantFrom('/healthz', '/readyz', '/openapi.json'), query)
      .map(([p, q]) => p + q),
    body: noBody,
  },
  {
    family: 'unknown',
    method: methods('GET', 'POST', 'PUT', 'PATCH', 'DELETE'),
    path: fc.oneof(
      fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => `/${s.join('/')}`),
      fc.constantFrom(
        '/v1/settings',
        '/v1/accounts',
        '/v1/usage',
        '/v1/webhooks',
        '/v2/x',
        '//',
        '/v1/',
      ),
      fc.webPath(),
    ),
    body: fc.oneof(noBody, anyValue),
  },
]

// ---- requests ---------------------------------------------------------------------------------

type Auth = 'none' | 'garbage' | 'unknown' | 'tenant' | 'admin' | 'admin-as'
interface Fuzzed {
  family: string
  method: string
  path: string
  auth: Auth
  /** The body as sent: JSON of the value, or a raw text. */
  body: string | undefined
  contentType: string | undefined
  extra: [string, string][]
}

const rawBody = fc.constantFrom(
  '{',
  '{"amount":',
  '[1,2',
  'nul',
  '{"__proto__":{"x":1}}',
  '{"amount":1}trailing',
  '"just a string"',
  '12',
  '',
  ' ',
  '\u0000',
)
const latin1 = fc.string({ unit: 'binary-ascii', maxLength: 40 })
const extraHeaders = fc.array(
  fc.oneof(
    fc.tuple(
      fc.constant('Idempotency-Key'),
      fc.oneof(latin1, fc.constant('k'.repeat(300)), fc.constant('tg-retry:x')),
    ),
    fc.tuple(fc.constant('Tollgate-Tenant'), fc.oneof(latin1, fc.constant('t'.repeat(300)))),
    // Past Node's 16 KiB of headers: 431 from the HTTP parser.
    fc.tuple(fc.constant('X-Padding'), fc.constantFrom('p'.repeat(20_000), 'p'.repeat(100))),
    fc.tuple(fc.constant('Content-Length'), fc.constantFrom('abc', '-1')),
    fc.tuple(fc.constant('Transfer-Encoding'), fc.constant('chunked')),
    fc.tuple(fc.constant('Content-Encoding'), fc.constantFrom('gzip', 'br')),
    fc.tuple(latin1, latin1),
  ),
  { maxLength: 2 },
)

const fuzzed: fc.Arbitrary<Fuzzed> = fc.constantFrom(...ROUTES).chain((route) =>
  fc.record({
    family: fc.constant(route.family),
    method: fc.oneof(
      { weight: 20, arbitrary: route.method },
      { weight: 1, arbitrary: fc.constantFrom('FOO', 'G ET', 'get') },
    ),
    path: route.path,
    auth: fc.constantFrom<Auth>(
      'none',
      'garbage',
      'unknown',
      'tenant',
      'tenant',
      'admin',
      'admin-as',
    ),
    body: fc.oneof(
      {
        weight: 6,
        arbitrary: route.body.map((b) => (b === undefined ? undefined : JSON.stringify(b))),
      },
      { weight: 1, arbitrary: rawBody },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)) },
    ),
    contentType: fc.oneof(
      { weight: 6, arbitrary: fc.constant('application/json') },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          undefined,
          'text/plain',
          'application/json; charset=utf-8',
          'application/json; charset=latin1',
          'application/x-www-form-urlencoded',
          'multipart/form-data; boundary=x',
          ';;',
          '',
        ),
      },
    ),
    extra: extraHeaders,
  }),
)

function rawOf(r: Fuzzed, keys: { tenant: string; admin: string }): Buffer {
  const headers: string[] = ['Host: 127.0.0.1']
  const auth: Record<Auth, string | null> = {
    none: null,
    garbage: 'Bearer not-a-key',
    unknown: `Bearer tg_sk_${'q'.repeat(16)}_${'B'.repeat(43)}`,
    tenant: `Bearer ${keys.tenant}`,
    admin: `Bearer ${keys.admin}`,
    'admin-as': `Bearer ${keys.admin}`,
  }
  if (auth[r.auth] !== null) headers.push(`Authorization: ${auth[r.auth]}`)
  if (r.auth === 'admin-as') headers.push('Tollgate-Tenant: fuzz-other')
  if (r.contentType !== undefined) headers.push(`Content-Type: ${r.contentType}`)
  const body = r.body === undefined ? Buffer.alloc(0) : Buffer.from(r.body)
  const names = new Set(r.extra.map(([k]) => k.toLowerCase()))
  for (const [k, v] of r.extra) headers.push(`${k}: ${v}`)
  // A chunked body is framed as one chunk; a body framed wrongly would wait for bytes forever.
  if (names.has('transfer-encoding')) {
    const framed = Buffer.concat([
      Buffer.from(`${body.length.toString(16)}\r\n`),
      body,
      Buffer.from('\r\n0\r\n\r\n'),
    ])
    headers.push('Connection: close')
    return Buffer.concat([
      Buffer.from(`${r.method} ${r.path} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`, 'latin1'),
      framed,
    ])
  }
  if (!names.has('content-length')) headers.push(`Content-Length: ${body.length}`)
  headers.push('Connection: close')
  const head = Buffer.from(
    `${r.method} ${r.path} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`,
    'latin1',
  )
  return Buffer.concat([head, body])
}

describeSqlStores('fuzzed requests', (kind) => {
  let t: TestServer
  let keys: { tenant: string; admin: string }

  beforeAll(async () => {
    t = await startServer({ store: kind.make().store })
    keys = { tenant: (await t.createKey('fuzz')).key, admin: t.adminKey }
    await t.call('POST', '/v1/accounts/alice/grants', { key: keys.tenant, body: { amount: 1_000 } })
  }, 60_000)
  afterAll(() => t.close())

  it(`${REQUESTS} malformed requests: no 5xx, every 4xx problem+json with a code`, async () => {
    const byStatus = new Map<number, number>()
    const byFamily = new Map<string, number>()
    await fc.assert(
      fc.asyncProperty(fuzzed, async (r) => {
        const res = await rawRequest(t.url, rawOf(r, keys))
        byStatus.set(res.status, (byStatus.get(res.status) ?? 0) + 1)
        byFamily.set(r.family, (byFamily.get(r.family) ?? 0) + 1)
        expect(res.status, 'an answer').toBeGreaterThanOrEqual(200)
        expect(res.status, res.body).toBeLessThan(500)
        if (res.status >= 400 && r.method !== 'HEAD') {
          expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
          const problem = JSON.parse(res.body) as { code?: unknown; status?: unknown }
          expect(typeof problem.code).toBe('string')
          expect(problem.status).toBe(res.status)
        }
      }),
      { numRuns: REQUESTS, seed: SEED, endOnFailure: false },
    )
    const sorted = (m: Map<string | number, number>) =>
      Object.fromEntries([...m].sort(([a], [b]) => String(a).localeCompare(String(b))))
    console.log(
      `fuzz (${kind.name}): ${REQUESTS} requests; by status ${JSON.stringify(sorted(byStatus))}; by family ${JSON.stringify(sorted(byFamily))}`,
    )
    expect([...byFamily.keys()].sort()).toEqual(
      ['accounts', 'codes', 'health', 'holds', 'keys', 'settings', 'store', 'unknown'].sort(),
    )
    // The server is still well after all of it.
    expect((await t.call('GET', '/healthz', { key: null })).status).toBe(200)
  }, 600_000)
})
