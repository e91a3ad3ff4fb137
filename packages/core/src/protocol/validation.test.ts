import { afterEach, describe, expect, it, vi } from 'vitest'
import { generateCode } from '../engine/codes.js'
import { InvalidInputError } from '../errors.js'
import { createMeter, type Meter, type MeterOptions } from '../meter/meter.js'
import { memoryStore } from '../store/memory-store.js'
import { encodeCursor, type Store } from '../store/store.js'
import { checkText, isStorableText, unstorablePath } from './validation.js'

const T0 = Date.UTC(2030, 0, 1)
const DAY = 86_400_000
const A = 'acct_1'

/** Counts every call the meter makes into the store. */
function countingStore(inner: Store): Store & { calls: () => number } {
  let calls = 0
  return {
    kind: inner.kind,
    calls: () => calls,
    execute: (req) => {
      calls++
      return inner.execute(req)
    },
    ledger: (t, a, r) => {
      calls++
      return inner.ledger(t, a, r)
    },
    createCodes: (t, b) => {
      calls++
      return inner.createCodes(t, b)
    },
    dueAccounts: (t, n, l) => {
      calls++
      return inner.dueAccounts(t, n, l)
    },
    prune: (t, b) => {
      calls++
      return inner.prune(t, b)
    },
    close: () => inner.close(),
  }
}

interface Ctx {
  meter: Meter
  holdId: string
  code: string
  now: number
}

async function setup(): Promise<{
  ctx: Ctx
  store: ReturnType<typeof countingStore>
  snapshot: () => Promise<unknown>
}> {
  const store = countingStore(memoryStore())
  const now = T0
  const meter = createMeter({ store, clock: () => now })
  await meter.grant(A, 100, { validityDays: 30 })
  await meter.grant(A, 50)
  const hold = await meter.reserve(A, 10)
  await meter.debit(A, 5)
  const { codes } = await meter.createCodes({ credits: 7, count: 1 })
  const snapshot = async () => ({
    balance: await meter.balance(A, { fresh: true }),
    ledger: await meter.ledger(A, { limit: 1000 }),
  })
  return { ctx: { meter, holdId: hold.id, code: codes[0]!, now }, store, snapshot }
}

type Case = [label: string, field: string | RegExp, call: (c: Ctx) => Promise<unknown>]

const BAD_NUMBERS: [string, unknown][] = [
  ['negative', -1],
  ['fractional', 1.5],
  ['NaN', Number.NaN],
  ['Infinity', Number.POSITIVE_INFINITY],
  ['-Infinity', Number.NEGATIVE_INFINITY],
  ['2**53', 2 ** 53],
  ["string '5'", '5'],
  ['null', null],
]
const without = (labels: string[]) => BAD_NUMBERS.filter(([l]) => !labels.includes(l))
const n = (v: unknown) => v as number

const numberCases = (
  what: string,
  field: string | RegExp,
  values: [string, unknown][],
  call: (c: Ctx, v: unknown) => Promise<unknown>,
): Case[] => values.map(([label, v]) => [`${what}: ${label}`, field, (c) => call(c, v)])

