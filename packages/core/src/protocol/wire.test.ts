/**
 * The store protocol's codec: an operation the meter built keeps its fingerprint through JSON
 * and the server's schema (else a retried request, or a replayed idempotency key, would be a
 * conflict on the server), and every typed error survives the trip as problem details.
 */
import { describe, expect, it } from 'vitest'
import { codeBatchFingerprint, fingerprintFields, fingerprintOf } from '../engine/idempotency.js'
import type { Operation } from '../engine/state.js'
import {
  AuthError,
  CodeUnavailableError,
  HoldExpiredError,
  HoldResolvedError,
  IdempotencyConflictError,
  InsufficientCreditsError,
  InvalidInputError,
  isTollgateError,
  NotFoundError,
  OverageError,
  RateLimitedError,
  StoreUnavailableError,
  type TollgateError,
} from '../errors.js'
import { createMeter } from '../meter/meter.js'
import { memoryStore } from '../store/memory-store.js'
import type { ExecuteRequest, Store } from '../store/store.js'
import { problemDetails } from './problem.js'
import { markTransportKey, TRANSPORT_KEY_PREFIX } from './transport-key.js'
import { createCodesSchema } from './validation.js'
import {
  errorFromProblem,
  executeBodySchema,
  operationSchema,
  outcomeFromWire,
  outcomeToWire,
} from './wire.js'

const ALL_TYPES = operationSchema.options.map((o) => o.shape.type.value).sort()

/** A memory store that keeps a copy of every request the meter hands it. */
function recordingStore(): { store: Store; requests: ExecuteRequest[] } {
  const inner = memoryStore()
  const requests: ExecuteRequest[] = []
  const store: Store = {
    kind: 'recording',
    execute(req) {
      requests.push({ ...req, op: { ...req.op } })
      return inner.execute(req)
    },
    ledger: (...a) => inner.ledger(...a),
    createCodes: (...a) => inner.createCodes(...a),
    dueAccounts: (...a) => inner.dueAccounts(...a),
    prune: (...a) => inner.prune(...a),
    close: () => inner.close(),
  }
  return { store, requests }
}

/** Every operation type, with and without its optional parts, as the meter builds them. */
async function operationsTheMeterBuilds(): Promise<ExecuteRequest[]> {
  const { store, requests } = recordingStore()
  const now = Date.UTC(2028, 0, 31, 12)
  const meter = createMeter({
    store,
    clock: () => now,
    cache: false,
    lowBalanceThreshold: 3,
    overdraftLimit: 50,
    overage: 'overdraft',
  })
  const meta = { order: 'o-1', nested: { list: [1, 'two', null], flag: true }, 'ü ✓': 'ä' }
  await meter.grant('a', 100)
  await meter.grant('a', 50, {
    expiresAt: new Date(now + 86_400_000),
    priority: 10,
    category: 'promotional',
    metadata: meta,
    idempotencyKey: 'grant-1',
  })
  await meter.grant('a', 25, { validityDays: 30, idempotencyKey: 'grant-2' })
  await meter.debit('a', 1)
  await meter.debit('a', 2, { metadata: meta, idempotencyKey: 'debit-1' })
  await meter.debit('a', 0)
  await meter.adjust('a', 5)
  await meter.adjust('a', -1, { reason: 'refund reversal', metadata: meta, idempotencyKey: 'adj' })
  const h1 = await meter.reserve('a', 10)
  await h1.commit()
  const h2 = await meter.reserve('a', 10, { ttlMs: 5_000, metadata: meta, idempotencyKey: 'r-1' })
  await h2.extend(30_000)
  await h2.extend(40_000, { idempotencyKey: 'ext-1' })
  await h2.increase(3)
  await h2.increase(50, { partial: true, idempotencyKey: 'inc-1' })
  await h2.commit(12, { overage: 'clamp', metadata: meta, idempotencyKey: 'c-1' })
  const h3 = await meter.reserve('a', 4)
  await meter.commit(h3.id, 0)
  const h4 = await meter.reserve('a', 4)
  await h4.release()
  const h5 = await meter.reserve('a', 4)
  await h5.release({ metadata: meta, idempotencyKey: 'rel-1' })
  await meter.balance('a', { fresh: true })
  await meter.configure('a', { lowBalanceThreshold: 5 })
  await meter.configure('a', { overdraftLimit: null })
  await meter.configure('a', { lowBalanceThreshold: null, overdraftLimit: 7 })
  await meter.startCycle('a', { amount: 30, every: 'month' })
  await meter.stopCycle('a')
  await meter.startCycle('a', {
    amount: 30,
    every: { days: 7 },
    rollover: { max: 10 },
    priority: 5,
    category: 'promotional',
    idempotencyKey: 'cyc-1',
  })
  await meter.stopCycle('a', { idempotencyKey: 'stop-1' })
  const { codes } = await meter.createCodes({ credits: 5, count: 2 })
  await meter.redeem('a', codes[0]!)
  await meter.redeem('a', codes[1]!, { idempotencyKey: 'red-1' })
  await meter.close()
  return requests
}

