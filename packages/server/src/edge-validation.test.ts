/**
 * Input no store can hold (NUL, lone surrogates) is refused at the edge, in every text field,
 * with a 400 naming the field, and never reaches the database: a tenant sending it cannot fail
 * another tenant's requests that share a group-commit batch.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  type Answer,
  type CallOptions,
  describeSqlStores,
  startServer,
  type TestServer,
} from './test-support.js'

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE'
interface BadRequest {
  label: string
  method: Method
  path: string
  options: CallOptions
  /** The field the 400 must name (in `field`, or in `detail`). */
  field: string
}

const config = {
  lowBalanceThreshold: null,
  overdraftLimit: null,
  overage: 'clamp',
  redeemMaxFailures: 10,
  redeemWindowMs: 60_000,
}
const codeRecord = (batchId: string) => ({
  hash: 'cd'.repeat(32),
  batchId,
  credits: 1,
  validityDays: null,
  codeExpiresAt: null,
  maxRedemptions: 1,
  redemptions: 0,
  priority: 50,
  category: 'paid',
  createdAt: 0,
})

/** Every text field of the API, with `bad` in it. `tenant` and `admin` are the keys to use. */
function badRequests(bad: string, label: string, tenant: string, admin: string): BadRequest[] {
  // Path parameters travel percent-encoded: NUL as %00 (refused by the parameter's schema); a
  // lone surrogate has no UTF-8 form, so its nearest bytes (CESU-8 of U+D800) stand for it, and
  // the router refuses the URL as a whole (field `path`). A query string keeps such bytes as the
  // raw text `%ED%A0%80`, a well-formed string: only NUL is tried there.
  const nul = bad === '\u0000'
  const inPath = nul ? '%00' : '%ED%A0%80'
  const param = (name: string) => (nul ? name : 'path')
  const rest = (
    method: Method,
    path: string,
    body: unknown,
    field: string,
    key = tenant,
  ): BadRequest => ({
    label: `${label}: ${method} ${path} ${field}`,
    method,
    path,
    options: { key, body },
    field,
  })
  const execute = (account: string | null, op: Record<string, unknown>, field: string) =>
    rest('POST', '/v1/store/execute', { account, op, now: 0, config }, field)
  const codes = (over: Record<string, unknown>, field: string) =>
    rest(
      'POST',
      '/v1/store/codes',
      { batchId: 'b1', codes: [codeRecord('b1')], idempotency: null, now: 0, ...over },
      field,
    )
  const idem = (over: Record<string, unknown>) => ({
    idempotency: { key: 'k1', fingerprint: 'f', result: {}, ...over },
  })
  return [
    // ---- REST bodies
    rest('POST', '/v1/accounts/a-ok/adjustments', { delta: 1, reason: `x${bad}` }, 'reason'),
    rest(
      'POST',
      '/v1/accounts/a-ok/grants',
      { amount: 1, metadata: { note: bad } },
      'metadata.note',
    ),
    rest(
      'POST',
      '/v1/accounts/a-ok/grants',
      { amount: 1, metadata: { [`k${bad}`]: 1 } },
      'metadata',
    ),
    rest('POST', '/v1/accounts/a-ok/debits', { amount: 1, metadata: { a: [bad] } }, 'metadata.a.0'),
    rest(
      'POST',
      '/v1/accounts/a-ok/holds',
      { amount: 1, metadata: { x: { y: bad } } },
      'metadata.x.y',
    ),
    rest('POST', '/v1/holds/hld_x/commit', { metadata: { x: bad } }, 'metadata.x'),
    rest('POST', '/v1/holds/hld_x/release', { metadata: { x: bad } }, 'metadata.x'),
    rest('POST', '/v1/accounts/a-ok/redemptions', { code: `TG-${bad}` }, 'code'),
    rest('POST', '/v1/codes', { credits: 1, count: 1, prefix: `P${bad}` }, 'prefix'),
    // ---- REST path and query parameters
    rest('POST', `/v1/holds/hld_${inPath}/commit`, {}, param('id')),
    rest('POST', `/v1/holds/hld_${inPath}/extend`, { ttlMs: 5_000 }, param('id')),
    rest('GET', `/v1/accounts/a${inPath}/balance`, undefined, param('account')),
    rest('POST', `/v1/accounts/a${inPath}/grants`, { amount: 1 }, param('account')),
    rest('PUT', `/v1/accounts/a${inPath}/settings`, { lowBalanceThreshold: 1 }, param('account')),
    // ---- the store protocol
    execute(`a${bad}`, { type: 'balance' }, 'account'),
    execute('a-ok', { type: 'adjust', delta: 1, reason: `r${bad}`, metadata: {} }, 'op.reason'),
    execute('a-ok', { type: 'debit', amount: 1, metadata: { n: bad } }, 'op.metadata.n'),
    execute(
      'a-ok',
      { type: 'debit', amount: 1, metadata: {}, idempotencyKey: `k${bad}` },
      'op.idempotencyKey',
    ),
    execute(null, { type: 'release', holdId: `hld_${bad}`, metadata: {} }, 'op.holdId'),
    rest(
      'POST',
      '/v1/store/ledger',
      { account: `a${bad}`, limit: 1, before: null, types: null, from: null, to: null },
      'account',
    ),
    codes({ batchId: `b${bad}` }, 'batchId'),
    codes({ codes: [codeRecord(`b${bad}`)] }, 'codes.0.batchId'),
    codes(idem({ key: `k${bad}` }), 'idempotency.key'),
    codes(idem({ fingerprint: `f${bad}` }), 'idempotency.fingerprint'),
    codes(idem({ result: { codes: [bad] } }), 'idempotency.result.codes.0'),
    // ---- keys (admin)
    rest('POST', '/v1/keys', { tenant: 'acme', name: `n${bad}` }, 'name', admin),
    rest('POST', '/v1/keys', { tenant: `t${bad}` }, 'tenant', admin),
    rest('DELETE', `/v1/keys/${inPath}`, undefined, param('id'), admin),
    ...(nul
      ? [
          rest('GET', '/v1/accounts/a-ok/ledger?cursor=c%00', undefined, 'cursor'),
          rest('GET', '/v1/keys?tenant=%00', undefined, 'tenant', admin),
        ]
      : []),
  ]
}