const cases: Case[] = [
  // ---- amounts and other numbers
  ...numberCases('grant amount', 'amount', [...BAD_NUMBERS, ['zero', 0]], (c, v) =>
    c.meter.grant(A, n(v)),
  ),
  ...numberCases('debit amount', 'amount', BAD_NUMBERS, (c, v) => c.meter.debit(A, n(v))),
  ...numberCases('adjust delta', 'delta', [...without(['negative']), ['zero', 0]], (c, v) =>
    c.meter.adjust(A, n(v)),
  ),
  ...numberCases('reserve amount', 'amount', BAD_NUMBERS, (c, v) => c.meter.reserve(A, n(v))),
  ...numberCases('commit actual', 'actual', BAD_NUMBERS, (c, v) => c.meter.commit(c.holdId, n(v))),
  ...numberCases(
    'extend ttlMs',
    'ttlMs',
    [...BAD_NUMBERS, ['999 ms', 999], ['24 h + 1 ms', 86_400_001], ['zero', 0]],
    (c, v) => c.meter.extend(c.holdId, n(v)),
  ),
  [
    'extend ttlMs: missing',
    'ttlMs',
    (c) => c.meter.extend(c.holdId, undefined as unknown as number),
  ],
  ...numberCases(
    'reserve ttlMs',
    'ttlMs',
    [...BAD_NUMBERS, ['999 ms', 999], ['24 h + 1 ms', 86_400_001], ['zero', 0]],
    (c, v) => c.meter.reserve(A, 1, { ttlMs: n(v) }),
  ),
  ...numberCases('grant priority', 'priority', BAD_NUMBERS, (c, v) =>
    c.meter.grant(A, 1, { priority: n(v) }),
  ),
  ...numberCases('grant validityDays', 'validityDays', [...BAD_NUMBERS, ['zero', 0]], (c, v) =>
    c.meter.grant(A, 1, { validityDays: n(v) }),
  ),
  ...numberCases('grant expiresAt', 'expiresAt', BAD_NUMBERS, (c, v) =>
    c.meter.grant(A, 1, { expiresAt: n(v) }),
  ),
  ...numberCases('ledger limit', 'limit', [...BAD_NUMBERS, ['zero', 0], ['1001', 1001]], (c, v) =>
    c.meter.ledger(A, { limit: n(v) }),
  ),
  ...numberCases('ledger from', 'from', BAD_NUMBERS, (c, v) => c.meter.ledger(A, { from: n(v) })),
  ...numberCases('ledger to', 'to', BAD_NUMBERS, (c, v) => c.meter.ledger(A, { to: n(v) })),
  ...numberCases(
    'configure lowBalanceThreshold',
    'lowBalanceThreshold',
    without(['null']),
    (c, v) => c.meter.configure(A, { lowBalanceThreshold: n(v) }),
  ),
  ...numberCases('configure overdraftLimit', 'overdraftLimit', without(['null']), (c, v) =>
    c.meter.configure(A, { overdraftLimit: n(v) }),
  ),
  ...numberCases('startCycle amount', 'amount', [...BAD_NUMBERS, ['zero', 0]], (c, v) =>
    c.meter.startCycle(A, { amount: n(v), every: 'day' }),
  ),
  ...numberCases('startCycle rollover.max', 'rollover.max', BAD_NUMBERS, (c, v) =>
    c.meter.startCycle(A, { amount: 10, every: 'day', rollover: { max: n(v) } }),
  ),
  ...numberCases('startCycle every.days', /^every/, [...BAD_NUMBERS, ['zero', 0]], (c, v) =>
    c.meter.startCycle(A, { amount: 10, every: { days: n(v) } }),
  ),
  ...numberCases('createCodes credits', 'credits', [...BAD_NUMBERS, ['zero', 0]], (c, v) =>
    c.meter.createCodes({ credits: n(v), count: 1 }),
  ),
  ...numberCases(
    'createCodes count',
    'count',
    [...BAD_NUMBERS, ['zero', 0], ['100001', 100_001]],
    (c, v) => c.meter.createCodes({ credits: 1, count: n(v) }),
  ),
  ...numberCases(
    'createCodes maxRedemptions',
    'maxRedemptions',
    [...BAD_NUMBERS, ['zero', 0]],
    (c, v) => c.meter.createCodes({ credits: 1, count: 1, maxRedemptions: n(v) }),
  ),
  ...numberCases(
    'createCodes validityDays',
    'validityDays',
    [...BAD_NUMBERS, ['zero', 0]],
    (c, v) => c.meter.createCodes({ credits: 1, count: 1, validityDays: n(v) }),
  ),
  ...numberCases('createCodes codeExpiresAt', 'codeExpiresAt', BAD_NUMBERS, (c, v) =>
    c.meter.createCodes({ credits: 1, count: 1, codeExpiresAt: n(v) }),
  ),

  // ---- dates and ranges
  [
    'grant expiresAt in the past',
    'expiresAt',
    (c) => c.meter.grant(A, 1, { expiresAt: c.now - 1 }),
  ],
  ['grant expiresAt = now', 'expiresAt', (c) => c.meter.grant(A, 1, { expiresAt: c.now })],
  [
    'grant expiresAt: a past Date',
    'expiresAt',
    (c) => c.meter.grant(A, 1, { expiresAt: new Date(c.now - DAY) }),
  ],
  [
    'grant expiresAt: an invalid Date',
    'expiresAt',
    (c) => c.meter.grant(A, 1, { expiresAt: new Date(Number.NaN) }),
  ],
  [
    'createCodes codeExpiresAt: an invalid Date',
    'codeExpiresAt',
    (c) => c.meter.createCodes({ credits: 1, count: 1, codeExpiresAt: new Date('soon') }),
  ],
  [
    'grant expiresAt and validityDays together',
    /^(validityDays|expiresAt)$/,
    (c) => c.meter.grant(A, 1, { expiresAt: c.now + DAY, validityDays: 1 }),
  ],
  [
    'grant priority over 1,000,000',
    'priority',
    (c) => c.meter.grant(A, 1, { priority: 1_000_001 }),
  ],
  [
    'grant validityDays over 100 years',
    'validityDays',
    (c) => c.meter.grant(A, 1, { validityDays: 36_501 }),
  ],
  [
    'grant category unknown',
    'category',
    (c) => c.meter.grant(A, 1, { category: 'free' as unknown as 'paid' }),
  ],
  [
    'createCodes codeExpiresAt in the past',
    'codeExpiresAt',
    (c) => c.meter.createCodes({ credits: 1, count: 1, codeExpiresAt: c.now - 1 }),
  ],
  [
    'createCodes codeExpiresAt = now',
    'codeExpiresAt',
    (c) => c.meter.createCodes({ credits: 1, count: 1, codeExpiresAt: new Date(c.now) }),
  ],
  [
    'createCodes prefix lowercase',
    'prefix',
    (c) => c.meter.createCodes({ credits: 1, count: 1, prefix: 'tg' }),
  ],
  [
    'createCodes prefix empty',
    'prefix',
    (c) => c.meter.createCodes({ credits: 1, count: 1, prefix: '' }),
  ],
  [
    'createCodes prefix of 11',
    'prefix',
    (c) => c.meter.createCodes({ credits: 1, count: 1, prefix: 'ABCDEFGHIJK' }),
  ],
  [
    'createCodes prefix with hyphen',
    'prefix',
    (c) => c.meter.createCodes({ credits: 1, count: 1, prefix: 'T-G' }),
  ],
  [
    'createCodes category unknown',
    'category',
    (c) => c.meter.createCodes({ credits: 1, count: 1, category: 'x' as unknown as 'paid' }),
  ],
  [
    'createCodes missing credits',
    'credits',
    (c) => c.meter.createCodes({ count: 1 } as unknown as { credits: number; count: number }),
  ],
  ['ledger types unknown', /^types/, (c) => c.meter.ledger(A, { types: ['bogus' as 'grant'] })],
  ['ledger types empty', 'types', (c) => c.meter.ledger(A, { types: [] })],
  ['ledger cursor garbage', 'cursor', (c) => c.meter.ledger(A, { cursor: 'abc' })],
  ['ledger cursor empty', 'cursor', (c) => c.meter.ledger(A, { cursor: '' })],
  ['ledger cursor raw text', 'cursor', (c) => c.meter.ledger(A, { cursor: 'v1:5' })],
  ['ledger cursor of sequence 0', 'cursor', (c) => c.meter.ledger(A, { cursor: encodeCursor(0) })],
  [
    'ledger cursor of a non-integer',
    'cursor',
    (c) => c.meter.ledger(A, { cursor: Buffer.from('v1:1.5').toString('base64url') }),
  ],
  ['ledger cursor too long', 'cursor', (c) => c.meter.ledger(A, { cursor: 'x'.repeat(201) })],
  [
    'balance fresh not boolean',
    'fresh',
    (c) => c.meter.balance(A, { fresh: 'yes' as unknown as boolean }),
  ],
  [
    'commit overage unknown',
    'overage',
    (c) => c.meter.commit(c.holdId, 1, { overage: 'x' as unknown as 'clamp' }),
  ],
  ['adjust reason empty', 'reason', (c) => c.meter.adjust(A, 1, { reason: '' })],
  [
    'startCycle every unknown',
    /^every/,
    (c) => c.meter.startCycle(A, { amount: 1, every: 'year' as unknown as 'day' }),
  ],
  [
    'startCycle missing every',
    /^every/,
    (c) => c.meter.startCycle(A, { amount: 1 } as unknown as { amount: number; every: 'day' }),
  ],
  [
    'startCycle missing options',
    /^(amount|every|options)$/,
    (c) => c.meter.startCycle(A, undefined as unknown as { amount: number; every: 'day' }),
  ],
  ...numberCases(
    'sweep limit',
    'limit',
    [...BAD_NUMBERS.filter(([l]) => l !== 'null'), ['zero', 0]],
    (c, v) => c.meter.sweep({ limit: n(v) }),
  ),

  // ---- metadata
  ...(['grant', 'debit', 'adjust', 'reserve', 'commit', 'release'] as const).flatMap(
    (method): Case[] =>
      (
        [
          ['over 4 KiB', { x: 'a'.repeat(4089) }],
          ['over 4 KiB in bytes (2-byte characters)', { x: 'é'.repeat(2045) }],
          ['an array', ['a']],
          ['a string', 'meta'],
          ['null', null],
          ['not JSON (BigInt)', { n: 10n }],
        ] as [string, unknown][]
      ).map(
        ([label, metadata]): Case => [
          `${method} metadata: ${label}`,
          'metadata',
          (c) => callWithOptions(c, method, { metadata }),
        ],
      ),
  ),

  // ---- idempotency keys
  ...(
    [
      'grant',
      'debit',
      'adjust',
      'reserve',
      'commit',
      'release',
      'extend',
      'startCycle',
      'stopCycle',
      'createCodes',
      'redeem',
    ] as const
  ).flatMap((method): Case[] =>
    (
      [
        ['empty', ''],
        ['256 characters', 'k'.repeat(256)],
        ['a number', 42],
        ['with NUL', 'k\0'],
        ['a lone surrogate', 'k\uD800'],
      ] as [string, unknown][]
    ).map(
      ([label, idempotencyKey]): Case => [
        `${method} idempotencyKey: ${label}`,
        'idempotencyKey',
        (c) => callWithOptions(c, method, { idempotencyKey }),
      ],
    ),
  ),
]

