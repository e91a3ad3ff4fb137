import {
  AuthError,
  createMeter,
  type ErrorCode,
  isTollgateError,
  StoreUnavailableError,
} from '@tollgate/core'
import { generateCode } from '@tollgate/core/engine'
import { expect } from 'vitest'
import { ruleGroup, SECOND, START, useMeter } from '../context.js'
import type { ConformanceOptions } from '../describe-store-conformance.js'
import { readLedger } from '../testing/ledger.js'
import { failingStore, spyStore } from '../testing/stores.js'

/** Awaits `promise` expecting a rejection and returns what it rejected with. */
async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (err) {
    return err
  }
  throw new Error('expected the operation to fail')
}

/** DESIGN §1 "Errors" and "Amounts": stable codes and statuses, checks by code, validation first. */
export function errorRules(options: ConformanceOptions): void {
  ruleGroup(options, 'errors', (test) => {
    const t = useMeter(options)

    test('errors: every error carries a stable code and HTTP status; isTollgateError(err, code) works', async () => {
      const m = t.meter
      const reject = t.meterWith({ overage: 'reject', redeemAttempts: { max: 1 } })
      await m.grant('a', 10)
      await m.grant('k', 1, { idempotencyKey: 'used' })
      const resolved = await m.reserve('a', 1)
      await resolved.release()
      const expiring = await m.reserve('a', 1, { ttlMs: SECOND })
      const held = await m.reserve('a', 1)
      const { codes } = await m.createCodes({ credits: 1, count: 1 })
      await m.redeem('a', codes[0]!)
      const cases: [ErrorCode, number, () => Promise<unknown>][] = [
        ['invalid_input', 400, () => m.debit('a', -1)],
        ['insufficient_credits', 402, () => m.debit('a', 1_000)],
        ['code_unavailable', 402, () => m.redeem('a', codes[0]!)],
        ['not_found', 404, () => m.commit('hld_missing')],
        ['idempotency_conflict', 409, () => m.grant('k', 2, { idempotencyKey: 'used' })],
        ['hold_resolved', 409, () => resolved.commit()],
        ['overage', 409, () => reject.commit(held.id, 2)],
        [
          'hold_expired',
          410,
          async () => {
            t.advance(2 * SECOND)
            return expiring.commit()
          },
        ],
        [
          'rate_limited',
          429,
          async () => {
            await expect(reject.redeem('r', generateCode('TG'))).rejects.toMatchObject({
              code: 'invalid_input',
            })
            return reject.redeem('r', generateCode('TG'))
          },
        ],
      ]
      for (const [code, status, run] of cases) {
        const err = await rejectionOf(run())
        expect(err, code).toMatchObject({ code, status })
        expect(err, code).toBeInstanceOf(Error)
        expect(isTollgateError(err), code).toBe(true)
        expect(isTollgateError(err, code), code).toBe(true)
        expect(isTollgateError(err, code === 'not_found' ? 'auth' : 'not_found'), code).toBe(false)
        expect(typeof (err as Error).message, code).toBe('string')
        const json = (err as { toJSON(): Record<string, unknown> }).toJSON()
        expect(json, code).toMatchObject({ code, status })
      }
    })

    test('errors: AuthError is auth (401) and StoreUnavailableError is store_unavailable (503)', () => {
      expect(new AuthError()).toMatchObject({ code: 'auth', status: 401 })
      expect(new StoreUnavailableError()).toMatchObject({ code: 'store_unavailable', status: 503 })
    })

    test('errors: a failing store surfaces as StoreUnavailableError (503) with the cause', async () => {
      const cause = new Error('connection refused')
      const m = createMeter({ store: failingStore(cause), clock: t.now })
      const err = await rejectionOf(m.grant('a', 1))
      expect(err).toMatchObject({ code: 'store_unavailable', status: 503, cause })
      await expect(m.ledger('a')).rejects.toMatchObject({ code: 'store_unavailable', cause })
    })

    test('errors: isTollgateError checks by brand and code, not instanceof (two package copies)', async () => {
      // What an error thrown by another copy of @tollgate/core looks like to this one.
      const foreign = Object.assign(new Error('hold was already committed'), {
        code: 'hold_resolved',
        status: 409,
        [Symbol.for('tollgate.error')]: true,
      })
      expect(isTollgateError(foreign)).toBe(true)
      expect(isTollgateError(foreign, 'hold_resolved')).toBe(true)
      expect(isTollgateError(foreign, 'not_found')).toBe(false)
      expect(isTollgateError(Object.assign(new Error('x'), { code: 'hold_resolved' }))).toBe(false)
      expect(isTollgateError(null)).toBe(false)
      expect(isTollgateError('not_found')).toBe(false)
    })

    test('errors: InvalidInputError names the field and is raised before the store is called', async () => {
      const spy = spyStore(t.store)
      const m = createMeter({ store: spy.store, tenant: t.tenant, clock: t.now })
      await expect(m.debit('a', -1)).rejects.toMatchObject({
        code: 'invalid_input',
        field: 'amount',
      })
      await expect(m.grant('', 1)).rejects.toMatchObject({ field: 'account' })
      await expect(m.reserve('a', 1, { ttlMs: 1 })).rejects.toMatchObject({ field: 'ttlMs' })
      await expect(m.commit('', 1)).rejects.toMatchObject({ code: 'invalid_input' })
      await expect(m.startCycle('a', { amount: 1, every: { days: -1 } })).rejects.toMatchObject({
        code: 'invalid_input',
      })
      await expect(m.createCodes({ credits: 0, count: 1 })).rejects.toMatchObject({
        code: 'invalid_input',
      })
      await expect(m.ledger('a', { limit: 1001 })).rejects.toMatchObject({ code: 'invalid_input' })
      expect(spy.executes).toHaveLength(0)
      expect(spy.batches).toHaveLength(0)
    })

    test('errors: unknown option keys are InvalidInputError naming the key', async () => {
      await expect(
        t.meter.grant('a', 1, { expires: START + SECOND } as unknown as { priority: number }),
      ).rejects.toMatchObject({ code: 'invalid_input', field: 'expires' })
      await expect(
        t.meter.reserve('a', 0, { ttl: 5_000 } as unknown as { ttlMs: number }),
      ).rejects.toMatchObject({ code: 'invalid_input', field: 'ttl' })
      expect(await readLedger(t.meter, 'a')).toEqual([])
    })

    test('errors: metadata must be a JSON object of at most 4 KiB', async () => {
      await expect(
        t.meter.grant('a', 1, { metadata: { blob: 'x'.repeat(5_000) } }),
      ).rejects.toMatchObject({ code: 'invalid_input' })
      await expect(
        t.meter.grant('a', 1, { metadata: 'text' as unknown as Record<string, unknown> }),
      ).rejects.toMatchObject({ code: 'invalid_input' })
      const ok = await t.meter.grant('a', 1, { metadata: { blob: 'x'.repeat(3_000) } })
      expect(ok.metadata).toEqual({ blob: 'x'.repeat(3_000) })
    })

    test('amounts: every amount must be a non-negative safe integer', async () => {
      await t.meter.grant('a', 100)
      const h = await t.meter.reserve('a', 10)
      const bad = [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, '1' as unknown as number]
      for (const n of bad) {
        const label = String(n)
        await expect(t.meter.grant('a', n), label).rejects.toMatchObject({ code: 'invalid_input' })
        await expect(t.meter.debit('a', n), label).rejects.toMatchObject({ code: 'invalid_input' })
        await expect(t.meter.reserve('a', n), label).rejects.toMatchObject({
          code: 'invalid_input',
        })
        await expect(h.commit(n), label).rejects.toMatchObject({ code: 'invalid_input' })
        // adjust is signed: only -1 is a valid delta among these.
        if (n !== -1) {
          await expect(t.meter.adjust('a', n), label).rejects.toMatchObject({
            code: 'invalid_input',
          })
        }
        await expect(
          t.meter.startCycle('a', { amount: n, every: 'day' }),
          label,
        ).rejects.toMatchObject({
          code: 'invalid_input',
        })
        await expect(t.meter.createCodes({ credits: n, count: 1 }), label).rejects.toMatchObject({
          code: 'invalid_input',
        })
      }
      expect(await t.balance('a')).toMatchObject({ total: 100, held: 10 })
      expect(await readLedger(t.meter, 'a')).toHaveLength(2)
    })

    test('errors: InsufficientCreditsError carries account, required and available', async () => {
      await t.meter.grant('a', 7)
      const err = await rejectionOf(t.meter.reserve('a', 8))
      expect(err).toMatchObject({
        code: 'insufficient_credits',
        status: 402,
        account: 'a',
        required: 8,
        available: 7,
      })
      expect((err as { toJSON(): Record<string, unknown> }).toJSON()).toMatchObject({
        code: 'insufficient_credits',
        required: 8,
        available: 7,
      })
    })
  })
}