/** The field a 400 names, from `field` or from the start of `detail` ("field: message"). */
function namedField(res: Answer): string | undefined {
  const body = res.body as { field?: string; detail?: string }
  return body.field ?? body.detail?.split(':')[0]
}

describeSqlStores('bad text is refused at the edge and fails no other tenant', (kind) => {
  let t: TestServer
  let attacker: string
  let victim: string

  beforeAll(async () => {
    t = await startServer({ store: kind.make().store })
    attacker = (await t.createKey('attacker')).key
    victim = (await t.createKey('victim')).key
  }, 60_000)
  afterAll(() => t.close())

  it('4 loops of NUL and lone surrogates in every text field; 4 loops of grants and debits', async () => {
    const requests = [
      ...badRequests('\u0000', 'NUL', attacker, t.adminKey),
      ...badRequests('\uD800', 'lone surrogate', attacker, t.adminKey),
    ]
    const OPS = 25
    let victimDone = 0
    const victimFailures: string[] = []
    const attackerAnswers: { label: string; status: number; field?: string; type?: string }[] = []

    const victimLoop = async (loop: number) => {
      for (let i = 0; i < OPS; i++) {
        const grant = await t.call('POST', `/v1/accounts/v${loop}/grants`, {
          key: victim,
          body: { amount: 10, metadata: { i } },
        })
        if (grant.status !== 201) victimFailures.push(`grant ${grant.status} ${grant.text}`)
        const debit = await t.call('POST', `/v1/accounts/v${loop}/debits`, {
          key: victim,
          body: { amount: 5 },
        })
        if (debit.status !== 200) victimFailures.push(`debit ${debit.status} ${debit.text}`)
      }
      victimDone++
    }
    const attackerLoop = async (loop: number) => {
      // At least one full pass each, and on until the victim's loops are done.
      for (let round = 0; round < 1 || victimDone < 4; round++) {
        for (let i = 0; i < requests.length; i++) {
          const r = requests[(i + loop * 7) % requests.length]!
          const res = await t.call(r.method, r.path, r.options)
          attackerAnswers.push({
            label: r.label,
            status: res.status,
            field: namedField(res),
            type: String(res.headers['content-type']),
          })
          if (namedField(res) !== r.field) {
            attackerAnswers.push({ label: `${r.label} named ${namedField(res)}`, status: -1 })
          }
        }
      }
    }
    await Promise.all([0, 1, 2, 3].flatMap((loop) => [victimLoop(loop), attackerLoop(loop)]))

    expect(victimFailures).toEqual([])
    expect(attackerAnswers.length).toBeGreaterThanOrEqual(4 * requests.length)
    const wrong = attackerAnswers.filter(
      (a) => a.status !== 400 || !a.type?.startsWith('application/problem+json'),
    )
    expect(wrong).toEqual([])
    for (let loop = 0; loop < 4; loop++) {
      const balance = await t.call('GET', `/v1/accounts/v${loop}/balance`, { key: victim })
      expect(balance.body).toMatchObject({ total: OPS * 5, available: OPS * 5 })
    }
    // Nothing of the attacker's reached its ledger either.
    const ledger = await t.call<{ entries: unknown[] }>('GET', '/v1/accounts/a-ok/ledger', {
      key: attacker,
    })
    expect(ledger.body.entries).toEqual([])
    // And a well-formed emoji is still fine everywhere.
    const ok = await t.call('POST', '/v1/accounts/a-ok/adjustments', {
      key: attacker,
      body: { delta: 1, reason: 'refund 😀', metadata: { 'clé 😀': 'é' } },
    })
    expect(ok.status).toBe(200)
  }, 120_000)
})