type OptionMethod =
  | 'grant'
  | 'debit'
  | 'adjust'
  | 'reserve'
  | 'commit'
  | 'release'
  | 'extend'
  | 'balance'
  | 'ledger'
  | 'configure'
  | 'startCycle'
  | 'stopCycle'
  | 'createCodes'
  | 'redeem'
  | 'sweep'

/** Calls `method` with otherwise valid arguments and `options` as its options object. */
function callWithOptions(c: Ctx, method: OptionMethod, options: unknown): Promise<unknown> {
  const m = c.meter
  const o = options as Record<string, never>
  const spread = (base: object) =>
    (typeof options === 'object' && options !== null && !Array.isArray(options)
      ? { ...base, ...options }
      : options) as never
  switch (method) {
    case 'grant':
      return m.grant(A, 1, o)
    case 'debit':
      return m.debit(A, 1, o)
    case 'adjust':
      return m.adjust(A, 1, o)
    case 'reserve':
      return m.reserve(A, 1, o)
    case 'commit':
      return m.commit(c.holdId, undefined, o)
    case 'release':
      return m.release(c.holdId, o)
    case 'extend':
      return m.extend(c.holdId, 5_000, o)
    case 'balance':
      return m.balance(A, o)
    case 'ledger':
      return m.ledger(A, o)
    case 'configure':
      return m.configure(A, o)
    case 'startCycle':
      return m.startCycle(A, spread({ amount: 10, every: 'day' }))
    case 'stopCycle':
      return m.stopCycle(A, o)
    case 'createCodes':
      return m.createCodes(spread({ credits: 1, count: 1 }))
    case 'redeem':
      return m.redeem(A, c.code, o)
    case 'sweep':
      return m.sweep(o)
  }
}