describe('operations on the wire', () => {
  it('every operation type the meter builds keeps its fingerprint through JSON and the schema', async () => {
    const requests = await operationsTheMeterBuilds()
    expect([...new Set(requests.map((r) => r.op.type))].sort()).toEqual(ALL_TYPES)
    for (const { op } of requests) {
      const parsed = operationSchema.parse(JSON.parse(JSON.stringify(op))) as Operation
      expect(fingerprintOf(parsed), op.type).toBe(fingerprintOf(op))
      expect(parsed.idempotencyKey).toBe(op.idempotencyKey)
    }
  })

  it('with a transport key added (as httpStore does), the fingerprint and the body still hold', async () => {
    for (const req of await operationsTheMeterBuilds()) {
      if (req.op.type === 'balance' || req.op.idempotencyKey !== undefined) continue
      const op = { ...req.op, idempotencyKey: `${TRANSPORT_KEY_PREFIX}${crypto.randomUUID()}` }
      const body = JSON.parse(
        JSON.stringify({ account: req.account ?? null, op, now: req.now, config: req.config }),
      )
      const parsed = executeBodySchema.parse(body)
      expect(fingerprintOf(parsed.op as Operation), op.type).toBe(fingerprintOf(req.op))
      expect(parsed.op).toHaveProperty('idempotencyKey', op.idempotencyKey)
      expect(parsed.account).toBe(req.account ?? null)
      expect(parsed.config).toEqual(req.config)
    }
  })

  it('the fingerprint covers every input field the wire carries, in the schema order', () => {
    for (const option of operationSchema.options) {
      const type = option.shape.type.value
      const wire = Object.keys(option.shape).filter((k) => k !== 'idempotencyKey')
      expect([...fingerprintFields(type)], type).toEqual(wire)
    }
  })

  it('a transport key is marked hideKey where it arrives; other keys and no key are not', () => {
    const op: Operation = { type: 'debit', amount: 1, metadata: {} }
    expect(markTransportKey({ ...op, idempotencyKey: `${TRANSPORT_KEY_PREFIX}x` }).hideKey).toBe(
      true,
    )
    expect(markTransportKey({ ...op, idempotencyKey: 'mine' }).hideKey).toBeUndefined()
    expect(markTransportKey(op)).toBe(op)
  })

  it('a code batch fingerprints as before: the parsed options, in the schema order, whatever the order given', () => {
    const given = [
      { credits: 5, count: 2 },
      { idempotencyKey: 'k', category: 'paid', count: 2, credits: 5, prefix: 'AB' },
      {
        maxRedemptions: 3,
        validityDays: 30,
        codeExpiresAt: 1_900_000_000_000,
        credits: 1,
        count: 9,
        priority: 7,
      },
    ]
    for (const options of given) {
      const { idempotencyKey: _k, ...input } = createCodesSchema.parse(options)
      // What the meter stored before the fingerprint had a function of its own.
      expect(codeBatchFingerprint(input)).toBe(JSON.stringify(['createCodes', input]))
      const reordered = Object.fromEntries(Object.entries(input).reverse()) as typeof input
      expect(codeBatchFingerprint(reordered)).toBe(codeBatchFingerprint(input))
    }
  })

  it('a changed field changes the fingerprint: the check above can fail', () => {
    const op: Operation = { type: 'debit', amount: 1, metadata: {}, idempotencyKey: undefined }
    const parsed = operationSchema.parse({ metadata: {}, amount: 1, type: 'debit' }) as Operation
    expect(fingerprintOf(parsed)).toBe(fingerprintOf(op))
    expect(fingerprintOf({ ...op, amount: 2 })).not.toBe(fingerprintOf(op))
  })
})

