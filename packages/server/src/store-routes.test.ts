import { randomBytes } from 'node:crypto'
import { generateCode, hashCode } from '@tollgate/core/engine'
import { errorFromProblem, type WireOutcome } from '@tollgate/core/protocol'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fakeClock, startServer, type TestServer, wireConfig, wireGrant } from './test-support.js'

const config = wireConfig
const grant = wireGrant

describe('store protocol, server clock', () => {
  const clock = fakeClock()
  let t: TestServer
  let key: string
  const execute = (body: Record<string, unknown>) =>
    t.call<WireOutcome>('POST', '/v1/store/execute', {
      key,
      body: { now: 5, config, ...body },
    })

  beforeAll(async () => {
    t = await startServer({
      clock: clock.now,
      meter: { redeemAttempts: { max: 2, windowMs: 60_000 } },
    })
    key = (await t.createKey('store-tenant')).key
  })
  afterAll(() => t.close())

  it('execute runs an operation and answers the outcome', async () => {
    const res = await execute({ account: 'p1', op: grant(50) })
    expect(res.status).toBe(200)
    expect(res.body.error).toBeNull()
    expect(res.body.result).toMatchObject({ amount: 50 })
    // The server's clock, not the `now: 5` the client sent.
    expect(res.body.balance).toMatchObject({ available: 50, asOf: clock.now() })
    expect(res.body.events.length).toBeGreaterThanOrEqual(0)
  })

  it('a domain error travels inside a 200 outcome', async () => {
    const res = await execute({
      account: 'p1',
      op: { type: 'debit', amount: 500, metadata: {} },
    })
    expect(res.status).toBe(200)
    expect(res.body.error).toMatchObject({
      code: 'insufficient_credits',
      required: 500,
      available: 50,
    })
    expect(errorFromProblem(res.body.error!).code).toBe('insufficient_credits')
    expect(res.body.balance).toMatchObject({ available: 50 })
  })

  it('hold operations go by id within the tenant; account must match the operation', async () => {
    const hold = await execute({
      account: 'p1',
      op: { type: 'reserve', amount: 10, ttlMs: 1_000, metadata: {} },
    })
    const holdId = (hold.body.result as { id: string }).id
    const wrong = await execute({
      account: 'p1',
      op: { type: 'commit', holdId, metadata: {} },
    })
    expect(wrong.status).toBe(400)
    expect(wrong.body).toMatchObject({ code: 'invalid_input', field: 'account' })
    const missing = await execute({ account: null, op: grant(1) })
    expect(missing.status).toBe(400)

    // Another tenant's key does not find it.
    const other = (await t.createKey('someone-else')).key
    const stranger = await t.call<WireOutcome>('POST', '/v1/store/execute', {
      key: other,
      body: { account: null, op: { type: 'commit', holdId, metadata: {} }, now: 0, config },
    })
    expect(stranger.body.error).toMatchObject({ code: 'not_found' })

    // Due once the TTL passed by the server's clock, then swept by a balance touch.
    clock.advance(2_000)
    const due = await t.call<{ accounts: string[] }>('POST', '/v1/store/due', {
      key,
      body: { now: 0, limit: 10 },
    })
    expect(due.body.accounts).toEqual(['p1'])
    const touched = await execute({ account: 'p1', op: { type: 'balance' } })
    expect(touched.body.balance).toMatchObject({ held: 0, available: 50 })
  })

  it('ledger pages an account', async () => {
    const res = await t.call<{ entries: { type: string }[]; nextCursor: string | null }>(
      'POST',
      '/v1/store/ledger',
      {
        key,
        body: { account: 'p1', limit: 2, before: null, types: null, from: null, to: null },
      },
    )
    expect(res.status).toBe(200)
    expect(res.body.entries.map((e) => e.type)).toEqual(['release', 'hold'])
    expect(res.body.nextCursor).toEqual(expect.any(String))
  })

  it('codes stores hashes; redeem goes through execute; an idempotent batch replays', async () => {
    const code = generateCode('TG')
    const now = clock.now()
    const batch = {
      batchId: 'cdb_test_1',
      codes: [
        {
          hash: hashCode(code),
          batchId: 'cdb_test_1',
          credits: 7,
          validityDays: null,
          codeExpiresAt: null,
          maxRedemptions: 1,
          redemptions: 0,
          priority: 50,
          category: 'promotional',
          createdAt: now,
        },
      ],
      idempotency: { key: 'batch-1', fingerprint: 'f1', result: { batchId: 'cdb_test_1' } },
      now,
    }
    const created = await t.call('POST', '/v1/store/codes', { key, body: batch })
    expect(created.status).toBe(200)
    expect(created.body).toEqual({ status: 'created' })
    const replayed = await t.call('POST', '/v1/store/codes', { key, body: batch })
    expect(replayed.body).toMatchObject({ status: 'replayed', result: { batchId: 'cdb_test_1' } })
    const conflict = await t.call('POST', '/v1/store/codes', {
      key,
      body: { ...batch, idempotency: { ...batch.idempotency, fingerprint: 'f2' } },
    })
    expect(conflict.body).toEqual({ status: 'conflict' })

    const redeemed = await execute({
      account: 'p2',
      op: { type: 'redeem', codeHash: hashCode(code) },
    })
    expect(redeemed.body.error).toBeNull()
    expect(redeemed.body.result).toMatchObject({ creditsGranted: 7 })
  })

  it("caps the client's redeem throttle at the server's", async () => {
    const guess = () =>
      execute({
        account: 'guesser',
        op: { type: 'redeem', codeHash: randomBytes(32).toString('hex') },
      })
    // The client asks for 1,000 failures per 1 s; the server allows 2 per minute.
    expect((await guess()).body.error).toMatchObject({ code: 'invalid_input' })
    expect((await guess()).body.error).toMatchObject({ code: 'invalid_input' })
    const limited = await guess()
    expect(limited.body.error).toMatchObject({ code: 'rate_limited' })
  })

  it('prune never drops records younger than 48 h by the server clock', async () => {
    const res = await t.call<{ pruned: number }>('POST', '/v1/store/prune', {
      key,
      body: { before: clock.now() + 1_000_000 },
    })
    expect(res.status).toBe(200)
    expect(res.body.pruned).toBe(0)
    // The batch's idempotency record survived: the replay still replays.
  })

  it('refuses malformed protocol bodies by field', async () => {
    const res = await execute({ account: 'p1', op: { type: 'grant', amount: 1 } })
    expect(res.status).toBe(400)
    expect(res.body).toMatchObject({ code: 'invalid_input' })
    const unknownOp = await execute({ account: 'p1', op: { type: 'steal', amount: 1 } })
    expect(unknownOp.status).toBe(400)
    expect(unknownOp.body).toMatchObject({ field: 'op.type' })
  })
})

describe('store protocol, clientClock', () => {
  it("stamps operations with the client's now", async () => {
    const t = await startServer({ clientClock: true })
    try {
      const now = Date.UTC(2031, 5, 1)
      const res = await t.call<WireOutcome>('POST', '/v1/store/execute', {
        body: { account: 'cc', op: grant(5), now, config },
      })
      expect(res.body.balance).toMatchObject({ asOf: now })
      const due = await t.call<{ accounts: string[] }>('POST', '/v1/store/due', {
        body: { now: now + 1, limit: 5 },
      })
      expect(due.status).toBe(200)
    } finally {
      await t.close()
    }
  })
})