const ALL_OPTION_METHODS: OptionMethod[] = [
  'grant',
  'debit',
  'adjust',
  'reserve',
  'commit',
  'release',
  'extend',
  'balance',
  'ledger',
  'configure',
  'startCycle',
  'stopCycle',
  'createCodes',
  'redeem',
]

// ---- unknown option keys and non-object options, on every method
for (const method of [...ALL_OPTION_METHODS, 'sweep' as const]) {
  cases.push([`${method}: unknown key ttl`, 'ttl', (c) => callWithOptions(c, method, { ttl: 5 })])
  cases.push([`${method}: unknown key foo`, 'foo', (c) => callWithOptions(c, method, { foo: 1 })])
}
const OPTIONS_FIELD: Partial<Record<OptionMethod, string>> = {
  ledger: 'query',
  configure: 'settings',
}
for (const method of ALL_OPTION_METHODS) {
  const field = OPTIONS_FIELD[method] ?? 'options'
  cases.push([`${method}: options null`, field, (c) => callWithOptions(c, method, null)])
  cases.push([`${method}: options a string`, field, (c) => callWithOptions(c, method, 'x')])
}
cases.push([
  'startCycle rollover unknown key',
  /^rollover/,
  (c) =>
    c.meter.startCycle(A, {
      amount: 1,
      every: 'day',
      rollover: { max: 1, foo: 1 } as { max: number },
    }),
])