/** One instance of every error class, each with distinctive field values. */
const ERRORS: TollgateError[] = [
  new InvalidInputError('amount', 'must be a non-negative safe integer'),
  new InvalidInputError('metadata.note', 'field: with a colon in the message'),
  new AuthError('invalid or missing API key'),
  new AuthError(),
  new InsufficientCreditsError('user ✓ 1', 30, 20),
  new CodeUnavailableError('already_redeemed'),
  new CodeUnavailableError('expired'),
  new CodeUnavailableError('exhausted'),
  new NotFoundError('hold', 'hld_abc_1_2'),
  new IdempotencyConflictError('key-42'),
  new HoldResolvedError('hld_x', 'committed'),
  new HoldResolvedError('hld_y', 'released'),
  new HoldExpiredError('hld_z', 1_800_000_000_000),
  new OverageError('hld_o', 10, 12),
  new RateLimitedError(59_000),
  new StoreUnavailableError('database is down'),
]

describe('errors on the wire', () => {
  it.each(ERRORS.map((e) => [`${e.constructor.name} ${e.message}`, e] as const))(
    'errorFromProblem(problemDetails(e)) reproduces %s',
    (_, error) => {
      // Through JSON, as the server sends it.
      const back = errorFromProblem(JSON.parse(JSON.stringify(problemDetails(error))))
      expect(back).toBeInstanceOf(error.constructor)
      expect(isTollgateError(back, error.code)).toBe(true)
      expect(back.name).toBe(error.name)
      expect(back.message).toBe(error.message)
      expect(back.status).toBe(error.status)
      expect(back.toJSON()).toEqual(error.toJSON())
    },
  )

  it('covers every error class', () => {
    expect(new Set(ERRORS.map((e) => e.code)).size).toBe(11)
  })

  it('a body without a known code is StoreUnavailableError for 5xx, InvalidInputError below', () => {
    const five = errorFromProblem({
      type: 'about:blank',
      title: 'Internal Server Error',
      status: 500,
      detail: 'the request could not be completed',
      code: 'internal',
    })
    expect(five).toBeInstanceOf(StoreUnavailableError)
    expect(five.message).toContain('500')
    const four = errorFromProblem({
      type: 'about:blank',
      title: 'Payload Too Large',
      status: 413,
      detail: 'body is larger than 65536 bytes',
      code: 'internal',
    })
    expect(four).toBeInstanceOf(InvalidInputError)
    expect(four).toMatchObject({ field: 'request', status: 400 })
  })

  it('an outcome with a domain error survives outcomeToWire → JSON → outcomeFromWire', async () => {
    const store = memoryStore()
    const meter = createMeter({ store, cache: false })
    await meter.grant('a', 5)
    const out = await store.execute({
      tenant: 'default',
      account: 'a',
      op: { type: 'debit', amount: 9, metadata: {}, idempotencyKey: undefined },
      now: Date.now(),
      config: {
        lowBalanceThreshold: null,
        overdraftLimit: null,
        overage: 'clamp',
        redeemMaxFailures: 10,
        redeemWindowMs: 3_600_000,
      },
      newId: (p) => `${p}_1`,
    })
    const back = outcomeFromWire(JSON.parse(JSON.stringify(outcomeToWire(out))))
    expect(back.error).toBeInstanceOf(InsufficientCreditsError)
    expect(back.error?.toJSON()).toEqual(out.error?.toJSON())
    expect(back.balance).toEqual(out.balance)
    expect(back.replayed).toBe(false)
  })
})
