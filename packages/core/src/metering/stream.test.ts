import { describe, expect, it } from 'vitest'
import { InsufficientCreditsError, InvalidInputError, isTollgateError } from '../errors.js'
import { createMeter, type Meter } from '../meter/meter.js'
import { memoryStore } from '../store/memory-store.js'
import { expectLedgerReplays } from '../test-support.js'
import { createRequestMeter, type MeteringOptions, resolveMeteringOptions } from './metering.js'

interface Req {
  user: string
}

const defaults = { adapter: 'test', shouldCharge: () => true }

function setup(options: Partial<MeteringOptions<Req, unknown>> = {}, meter?: Meter) {
  const errors: unknown[] = []
  const m = meter ?? createMeter({ store: memoryStore(), cache: false })
  const rm = createRequestMeter<Req, unknown>(
    m,
    { account: (r) => r.user, onError: (e) => void errors.push(e), ...options },
    defaults,
  )
  return { meter: m, rm, errors }
}

async function admitted(rm: ReturnType<typeof setup>['rm']) {
  const call = rm.start({ user: 'u' })
  const a = await call.admit()
  if (a.type !== 'admitted') throw new Error(`expected admitted, got ${a.type}`)
  return { call, credits: a.credits }
}

/** Lets what runs in the background (a top-up) finish, as a stream's next chunk would. */
const tick = () => new Promise<void>((resolve) => setImmediate(resolve))

/** Serves `n` credits per chunk until `use` refuses or `chunks` were served; returns the count. */
async function serve(credits: { use(n: number): boolean }, n: number, chunks: number) {
  let served = 0
  while (served < chunks && credits.use(n)) {
    served++
    await tick()
  }
  return served
}

describe('options', () => {
  it.each([
    ['negative topUp', { topUp: -1 }, 'topUp'],
    ['fractional topUp', { topUp: 2.5 }, 'topUp'],
    ['topUp as string', { topUp: '10' as never }, 'topUp'],
  ])('%s → InvalidInputError naming the field', (_name, patch, field) => {
    const options = { account: (r: Req) => r.user, ...patch }
    expect(() => resolveMeteringOptions(options, defaults)).toThrow(InvalidInputError)
    expect(() => resolveMeteringOptions(options, defaults)).toThrow(new RegExp(`^${field}`))
  })

  it("topUp is off and onAbort takes 'used'", () => {
    const o = resolveMeteringOptions<Req, unknown>(
      { account: (r) => r.user, onAbort: 'used' },
      defaults,
    )
    expect(o).toMatchObject({ topUp: 0, onAbort: 'used' })
  })
})

describe('use()', () => {
  it('counts what was served, and success charges it instead of the cost', async () => {
    const { meter, rm } = setup({ cost: 10 })
    await meter.grant('u', 100)
    const { call, credits } = await admitted(rm)
    expect(credits.use(3)).toBe(true)
    expect(credits.use(4)).toBe(true)
    expect(credits.used).toBe(7)
    await call.finish('success')
    expect(credits.settlement).toMatchObject({ charged: 7 })
    expect((await expectLedgerReplays(meter, 'u')).total).toBe(93)
  })

  it('an actual the handler set wins over what was used', async () => {
    const { meter, rm } = setup({ cost: 10 })
    await meter.grant('u', 100)
    const { call, credits } = await admitted(rm)
    credits.use(3)
    credits.actual = 10
    await call.finish('success')
    expect(credits.settlement).toMatchObject({ charged: 10 })
  })

  it('without topUp refuses past the hold: false, nothing counted, signal aborted', async () => {
    const { meter, rm } = setup({ cost: 10 })
    await meter.grant('u', 100)
    const { call, credits } = await admitted(rm)
    const signal = credits.signal
    expect(credits.use(8)).toBe(true)
    expect(signal.aborted).toBe(false)
    expect(credits.use(3)).toBe(false)
    expect(credits.used).toBe(8)
    expect(signal.aborted).toBe(true)
    expect(signal.reason).toBeInstanceOf(InsufficientCreditsError)
    expect(signal.reason).toMatchObject({ account: 'u', required: 3 })
    // Refused once, refused after: the stream is over.
    expect(credits.use(1)).toBe(false)
    // A signal first read after the refusal is aborted too.
    await call.finish('success')
    expect(credits.settlement).toMatchObject({ charged: 8 })
    expect((await expectLedgerReplays(meter, 'u')).total).toBe(92)
  })

  it('refuses a bad amount as a handler bug', async () => {
    const { meter, rm } = setup({ cost: 10 })
    await meter.grant('u', 100)
    const { credits } = await admitted(rm)
    expect(() => credits.use(-1)).toThrow(InvalidInputError)
    expect(() => credits.use(1.5)).toThrow(InvalidInputError)
  })

  it('answers false once the request settled', async () => {
    const { meter, rm } = setup({ cost: 10 })
    await meter.grant('u', 100)
    const { call, credits } = await admitted(rm)
    await call.finish('success')
    expect(credits.use(1)).toBe(false)
    expect(credits.signal.aborted).toBe(false)
  })

  it('the signal aborts when the client goes away', async () => {
    const { meter, rm } = setup({ cost: 10 })
    await meter.grant('u', 100)
    const { call, credits } = await admitted(rm)
    const signal = credits.signal
    await call.finish('abort')
    expect(signal.aborted).toBe(true)
    expect((signal.reason as Error).name).toBe('AbortError')
  })

  it('JSON shows the figures', async () => {
    const { meter, rm } = setup({ cost: 10 })
    await meter.grant('u', 100)
    const { credits } = await admitted(rm)
    credits.use(2)
    expect(JSON.parse(JSON.stringify(credits))).toMatchObject({
      account: 'u',
      cost: 10,
      actual: 10,
      used: 2,
    })
  })
})