// ---- accounts
const BAD_ACCOUNTS: [string, unknown][] = [
  ['empty', ''],
  ['201 characters', 'a'.repeat(201)],
  ['201 emoji', '😀'.repeat(201)],
  ['a number', 42],
  ['null', null],
  ['undefined', undefined],
  ['an object', { id: 'x' }],
  ['a lone high surrogate', '\uD800'],
  ['a lone low surrogate', 'ab\uDC00'],
  ['a lone surrogate inside', 'a\uD800b'],
  ['a high surrogate at the end of 200 chars', `${'a'.repeat(199)}\uD83D`],
  ['NUL', 'a\u0000b'],
]
const ACCOUNT_METHODS: [string, (c: Ctx, account: string) => Promise<unknown>][] = [
  ['grant', (c, a) => c.meter.grant(a, 1)],
  ['debit', (c, a) => c.meter.debit(a, 1)],
  ['adjust', (c, a) => c.meter.adjust(a, 1)],
  ['reserve', (c, a) => c.meter.reserve(a, 1)],
  ['balance', (c, a) => c.meter.balance(a)],
  ['balance fresh', (c, a) => c.meter.balance(a, { fresh: true })],
  ['ledger', (c, a) => c.meter.ledger(a)],
  ['configure', (c, a) => c.meter.configure(a, { lowBalanceThreshold: 1 })],
  ['startCycle', (c, a) => c.meter.startCycle(a, { amount: 1, every: 'day' })],
  ['stopCycle', (c, a) => c.meter.stopCycle(a)],
  ['redeem', (c, a) => c.meter.redeem(a, c.code)],
]
for (const [method, call] of ACCOUNT_METHODS) {
  for (const [label, account] of BAD_ACCOUNTS) {
    cases.push([`${method} account: ${label}`, 'account', (c) => call(c, account as string)])
  }
}

// ---- hold ids
const BAD_HOLD_IDS: [string, unknown][] = [
  ['empty', ''],
  ['a number', 42],
  ['null', null],
  ['undefined', undefined],
  ['101 characters', `hld_${'x'.repeat(97)}`],
]
// ---- text that no store can hold: NUL and lone surrogates, in every free-text field
const UNSTORABLE_TEXT: [string, string][] = [
  ['NUL', 'a\u0000b'],
  ['a lone high surrogate', 'a\uD800'],
  ['a lone low surrogate', '\uDC00b'],
]
for (const [label, bad] of UNSTORABLE_TEXT) {
  BAD_HOLD_IDS.push([label, `hld_${bad}`])
  cases.push([`adjust reason: ${label}`, 'reason', (c) => c.meter.adjust(A, 1, { reason: bad })])
  cases.push([
    `ledger cursor: ${label}`,
    'cursor',
    (c) => c.meter.ledger(A, { cursor: `${encodeCursor(1)}${bad}` }),
  ])
  for (const method of ['grant', 'debit', 'adjust', 'reserve', 'commit', 'release'] as const) {
    cases.push([
      `${method} metadata value: ${label}`,
      'metadata.note',
      (c) => callWithOptions(c, method, { metadata: { ok: 'fine', note: bad } }),
    ])
    cases.push([
      `${method} metadata nested value: ${label}`,
      'metadata.a.list.1',
      (c) => callWithOptions(c, method, { metadata: { a: { list: ['x', bad] } } }),
    ])
    cases.push([
      `${method} metadata key: ${label}`,
      'metadata.a',
      (c) => callWithOptions(c, method, { metadata: { a: { [`k${bad}`]: 1 } } }),
    ])
  }
}

