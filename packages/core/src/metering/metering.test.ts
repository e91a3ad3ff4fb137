import { afterEach, describe, expect, it, vi } from 'vitest'
import { InvalidInputError, StoreUnavailableError } from '../errors.js'
import { createMeter, type Meter } from '../meter/meter.js'
import { PROBLEM_CONTENT_TYPE, problemDetails } from '../protocol/problem.js'
import { memoryStore } from '../store/memory-store.js'
import type { Store } from '../store/store.js'
import { expectLedgerReplays } from '../test-support.js'
import {
  createRequestMeter,
  type MeteringOptions,
  type RequestCredits,
  resolveMeteringOptions,
} from './metering.js'

interface Req {
  user: string
  tokens?: number
}
interface Res {
  status: number
}

const shouldCharge = (_req: Req, res: Res) => res.status < 400
const defaults = { adapter: 'test', shouldCharge }

function setup(options: Partial<MeteringOptions<Req, Res>> = {}, meter?: Meter) {
  const m = meter ?? createMeter({ store: memoryStore(), cache: false })
  const rm = createRequestMeter<Req, Res>(m, { account: (r) => r.user, ...options }, defaults)
  return { meter: m, rm }
}

async function admitted(rm: ReturnType<typeof setup>['rm'], req: Req) {
  const call = rm.start(req)
  const a = await call.admit()
  if (a.type !== 'admitted') throw new Error(`expected admitted, got ${a.type}`)
  return { call, credits: a.credits }
}

afterEach(() => {
  vi.useRealTimers()
})

describe('resolveMeteringOptions', () => {
  const bad: [string, Partial<MeteringOptions<Req, Res>>, string][] = [
    ['account missing', { account: undefined }, 'account'],
    ['account not a function', { account: 'u' as never }, 'account'],
    ['negative cost', { cost: -1 }, 'cost'],
    ['fractional cost', { cost: 1.5 }, 'cost'],
    ['cost as string', { cost: '1' as never }, 'cost'],
    ['ttlMs below 1 s', { ttlMs: 999 }, 'ttlMs'],
    ['ttlMs above 24 h', { ttlMs: 86_400_001 }, 'ttlMs'],
    ['headers as string', { headers: 'yes' as never }, 'headers'],
    ['header name with a space', { headers: { cost: 'X Cost' } }, 'headers.cost'],
    ['standardHeaders as string', { standardHeaders: 'draft-11' as never }, 'standardHeaders'],
    ['policy with a quote', { standardHeaders: { policy: 'a"b' } }, 'standardHeaders.policy'],
    ['empty policy', { standardHeaders: { policy: '' } }, 'standardHeaders.policy'],
    ['unknown failMode', { failMode: 'half' as never }, 'failMode'],
    ['unknown onAbort', { onAbort: 'keep' as never }, 'onAbort'],
    ['skip not a function', { skip: true as never }, 'skip'],
    ['shouldCharge not a function', { shouldCharge: 1 as never }, 'shouldCharge'],
    ['onError not a function', { onError: {} as never }, 'onError'],
    ['onInsufficient not a function', { onInsufficient: 'x' as never }, 'onInsufficient'],
  ]
  it.each(bad)('%s → InvalidInputError naming the field', (_name, patch, field) => {
    const options = { account: (r: Req) => r.user, ...patch } as MeteringOptions<Req, Res>
    try {
      resolveMeteringOptions(options, defaults)
      expect.unreachable()
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidInputError)
      expect((err as InvalidInputError).field).toBe(field)
    }
  })

  it('fills the defaults and warns about unknown keys', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    const o = resolveMeteringOptions<Req, Res>(
      { account: (r) => r.user, costt: 2 } as MeteringOptions<Req, Res>,
      defaults,
    )
    expect(o).toMatchObject({
      cost: 1,
      costOf: null,
      ttlMs: 60_000,
      failMode: 'closed',
      onAbort: 'release',
      headers: { cost: 'X-Credits-Cost', remaining: 'X-Credits-Remaining', policy: null },
    })
    expect(warn).toHaveBeenCalledWith(
      expect.stringContaining('"costt"'),
      'TollgateWarning',
      'TOLLGATE_UNKNOWN_OPTION',
    )
    warn.mockRestore()
  })

  it('rejects a meter that is not one', () => {
    expect(() => createRequestMeter({} as Meter, { account: () => 'a' }, defaults)).toThrow(
      InvalidInputError,
    )
  })
})