describe('topUp', () => {
  it('grows the hold by a block when less than half a block is left, so the stream finishes', async () => {
    const { meter, rm, errors } = setup({ cost: 10, topUp: 20 })
    await meter.grant('u', 1_000)
    const { call, credits } = await admitted(rm)
    // 100 credits through a hold of 10, 2 at a time.
    expect(await serve(credits, 2, 50)).toBe(50)
    expect(credits.used).toBe(100)
    const held = credits.hold!.amount
    expect(held).toBeGreaterThanOrEqual(100)
    // Grown a block at a time, never more than a block ahead.
    expect((held - 10) % 20).toBe(0)
    expect(held - 100).toBeLessThanOrEqual(20)
    expect((await meter.balance('u', { fresh: true })).held).toBe(held)
    await call.finish('success')
    expect(credits.settlement).toMatchObject({ charged: 100, freed: held - 100 })
    expect((await expectLedgerReplays(meter, 'u')).total).toBe(900)
    expect(errors).toEqual([])
  })

  it('an account that runs dry stops the stream at its last credit, charged what was served', async () => {
    const { meter, rm } = setup({ cost: 10, topUp: 10 })
    await meter.grant('u', 37)
    const { call, credits } = await admitted(rm)
    const signal = credits.signal
    expect(await serve(credits, 1, 1_000)).toBe(37)
    expect(signal.aborted).toBe(true)
    expect(isTollgateError(signal.reason, 'insufficient_credits')).toBe(true)
    expect(signal.reason).toMatchObject({ required: 1, available: 0 })
    await call.finish('success')
    expect(credits.settlement).toMatchObject({ charged: 37, shortfall: 0 })
    const balance = await expectLedgerReplays(meter, 'u')
    expect(balance).toMatchObject({ total: 0, held: 0, debt: 0 })
  })

  it('concurrent streams on one account never serve more than it has', async () => {
    const { meter, rm } = setup({ cost: 5, topUp: 10 })
    await meter.grant('u', 64)
    const streams = await Promise.all([admitted(rm), admitted(rm), admitted(rm)])
    const served = await Promise.all(streams.map(({ credits }) => serve(credits, 1, 1_000)))
    expect(served.reduce((a, b) => a + b, 0)).toBe(64)
    await Promise.all(streams.map(({ call }) => call.finish('success')))
    expect(await expectLedgerReplays(meter, 'u')).toMatchObject({ total: 0, held: 0, debt: 0 })
  })

  it('a top-up that fails is reported, and the stream ends at the hold', async () => {
    const { meter, rm, errors } = setup({ cost: 10, topUp: 10, ttlMs: 1_000 })
    await meter.grant('u', 100)
    const { call, credits } = await admitted(rm)
    // The hold resolves under the request (e.g. released by an operator): the top-up fails.
    await meter.release(credits.hold!.id)
    expect(credits.use(6)).toBe(true)
    await tick()
    expect(errors).toHaveLength(1)
    expect(isTollgateError(errors[0], 'hold_resolved')).toBe(true)
    expect(credits.use(6)).toBe(false)
    await call.finish('success')
  })

  it('tops up from a lease without a round trip', async () => {
    const meter = createMeter({ store: memoryStore(), cache: false, lease: { size: 200 } })
    const { rm } = setup({ cost: 10, topUp: 20 }, meter)
    await meter.grant('u', 1_000)
    const { call, credits } = await admitted(rm)
    expect(await serve(credits, 5, 20)).toBe(20)
    await call.finish('success')
    expect(credits.settlement).toMatchObject({ charged: 100 })
    await meter.close()
  })
})

describe('onAbort', () => {
  it.each([
    ['release', 100],
    ['commit', 90],
    ['used', 93],
  ] as const)("'%s': a client that leaves mid-stream leaves %i", async (onAbort, total) => {
    const { meter, rm } = setup({ cost: 10, topUp: 10, onAbort })
    await meter.grant('u', 100)
    const { call, credits } = await admitted(rm)
    expect(await serve(credits, 1, 7)).toBe(7)
    await call.finish('abort')
    expect((await expectLedgerReplays(meter, 'u')).total).toBe(total)
  })
})