for (const [label, id] of BAD_HOLD_IDS) {
  const holdId = id as string
  cases.push([`commit holdId: ${label}`, 'holdId', (c) => c.meter.commit(holdId)])
  cases.push([`release holdId: ${label}`, 'holdId', (c) => c.meter.release(holdId)])
  cases.push([`extend holdId: ${label}`, 'holdId', (c) => c.meter.extend(holdId, 5_000)])
}

// ---- malformed redeem codes
const mangle = (code: string, f: (body: string) => string) => {
  const prefix = code.split('-')[0]!
  return `${prefix}-${f(code.replace(/-/g, '').slice(prefix.length))}`
}
const BAD_CODES: [string, (code: string) => unknown][] = [
  ['empty', () => ''],
  ['too short', () => 'TG-1234-5678'],
  ['13 characters, no prefix', (code) => code.replace(/-/g, '').slice(-13)],
  ['bad character U', (code) => mangle(code, (b) => `U${b.slice(1)}`)],
  ['bad character !', (code) => mangle(code, (b) => `${b.slice(0, 5)}!${b.slice(6)}`)],
  ['wrong check character', (code) => code.slice(0, -1) + (code.endsWith('0') ? '1' : '0')],
  [
    'a substituted character',
    (code) => mangle(code, (b) => `${b[0] === '7' ? '8' : '7'}${b.slice(1)}`),
  ],
  ['bad prefix character', (code) => `T_G${code.slice(2)}`],
  ['prefix of 11 characters', (code) => `ABCDEFGHJKM${code.slice(2)}`],
  ['65 characters', () => `TG-${'0'.repeat(62)}`],
  ['a number', () => 1234],
  ['null', () => null],
]
for (const [label, make] of BAD_CODES) {
  cases.push([`redeem code: ${label}`, 'code', (c) => c.meter.redeem(A, make(c.code) as string)])
}

describe('bad input to every Meter method raises InvalidInputError and changes nothing', () => {
  it.each(cases)('%s', async (_label, field, call) => {
    const { ctx, store, snapshot } = await setup()
    const before = await snapshot()
    const callsBefore = store.calls()
    const p = call(ctx)
    await expect(p).rejects.toBeInstanceOf(InvalidInputError)
    await expect(p).rejects.toMatchObject({
      code: 'invalid_input',
      status: 400,
      field: typeof field === 'string' ? field : expect.stringMatching(field),
    })
    // Validation happens before the store: it was never called.
    expect(store.calls()).toBe(callsBefore)
    expect(await snapshot()).toEqual(before)
  })

  it('has a case for every method', () => {
    const labels = cases.map(([l]) => l)
    for (const m of [...ALL_OPTION_METHODS, 'sweep']) {
      expect(labels.some((l) => l.startsWith(`${m}`))).toBe(true)
    }
    expect(cases.length).toBeGreaterThan(400)
  })
})

