import { createMeter } from '@tollgate/core'
import { generateCode } from '@tollgate/core/engine'
import { expect } from 'vitest'
import { DAY, HOUR, MINUTE, ruleGroup, START, useMeter } from '../context.js'
import type { ConformanceOptions } from '../describe-store-conformance.js'
import { expectLedgerReplays, readLedger } from '../testing/ledger.js'
import { spyStore } from '../testing/stores.js'
import { canonicalCodePattern, luhnValid, withTypo } from './code-checks.js'

/** DESIGN §1 "Redeem codes": format, redemption, unavailability, rate limit, hashing. */
export function redeemCodeRules(options: ConformanceOptions): void {
  ruleGroup(options, 'redeem codes', (test) => {
    const t = useMeter(options)

    test('codes: createCodes returns count plaintext codes in canonical form PFX-XXXX-XXXX-XXXX-C', async () => {
      const res = await t.meter.createCodes({ credits: 500, count: 25, prefix: 'PROMO' })
      expect(typeof res.batchId).toBe('string')
      expect(res).toMatchObject({ count: 25, credits: 500, codeExpiresAt: null, replayed: false })
      expect(res.codes).toHaveLength(25)
      expect(new Set(res.codes).size).toBe(25)
      for (const code of res.codes) {
        expect(code).toMatch(canonicalCodePattern('PROMO'))
        expect(luhnValid(code), `${code} has a valid check character`).toBe(true)
      }
    })

    test('codes: the prefix defaults to TG and must be 1–10 of A–Z, 0–9', async () => {
      const { codes } = await t.meter.createCodes({ credits: 1, count: 1 })
      expect(codes[0]).toMatch(canonicalCodePattern('TG'))
      const ten = await t.meter.createCodes({ credits: 1, count: 1, prefix: 'ABCDE12345' })
      expect(ten.codes[0]).toMatch(canonicalCodePattern('ABCDE12345'))
      for (const prefix of ['', 'tg', 'ABCDE123456', 'T-G']) {
        await expect(t.meter.createCodes({ credits: 1, count: 1, prefix })).rejects.toMatchObject({
          code: 'invalid_input',
        })
      }
    })

    test('codes: credits ≥ 1, count ≥ 1 and codeExpiresAt in the future', async () => {
      for (const bad of [
        { credits: 0, count: 1 },
        { credits: 1, count: 0 },
        { credits: 1.5, count: 1 },
        { credits: 1, count: 1, codeExpiresAt: START },
        { credits: 1, count: 1, maxRedemptions: 0 },
      ]) {
        await expect(t.meter.createCodes(bad)).rejects.toMatchObject({ code: 'invalid_input' })
      }
    })

    test('redeem: grants the credits and returns { redemptionId, creditsGranted, newBalance, expiresAt }', async () => {
      await t.meter.grant('a', 100)
      const { codes } = await t.meter.createCodes({ credits: 500, count: 1 })
      const r = await t.meter.redeem('a', codes[0]!)
      expect(typeof r.redemptionId).toBe('string')
      expect(r).toMatchObject({
        account: 'a',
        creditsGranted: 500,
        newBalance: 600,
        expiresAt: null,
        replayed: false,
      })
      expect(r.balance).toMatchObject({ total: 600, available: 600 })
      // Codes are promotions by default.
      expect(r.balance.buckets).toContainEqual({
        id: r.grantId,
        remaining: 500,
        held: 0,
        expiresAt: null,
        priority: 50,
        category: 'promotional',
      })
      await expectLedgerReplays(t.meter, 'a')
    })

    test('redeem: the ledger entry carries the redemption id', async () => {
      const { codes } = await t.meter.createCodes({ credits: 250, count: 1 })
      const r = await t.meter.redeem('a', codes[0]!)
      const [entry] = await readLedger(t.meter, 'a')
      expect(entry).toMatchObject({
        type: 'redeem',
        delta: 250,
        balanceAfter: 250,
        redemptionId: r.redemptionId,
        grantId: r.grantId,
        at: START,
      })
    })

    test('redeem: the batch priority and category go to the bucket', async () => {
      const { codes } = await t.meter.createCodes({
        credits: 10,
        count: 1,
        priority: 5,
        category: 'paid',
      })
      const r = await t.meter.redeem('a', codes[0]!)
      expect(r.balance.buckets).toMatchObject([{ priority: 5, category: 'paid', remaining: 10 }])
    })

    test('redeem: case, spaces and hyphens are forgiven', async () => {
      const { codes } = await t.meter.createCodes({ credits: 10, count: 2 })
      const spaced = codes[0]!.toLowerCase().replaceAll('-', ' ')
      expect((await t.meter.redeem('a', spaced)).creditsGranted).toBe(10)
      const compact = codes[1]!.replaceAll('-', '').toLowerCase()
      expect((await t.meter.redeem('a', compact)).creditsGranted).toBe(10)
      expect((await t.balance('a')).total).toBe(20)
    })

    test('redeem: a typo is InvalidInputError without a store lookup', async () => {
      const { codes } = await t.meter.createCodes({ credits: 10, count: 1 })
      const spy = spyStore(t.store)
      const m = createMeter({ store: spy.store, tenant: t.tenant, clock: t.now })
      const typo = withTypo(codes[0]!)
      expect(typo).not.toBe(codes[0])
      await expect(m.redeem('a', typo)).rejects.toMatchObject({
        code: 'invalid_input',
        status: 400,
        field: 'code',
      })
      for (const bad of ['TG-1234', 'not a code', `${codes[0]!}U`, codes[0]!.replace('TG', 'T!')]) {
        await expect(m.redeem('a', bad)).rejects.toMatchObject({ code: 'invalid_input' })
      }
      expect(spy.executes).toHaveLength(0)
      // And the real code still works.
      expect((await m.redeem('a', codes[0]!)).creditsGranted).toBe(10)
    })

    test('redeem: an unknown well-formed code is InvalidInputError', async () => {
      await t.meter.createCodes({ credits: 10, count: 3 })
      await expect(t.meter.redeem('a', generateCode('TG'))).rejects.toMatchObject({
        code: 'invalid_input',
        status: 400,
        field: 'code',
      })
      expect((await t.balance('a')).total).toBe(0)
    })

    test('redeem: already redeemed by this account is CodeUnavailableError already_redeemed', async () => {
      const { codes } = await t.meter.createCodes({ credits: 10, count: 1, maxRedemptions: 5 })
      await t.meter.redeem('a', codes[0]!)
      await expect(t.meter.redeem('a', codes[0]!)).rejects.toMatchObject({
        code: 'code_unavailable',
        status: 402,
        reason: 'already_redeemed',
      })
      expect((await t.balance('a')).total).toBe(10)
      await expectLedgerReplays(t.meter, 'a')
    })

    test('redeem: another account can redeem a multi-use code until maxRedemptions', async () => {
      const { codes } = await t.meter.createCodes({ credits: 10, count: 1, maxRedemptions: 2 })
      const code = codes[0]!
      expect((await t.meter.redeem('alice', code)).creditsGranted).toBe(10)
      expect((await t.meter.redeem('bob', code)).creditsGranted).toBe(10)
      await expect(t.meter.redeem('carol', code)).rejects.toMatchObject({
        code: 'code_unavailable',
        status: 402,
        reason: 'exhausted',
      })
      expect((await t.balance('carol')).total).toBe(0)
    })

    test('redeem: a used single-use code is CodeUnavailableError exhausted for others', async () => {
      const { codes } = await t.meter.createCodes({ credits: 10, count: 1 })
      await t.meter.redeem('alice', codes[0]!)
      await expect(t.meter.redeem('bob', codes[0]!)).rejects.toMatchObject({
        code: 'code_unavailable',
        reason: 'exhausted',
      })
    })

    test('redeem: an expired code is CodeUnavailableError expired', async () => {
      const { codes } = await t.meter.createCodes({
        credits: 10,
        count: 2,
        codeExpiresAt: START + HOUR,
      })
      t.setNow(START + HOUR - 1)
      expect((await t.meter.redeem('alice', codes[0]!)).creditsGranted).toBe(10)
      t.setNow(START + HOUR)
      await expect(t.meter.redeem('bob', codes[1]!)).rejects.toMatchObject({
        code: 'code_unavailable',
        reason: 'expired',
      })
    })

    test('redeem: validityDays sets the expiry of the redeemed credits', async () => {
      const { codes } = await t.meter.createCodes({ credits: 10, count: 1, validityDays: 7 })
      // Counted from the redemption, not from the batch.
      t.advance(DAY)
      const r = await t.meter.redeem('a', codes[0]!)
      expect(r.expiresAt).toBe(START + 8 * DAY)
      expect(r.balance.buckets).toMatchObject([{ expiresAt: START + 8 * DAY }])
      t.setNow(START + 8 * DAY)
      expect((await t.balance('a')).total).toBe(0)
      await expectLedgerReplays(t.meter, 'a')
    })

    test('redeem: failed attempts are rate-limited per account (RateLimitedError after 10)', async () => {
      const { codes } = await t.meter.createCodes({ credits: 10, count: 3 })
      const used = (await t.meter.createCodes({ credits: 1, count: 1 })).codes[0]!
      await t.meter.redeem('other', used)
      // Unknown and unavailable codes both count.
      for (let i = 0; i < 9; i++) {
        await expect(t.meter.redeem('a', generateCode('TG'))).rejects.toMatchObject({
          code: 'invalid_input',
        })
      }
      await expect(t.meter.redeem('a', used)).rejects.toMatchObject({ code: 'code_unavailable' })
      t.advance(MINUTE)
      // The 11th attempt is refused without a lookup, even for a good code.
      await expect(t.meter.redeem('a', codes[0]!)).rejects.toMatchObject({
        code: 'rate_limited',
        status: 429,
        retryAfterMs: HOUR - MINUTE,
      })
      expect((await t.balance('a')).total).toBe(0)
      // Per account: another account is not limited.
      expect((await t.meter.redeem('b', codes[1]!)).creditsGranted).toBe(10)
      // Once the window has passed, the account may try again.
      t.setNow(START + HOUR)
      expect((await t.meter.redeem('a', codes[0]!)).creditsGranted).toBe(10)
    })

    test('redeem: malformed codes do not count as failed attempts', async () => {
      const { codes } = await t.meter.createCodes({ credits: 10, count: 1 })
      for (let i = 0; i < 15; i++) {
        await expect(t.meter.redeem('a', withTypo(codes[0]!))).rejects.toMatchObject({
          code: 'invalid_input',
        })
      }
      expect((await t.meter.redeem('a', codes[0]!)).creditsGranted).toBe(10)
    })

    test('redeem: codes are stored as hashes and never returned after creation', async () => {
      const spy = spyStore(t.store)
      const m = createMeter({ store: spy.store, tenant: t.tenant, clock: t.now })
      const { codes } = await m.createCodes({
        credits: 10,
        count: 3,
        maxRedemptions: 2,
        idempotencyKey: 'batch-1',
      })
      // Each code in its canonical and its compact form.
      const secrets = codes.flatMap((c) => [c, c.replaceAll('-', '')])
      const stored = JSON.stringify(spy.batches)
      for (const s of secrets) expect(stored).not.toContain(s)
      const r = await m.redeem('a', codes[0]!)
      await expect(m.redeem('a', codes[0]!)).rejects.toMatchObject({ code: 'code_unavailable' })
      const replay = await m.createCodes({
        credits: 10,
        count: 3,
        maxRedemptions: 2,
        idempotencyKey: 'batch-1',
      })
      expect(replay.codes).toEqual([])
      const seen = JSON.stringify([
        r,
        replay,
        await m.ledger('a'),
        await m.balance('a', { fresh: true }),
        spy.executes.map((e) => e.op),
      ])
      for (const s of secrets) expect(seen).not.toContain(s)
    })
  })
}