describe('admit and finish', () => {
  it('reserves the cost, commits the actual cost on success', async () => {
    const { meter, rm } = setup({ cost: (r) => r.tokens ?? 1 })
    await meter.grant('u', 100)
    const { call, credits } = await admitted(rm, { user: 'u', tokens: 40 })
    expect(credits).toMatchObject({ account: 'u', cost: 40, actual: 40 })
    expect(credits.balance?.available).toBe(60)
    credits.actual = 25
    await call.finish('success')
    expect(credits.settlement).toMatchObject({ charged: 25 })
    expect(credits.balance).toMatchObject({ total: 75, held: 0, available: 75 })
    await expectLedgerReplays(meter, 'u')
  })

  it.each(['failure', 'abort'] as const)('releases on %s', async (reason) => {
    const { meter, rm } = setup({ cost: 10 })
    await meter.grant('u', 100)
    const { call } = await admitted(rm, { user: 'u' })
    await call.finish(reason)
    expect((await meter.balance('u')).available).toBe(100)
  })

  it("commits on abort under onAbort: 'commit'", async () => {
    const { meter, rm } = setup({ cost: 10, onAbort: 'commit' })
    await meter.grant('u', 100)
    const { call } = await admitted(rm, { user: 'u' })
    await call.finish('abort')
    expect((await meter.balance('u')).total).toBe(90)
  })

  it('settles exactly once', async () => {
    const { meter, rm } = setup({ cost: 10 })
    await meter.grant('u', 100)
    const { call } = await admitted(rm, { user: 'u' })
    await Promise.all([call.finish('success'), call.finish('failure'), call.finish('abort')])
    expect((await meter.balance('u')).total).toBe(90)
    expect((await meter.ledger('u')).entries.map((e) => e.type)).toEqual([
      'commit',
      'hold',
      'grant',
    ])
  })

  it('refuses with a 402 problem carrying account, required and available', async () => {
    const { meter, rm } = setup({ cost: 30 })
    await meter.grant('u', 20)
    const a = await rm.start({ user: 'u' }).admit()
    expect(a.type).toBe('refused')
    if (a.type !== 'refused') return
    expect(a.problem).toMatchObject({
      status: 402,
      code: 'insufficient_credits',
      title: 'Insufficient credits',
      account: 'u',
      required: 30,
      available: 20,
    })
    expect(a.problem.type).toMatch(/^https:\/\//)
    expect(a.credits).toEqual({ account: 'u', cost: 30, available: 20 })
  })

  it('refuses a bad account or cost from the request with 400', async () => {
    const { rm } = setup({ cost: (r) => r.tokens ?? 0 })
    const a = await rm.start({ user: '', tokens: 1 }).admit()
    expect(a.type === 'refused' && a.problem).toMatchObject({ status: 400, field: 'account' })
    const b = await rm.start({ user: 'u', tokens: -3 }).admit()
    expect(b.type === 'refused' && b.problem).toMatchObject({ status: 400, field: 'amount' })
  })

  it("rethrows the app's own errors from account()", async () => {
    const { rm } = setup({
      account: () => {
        throw new TypeError('no user')
      },
    })
    // Thrown at once by a sync account(); a rejection from an async one.
    expect(() => rm.start({ user: 'u' }).admit()).toThrow('no user')
    const async = setup({
      account: async () => {
        throw new TypeError('no user yet')
      },
    })
    await expect(async.rm.start({ user: 'u' }).admit()).rejects.toThrow('no user yet')
  })

  it('answers at once when every step does (memory store, sync options)', async () => {
    const { meter, rm } = setup({ cost: 2 })
    await meter.grant('u', 10)
    const admission = rm.start({ user: 'u' }).admit()
    expect(admission).not.toBeInstanceOf(Promise)
    expect((admission as { type: string }).type).toBe('admitted')
  })

  it('cost 0 reserves nothing and reports the balance', async () => {
    const { meter, rm } = setup({ cost: 0 })
    await meter.grant('u', 7)
    const { call, credits } = await admitted(rm, { user: 'u' })
    expect(credits.hold).toBeNull()
    expect(credits.balance?.available).toBe(7)
    await call.finish('success')
    expect((await meter.ledger('u')).entries).toHaveLength(1)
  })

  it('skip bypasses metering, sync or async', async () => {
    const { meter, rm } = setup({ skip: async (r) => r.user === 'admin' })
    expect((await rm.start({ user: 'admin' }).admit()).type).toBe('skipped')
    expect((await meter.ledger('admin')).entries).toHaveLength(0)
  })

  it('a finish while admitting releases the hold once it exists, and the handler does not run', async () => {
    // An async account function: the admission is still in flight when the client leaves.
    const { meter, rm } = setup({ cost: 5, account: async (r) => r.user })
    await meter.grant('u', 10)
    const call = rm.start({ user: 'u' })
    const pending = call.admit()
    await call.finish('abort')
    expect((await pending).type).toBe('finished')
    await vi.waitFor(async () => expect((await meter.balance('u')).held).toBe(0))
    expect((await meter.balance('u')).total).toBe(10)
  })
})

describe('finishResponse', () => {
  it('charges a response sent whole when shouldCharge says so, releases an error status', async () => {
    const { meter, rm } = setup({ cost: 10 })
    await meter.grant('u', 100)
    const ok = await admitted(rm, { user: 'u' })
    await ok.call.finishResponse({ status: 200 }, true)
    const bad = await admitted(rm, { user: 'u' })
    await bad.call.finishResponse({ status: 500 }, true)
    expect(await meter.balance('u')).toMatchObject({ total: 90, held: 0 })
  })

  it('a response not sent whole is an abort', async () => {
    const { meter, rm } = setup({ cost: 10, onAbort: 'commit' })
    await meter.grant('u', 100)
    const { call, credits } = await admitted(rm, { user: 'u' })
    credits.actual = 3
    await call.finishResponse({ status: 200 }, false)
    expect((await meter.balance('u')).total).toBe(97)
  })

  it('a shouldCharge that throws is reported and not charged', async () => {
    const onError = vi.fn()
    const boom = new Error('bad predicate')
    const { meter, rm } = setup({
      cost: 10,
      onError,
      shouldCharge: () => {
        throw boom
      },
    })
    await meter.grant('u', 100)
    const { call } = await admitted(rm, { user: 'u' })
    await call.finishResponse({ status: 200 }, true)
    expect(onError).toHaveBeenCalledWith(boom, { user: 'u' })
    expect(await meter.balance('u')).toMatchObject({ total: 100, held: 0 })
  })
})

describe('store failure', () => {
  function failing(): Store {
    const inner = memoryStore()
    return {
      ...inner,
      kind: 'failing',
      execute: () => {
        throw new StoreUnavailableError('down')
      },
    }
  }

  it('closed → refused with a 503 problem', async () => {
    const { rm } = setup({}, createMeter({ store: failing() }))
    const a = await rm.start({ user: 'u' }).admit()
    expect(a.type === 'refused' && a.problem).toMatchObject({
      status: 503,
      code: 'store_unavailable',
    })
  })

  it('open → unmetered, onError called', async () => {
    const onError = vi.fn()
    const { rm } = setup({ failMode: 'open', onError }, createMeter({ store: failing() }))
    const a = await rm.start({ user: 'u' }).admit()
    expect(a.type).toBe('unmetered')
    expect(onError).toHaveBeenCalledWith(expect.any(StoreUnavailableError), { user: 'u' })
  })
})

describe('actual cost', () => {
  it('a bad actual is reported and the reserved cost is charged', async () => {
    const onError = vi.fn()
    const { meter, rm } = setup({ cost: 10, onError })
    await meter.grant('u', 100)
    const { call, credits } = await admitted(rm, { user: 'u' })
    ;(credits as RequestCredits).actual = -1
    await call.finish('success')
    expect(onError).toHaveBeenCalledWith(expect.any(InvalidInputError), { user: 'u' })
    expect((await meter.balance('u')).total).toBe(90)
  })

  it("above the hold under overage 'reject': reported, and the reserved cost is charged", async () => {
    const onError = vi.fn()
    const meter = createMeter({ store: memoryStore(), cache: false, overage: 'reject' })
    const { rm } = setup({ cost: 10, onError }, meter)
    await meter.grant('u', 100)
    const { call, credits } = await admitted(rm, { user: 'u' })
    credits.actual = 40
    await call.finish('success')
    expect(onError).toHaveBeenCalledWith(expect.objectContaining({ code: 'overage' }), {
      user: 'u',
    })
    expect(credits.settlement).toMatchObject({ charged: 10 })
    expect(await meter.balance('u')).toMatchObject({ total: 90, held: 0 })
  })

  it('above the hold follows the overage policy (clamp by default)', async () => {
    const { meter, rm } = setup({ cost: 10 })
    await meter.grant('u', 15)
    const { call, credits } = await admitted(rm, { user: 'u' })
    credits.actual = 40
    await call.finish('success')
    expect(credits.settlement).toMatchObject({ charged: 15, shortfall: 25 })
  })
})

describe('heartbeat', () => {
  it('extends the hold of a request that outlives its TTL, and stops when it finishes', async () => {
    vi.useFakeTimers({ now: Date.UTC(2030, 0, 1) })
    const meter = createMeter({ store: memoryStore(), cache: false })
    const { rm } = setup({ cost: 5, ttlMs: 1_000 }, meter)
    await meter.grant('u', 10)
    const { call, credits } = await admitted(rm, { user: 'u' })
    const first = credits.hold!.expiresAt
    await vi.advanceTimersByTimeAsync(5_000)
    expect((await meter.balance('u')).held).toBe(5)
    await call.finish('success')
    expect(credits.settlement).toMatchObject({ charged: 5 })
    expect(rm.running).toBe(0)
    const extends_ = (await meter.ledger('u')).entries.filter((e) => e.type === 'hold')
    expect(extends_).toHaveLength(1)
    expect(first).toBeLessThan(Date.now())
  })

  it("holds get the adapter's ttlMs, not the meter's default", async () => {
    const meter = createMeter({ store: memoryStore(), cache: false, defaultTtlMs: 2_000 })
    const { rm } = setup({ cost: 1, ttlMs: 5_000 }, meter)
    await meter.grant('u', 10)
    const { credits } = await admitted(rm, { user: 'u' })
    expect(credits.hold!.expiresAt - credits.hold!.createdAt).toBe(5_000)
    const defaults = setup({ cost: 1 }, meter).rm
    const second = await admitted(defaults, { user: 'u' })
    expect(second.credits.hold!.expiresAt - second.credits.hold!.createdAt).toBe(60_000)
  })

  it('without the heartbeat a hold lapses (the test above can fail)', async () => {
    vi.useFakeTimers({ now: Date.UTC(2030, 0, 1) })
    const meter = createMeter({ store: memoryStore(), cache: false })
    await meter.grant('u', 10)
    const hold = await meter.reserve('u', 5, { ttlMs: 1_000 })
    await vi.advanceTimersByTimeAsync(5_000)
    await expect(hold.commit()).rejects.toMatchObject({ code: 'hold_expired' })
  })
})

describe('problemDetails', () => {
  it('hides the message of an error that is not a Tollgate error', () => {
    expect(problemDetails(new Error('secret connection string'))).toEqual({
      type: 'about:blank',
      title: 'Internal Server Error',
      status: 500,
      detail: 'the request could not be completed',
      code: 'internal',
    })
    expect(PROBLEM_CONTENT_TYPE).toBe('application/problem+json')
  })
})