describe('edges that are accepted', () => {
  it('a 200-character account, a 200-emoji account and other text are valid', async () => {
    const meter = createMeter({ store: memoryStore(), clock: () => T0 })
    for (const account of [
      'a'.repeat(200),
      '😀'.repeat(200),
      `${'a'.repeat(199)}😀`,
      'ü',
      'user:1/ä 😀 " \' ; -- DROP TABLE',
      ' ',
    ]) {
      const g = await meter.grant(account, 5)
      expect(g.account).toBe(account)
      const hold = await meter.reserve(account, 2)
      expect(hold.account).toBe(account)
      await meter.debit(account, 1)
      await meter.configure(account, { lowBalanceThreshold: 1 })
      const b = await meter.balance(account, { fresh: true })
      expect(b).toMatchObject({ account, total: 4, held: 2, available: 2 })
      const page = await meter.ledger(account)
      expect(page.entries.map((e) => e.type)).toEqual(['debit', 'hold', 'grant'])
      expect(page.entries.every((e) => e.account === account)).toBe(true)
    }
  })

  it('boundary values pass', async () => {
    const now = T0
    const meter = createMeter({ store: memoryStore(), clock: () => now })
    await meter.grant('rich', Number.MAX_SAFE_INTEGER)
    expect((await meter.balance('rich')).total).toBe(Number.MAX_SAFE_INTEGER)
    await meter.grant(A, 1_000_000)
    await meter.grant(A, 1, { expiresAt: now + 1, priority: 0 })
    await meter.grant(A, 1, {
      expiresAt: new Date(now + DAY),
      priority: 1_000_000,
      category: 'promotional',
    })
    await meter.grant(A, 1, { validityDays: 36_500, metadata: { x: 'a'.repeat(4088) } })
    await meter.debit(A, 0)
    await meter.reserve(A, 0)
    const h1 = await meter.reserve(A, 1, { ttlMs: 1_000 })
    const h2 = await meter.reserve(A, 1, { ttlMs: 86_400_000 })
    await meter.extend(h1.id, 86_400_000)
    await meter.extend(h2.id, 1_000)
    await meter.commit(h1.id, 0)
    await meter.adjust(A, -1)
    await meter.ledger(A, { limit: 1 })
    await meter.ledger(A, { limit: 1000, from: 0, to: now + 1, types: ['grant', 'debit'] })
    await meter.configure(A, { lowBalanceThreshold: null, overdraftLimit: 0 })
    await meter.configure(A, {})
    await meter.startCycle(A, { amount: 1, every: { days: 3_660 }, rollover: { max: 0 } })
    await meter.createCodes({
      credits: 1,
      count: 1,
      prefix: 'ABCDEFGHIJ',
      codeExpiresAt: now + 1,
      validityDays: 1,
      maxRedemptions: 1_000_000_000,
    })
    await meter.grant(A, 1, { idempotencyKey: 'k'.repeat(255) })
    const b = await meter.balance(A, { fresh: true })
    expect(b.held).toBe(1)
  })

  it('a well-formed but unknown code is InvalidInputError on field code (after a lookup)', async () => {
    const meter = createMeter({ store: memoryStore(), clock: () => T0 })
    await expect(meter.redeem(A, generateCode('TG'))).rejects.toMatchObject({
      code: 'invalid_input',
      status: 400,
      field: 'code',
    })
  })

  it('malformed codes never count as failed redeem attempts', async () => {
    const meter = createMeter({
      store: memoryStore(),
      clock: () => T0,
      redeemAttempts: { max: 1 },
    })
    const good = generateCode('TG')
    for (let i = 0; i < 5; i++) {
      await expect(meter.redeem(A, `${good.slice(0, -1)}U`)).rejects.toMatchObject({
        field: 'code',
      })
    }
    // The first real failure is still reported as unknown, not rate limited...
    await expect(meter.redeem(A, generateCode('TG'))).rejects.toMatchObject({
      code: 'invalid_input',
    })
    // ...and the limit of 1 is reached only now.
    await expect(meter.redeem(A, generateCode('TG'))).rejects.toMatchObject({
      code: 'rate_limited',
    })
  })
})

describe('createMeter options', () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  function thrown(options: unknown): unknown {
    try {
      createMeter(options as MeterOptions)
    } catch (err) {
      return err
    }
    return null
  }

  it.each([
    ['missing store', 'store', {}],
    ['store not a store', 'store', { store: {} }],
    ['store null', 'store', { store: null }],
    ["overage 'x'", 'overage', { store: memoryStore(), overage: 'x' }],
    [
      'negative lowBalanceThreshold',
      'lowBalanceThreshold',
      { store: memoryStore(), lowBalanceThreshold: -1 },
    ],
    [
      'fractional lowBalanceThreshold',
      'lowBalanceThreshold',
      { store: memoryStore(), lowBalanceThreshold: 1.5 },
    ],
    ['negative overdraftLimit', 'overdraftLimit', { store: memoryStore(), overdraftLimit: -5 }],
    ['clock not a function', 'clock', { store: memoryStore(), clock: 5 }],
    ['tenant empty', 'tenant', { store: memoryStore(), tenant: '' }],
    ['tenant with NUL', 'tenant', { store: memoryStore(), tenant: 'a\u0000' }],
    ['defaultTtlMs under 1 s', 'defaultTtlMs', { store: memoryStore(), defaultTtlMs: 999 }],
    ['defaultTtlMs over 24 h', 'defaultTtlMs', { store: memoryStore(), defaultTtlMs: 86_400_001 }],
    ['retentionMs under 48 h', 'retentionMs', { store: memoryStore(), retentionMs: 1_000 }],
    ['cache max 0', 'cache.max', { store: memoryStore(), cache: { max: 0 } }],
    ['cache ttlMs NaN', 'cache.ttlMs', { store: memoryStore(), cache: { ttlMs: Number.NaN } }],
    [
      'redeemAttempts max 0',
      'redeemAttempts.max',
      { store: memoryStore(), redeemAttempts: { max: 0 } },
    ],
  ])('%s throws InvalidInputError naming %s', (_label, field, options) => {
    const err = thrown(options)
    expect(err).toBeInstanceOf(InvalidInputError)
    expect(err).toMatchObject({ code: 'invalid_input', status: 400, field })
  })

  it('no options at all throws InvalidInputError', () => {
    expect(thrown(undefined)).toMatchObject({ code: 'invalid_input', status: 400 })
    expect(thrown(null)).toMatchObject({ code: 'invalid_input', status: 400 })
  })

  it('an unknown key only warns', async () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    const meter = createMeter({ store: memoryStore(), ttl: 5 } as unknown as MeterOptions)
    expect(warn).toHaveBeenCalledTimes(1)
    expect(String(warn.mock.calls[0]![0])).toContain('ttl')
    await meter.grant(A, 3)
    expect((await meter.balance(A)).total).toBe(3)
  })

  it('known keys do not warn', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    createMeter({
      store: memoryStore(),
      tenant: 't',
      clock: () => T0,
      cache: false,
      lowBalanceThreshold: 10,
      overdraftLimit: null,
      overage: 'reject',
      defaultTtlMs: 5_000,
      redeemAttempts: { max: 3, windowMs: 60_000 },
      retentionMs: 3 * DAY,
    })
    expect(warn).not.toHaveBeenCalled()
  })
})

describe('messages and text checks', () => {
  it('a fractional or out-of-range integer says "whole number" and the range', async () => {
    const meter = createMeter({ store: memoryStore(), clock: () => T0 })
    await expect(meter.grant(A, 1, { validityDays: 0.5 })).rejects.toMatchObject({
      field: 'validityDays',
      message: 'validityDays: must be a whole number from 1 to 36500',
    })
    await expect(meter.grant(A, 1.5)).rejects.toMatchObject({ field: 'amount' })
    await expect(meter.createCodes({ credits: 1, count: 2.5 })).rejects.toMatchObject({
      message: 'count: must be a whole number from 1 to 100000',
    })
    await expect(
      meter.createCodes({ credits: 1, count: '3' as unknown as number }),
    ).rejects.toMatchObject({ message: 'count: must be a whole number from 1 to 100000' })
  })

  it('a text field names the offending string and keeps well-formed emoji', async () => {
    const meter = createMeter({ store: memoryStore(), clock: () => T0 })
    await expect(meter.adjust(A, 1, { reason: 'ok\uD83D' })).rejects.toMatchObject({
      field: 'reason',
      message: 'reason: must be well-formed text without NUL characters',
    })
    // A surrogate pair is one well-formed character: stored and read back as it was.
    await meter.adjust(A, 1, { reason: 'refund 😀', metadata: { 'clé 😀': ['é', '😀'] } })
    const [entry] = (await meter.ledger(A)).entries
    expect(entry).toMatchObject({ reason: 'refund 😀', metadata: { 'clé 😀': ['é', '😀'] } })
  })

  it('isStorableText and checkText', () => {
    expect(isStorableText('😀 é')).toBe(true)
    expect(isStorableText('a\u0000')).toBe(false)
    expect(isStorableText('\uDFFF')).toBe(false)
    expect(checkText('ok', 'name', 0, 10)).toBe('ok')
    expect(() => checkText('a\u0000', 'name', 0, 10)).toThrow(/name: must be well-formed/)
    expect(() => checkText('x'.repeat(11), 'name', 0, 10)).toThrow(/name: must be text of 0–10/)
  })

  it('a deeply nested JSON value is walked without recursion', () => {
    let deep: unknown = 'a\u0000'
    for (let i = 0; i < 5_000; i++) deep = [deep]
    const path = unstorablePath(deep)
    expect(Array.isArray(path) && path.length).toBe(5_000)
    let deeper: unknown = 'x'
    for (let i = 0; i < 20_000; i++) deeper = { k: deeper }
    expect(unstorablePath(deeper)).toBe(false)
    expect(unstorablePath({ a: ['x', { b: 'y' }] })).toBeNull()
  })
})
