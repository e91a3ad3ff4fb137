import { describe, expect, it } from 'vitest'
import { applyOperation, newAccountState } from './apply.js'
import {
  canonicalJson,
  codeBatchFingerprint,
  decideCodeBatch,
  decideKey,
  fingerprintFields,
  fingerprintMatches,
  fingerprintOf,
} from './idempotency.js'
import type { EngineConfig, IdempotencyRecord, Operation } from './state.js'

const NOW = Date.UTC(2030, 0, 1)

/** The fingerprint earlier versions stored: the operation's JSON as built, without its key. */
function asBuilt(op: Operation): string {
  const { idempotencyKey: _key, ...input } = op
  return JSON.stringify(input)
}

/** The same object with its keys (and those of nested objects) in reverse order. */
function reversed<T>(value: T): T {
  if (Array.isArray(value)) return value.map(reversed) as T
  if (value === null || typeof value !== 'object') return value
  const out: Record<string, unknown> = {}
  for (const k of Object.keys(value).reverse())
    out[k] = reversed((value as Record<string, unknown>)[k])
  return out as T
}

const GRANT: Operation = {
  type: 'grant',
  amount: 50,
  expiresAt: NOW + 86_400_000,
  validityDays: null,
  priority: 10,
  category: 'promotional',
  metadata: { feature: 'chat', nested: { list: [1, 'two', null], flag: true } },
  idempotencyKey: 'grant-1',
}

describe('fingerprintOf', () => {
  it('the same input built with its keys in another order fingerprints the same', () => {
    const other = reversed(GRANT)
    expect(Object.keys(other)).not.toEqual(Object.keys(GRANT))
    expect(JSON.stringify(other)).not.toBe(JSON.stringify(GRANT))
    expect(fingerprintOf(other)).toBe(fingerprintOf(GRANT))
    // Metadata keys too, at any depth.
    const meta = { ...GRANT, metadata: reversed(GRANT.metadata) } as Operation
    expect(fingerprintOf(meta)).toBe(fingerprintOf(GRANT))
  })

  it('another value, another fingerprint; the key and hideKey are not input', () => {
    expect(fingerprintOf({ ...GRANT, amount: 51 })).not.toBe(fingerprintOf(GRANT))
    expect(fingerprintOf({ ...GRANT, metadata: { feature: 'chat' } })).not.toBe(
      fingerprintOf(GRANT),
    )
    expect(fingerprintOf({ ...GRANT, idempotencyKey: 'other' })).toBe(fingerprintOf(GRANT))
    expect(fingerprintOf({ ...GRANT, hideKey: true })).toBe(fingerprintOf(GRANT))
    const commit: Operation = {
      type: 'commit',
      holdId: 'hld_1',
      actual: undefined,
      overage: undefined,
      metadata: {},
    }
    expect(fingerprintOf({ ...commit, actual: 5 })).not.toBe(fingerprintOf(commit))
    expect(fingerprintOf({ ...commit, actual: 0 })).not.toBe(fingerprintOf(commit))
  })

  it('is byte for byte what earlier versions stored, for operations as the meter builds them', () => {
    // Captured from the earlier implementation (JSON.stringify of the operation as built).
    const stored: [Operation, string][] = [
      [
        { ...GRANT, metadata: { a: 1, b: { c: [1, 'two', null] } } },
        '{"type":"grant","amount":50,"expiresAt":1893542400000,"validityDays":null,"priority":10,"category":"promotional","metadata":{"a":1,"b":{"c":[1,"two",null]}}}',
      ],
      [
        { type: 'debit', amount: 2, metadata: {}, idempotencyKey: 'd' },
        '{"type":"debit","amount":2,"metadata":{}}',
      ],
      [
        { type: 'adjust', delta: -1, reason: 'refund reversal', metadata: {}, idempotencyKey: 'a' },
        '{"type":"adjust","delta":-1,"reason":"refund reversal","metadata":{}}',
      ],
      [
        { type: 'reserve', amount: 10, ttlMs: 5000, metadata: {}, idempotencyKey: 'r' },
        '{"type":"reserve","amount":10,"ttlMs":5000,"metadata":{}}',
      ],
      [
        {
          type: 'commit',
          holdId: 'hld_1',
          actual: 12,
          overage: 'clamp',
          metadata: {},
          idempotencyKey: 'c',
        },
        '{"type":"commit","holdId":"hld_1","actual":12,"overage":"clamp","metadata":{}}',
      ],
      [
        {
          type: 'commit',
          holdId: 'hld_1',
          actual: undefined,
          overage: undefined,
          metadata: {},
          idempotencyKey: 'c',
        },
        '{"type":"commit","holdId":"hld_1","metadata":{}}',
      ],
      [
        { type: 'release', holdId: 'hld_1', metadata: {}, idempotencyKey: 'x' },
        '{"type":"release","holdId":"hld_1","metadata":{}}',
      ],
      [
        { type: 'extend', holdId: 'hld_1', ttlMs: 40000, idempotencyKey: 'e' },
        '{"type":"extend","holdId":"hld_1","ttlMs":40000}',
      ],
      [
        { type: 'configure', lowBalanceThreshold: null, overdraftLimit: 7, idempotencyKey: 'k' },
        '{"type":"configure","lowBalanceThreshold":null,"overdraftLimit":7}',
      ],
      [
        {
          type: 'startCycle',
          amount: 30,
          every: { days: 7 },
          rolloverMax: 10,
          priority: 5,
          category: 'promotional',
          idempotencyKey: 's',
        },
        '{"type":"startCycle","amount":30,"every":{"days":7},"rolloverMax":10,"priority":5,"category":"promotional"}',
      ],
      [{ type: 'stopCycle', idempotencyKey: 'p' }, '{"type":"stopCycle"}'],
      [
        { type: 'redeem', codeHash: 'ab'.repeat(32), idempotencyKey: 'q' },
        `{"type":"redeem","codeHash":"${'ab'.repeat(32)}"}`,
      ],
    ]
    for (const [op, fingerprint] of stored) {
      expect(asBuilt(op), op.type).toBe(fingerprint)
      expect(fingerprintOf(op), op.type).toBe(fingerprint)
    }
  })

  it('writes exactly the listed fields of each type', () => {
    expect(fingerprintFields('extend')).toEqual(['type', 'holdId', 'ttlMs'])
    // A field not in the list (an op built with extra data) changes nothing.
    const extra = { ...GRANT, note: 'not input' } as unknown as Operation
    expect(fingerprintOf(extra)).toBe(fingerprintOf(GRANT))
  })
})

describe('canonicalJson', () => {
  it('is JSON.stringify with sorted keys: arrays keep their order, undefined is left out', () => {
    expect(canonicalJson({ b: 1, a: [3, 1, { d: undefined, c: 'x' }], e: undefined })).toBe(
      '{"a":[3,1,{"c":"x"}],"b":1}',
    )
    expect(canonicalJson([undefined, () => 1])).toBe('[null,null]')
    expect(canonicalJson(new Date(NOW))).toBe(JSON.stringify(new Date(NOW)))
    expect(canonicalJson('ü "✓"\n')).toBe(JSON.stringify('ü "✓"\n'))
    for (const v of [null, true, 0, -0, 1.5, Number.NaN, 'x', [], {}]) {
      expect(canonicalJson(v)).toBe(JSON.stringify(v))
    }
  })
})

describe('fingerprintMatches and decideKey (records stored by earlier versions)', () => {
  const unsorted: Operation = { ...GRANT, metadata: { z: 1, a: { y: 2, b: 3 } } }
  const legacy = asBuilt(unsorted)

  it('accepts the as-built form an earlier version stored, where it differs from the canonical', () => {
    expect(legacy).not.toBe(fingerprintOf(unsorted))
    expect(fingerprintMatches(unsorted, legacy)).toBe(true)
    expect(fingerprintMatches(unsorted, fingerprintOf(unsorted))).toBe(true)
    // Never another input's.
    expect(fingerprintMatches({ ...unsorted, amount: 49 }, legacy)).toBe(false)
    expect(fingerprintMatches(unsorted, asBuilt({ ...unsorted, amount: 49 }))).toBe(false)
  })

  it('replays a same-account, same-input record; conflicts otherwise; no record is new', () => {
    const record = (account: string, fingerprint: string): IdempotencyRecord => ({
      key: 'grant-1',
      account,
      fingerprint,
      result: {},
      createdAt: NOW,
    })
    expect(decideKey(unsorted, 'a', null)).toBe('new')
    expect(decideKey(unsorted, 'a', record('a', legacy))).toBe('replay')
    expect(decideKey(unsorted, 'a', record('a', fingerprintOf(unsorted)))).toBe('replay')
    expect(decideKey(unsorted, 'b', record('a', legacy))).toBe('conflict')
    expect(decideKey(unsorted, 'a', record('a', fingerprintOf(GRANT)))).toBe('conflict')
    // The key of a code batch (tenant-level, account '') is never an account operation's.
    expect(decideKey(unsorted, 'a', record('', fingerprintOf(unsorted)))).toBe('conflict')
  })

  it('applyOperation replays a record an earlier version stored with the as-built fingerprint', () => {
    const config: EngineConfig = {
      lowBalanceThreshold: null,
      overdraftLimit: null,
      overage: 'clamp',
      redeemMaxFailures: 10,
      redeemWindowMs: 3_600_000,
    }
    const first = applyOperation(newAccountState('a', NOW), unsorted, {
      now: NOW,
      config,
      idempotency: null,
      newId: (p) => `${p}_1`,
    })
    const saved = first.saveIdempotency!
    // What this version stores is the canonical form.
    expect(saved.fingerprint).toBe(fingerprintOf(unsorted))
    // The same record as an earlier version wrote it, then a retry after the upgrade.
    const retry = applyOperation(newAccountState('a', NOW), unsorted, {
      now: NOW + 1,
      config,
      idempotency: { ...saved, fingerprint: legacy },
      newId: (p) => `${p}_2`,
    })
    expect(retry.error).toBeNull()
    expect(retry.replayed).toBe(true)
    expect(retry.result).toEqual(saved.result)
    // The same key with other input is still a conflict.
    const other = applyOperation(
      newAccountState('a', NOW),
      { ...unsorted, amount: 1 },
      {
        now: NOW + 1,
        config,
        idempotency: { ...saved, fingerprint: legacy },
        newId: (p) => `${p}_3`,
      },
    )
    expect(other.error?.code).toBe('idempotency_conflict')
  })
})

describe('hideKey', () => {
  it('dedupes and replays like any key, but entries leave the key out', () => {
    const config: EngineConfig = {
      lowBalanceThreshold: null,
      overdraftLimit: null,
      overage: 'clamp',
      redeemMaxFailures: 10,
      redeemWindowMs: 3_600_000,
    }
    const run = (op: Operation, idempotency: IdempotencyRecord | null) =>
      applyOperation(newAccountState('a', NOW), op, {
        now: NOW,
        config,
        idempotency,
        newId: (p) => `${p}_1`,
      })
    const hidden = run({ ...GRANT, idempotencyKey: 'transport-1', hideKey: true }, null)
    expect(hidden.entries.map((e) => e.idempotencyKey)).toEqual([undefined])
    expect(hidden.saveIdempotency?.key).toBe('transport-1')
    const again = run(
      { ...GRANT, idempotencyKey: 'transport-1', hideKey: true },
      hidden.saveIdempotency,
    )
    expect(again.replayed).toBe(true)
    // Without the flag, the caller's key is on the entry.
    const shown = run({ ...GRANT, idempotencyKey: 'mine' }, null)
    expect(shown.entries.map((e) => e.idempotencyKey)).toEqual(['mine'])
  })
})

describe('code batches', () => {
  it('codeBatchFingerprint: fields in a fixed order whatever the order given, as stored before', () => {
    const input = { credits: 5, count: 2, prefix: 'AB', category: 'paid' }
    // The form earlier versions stored (the options in the order of their schema).
    const stored = '["createCodes",{"credits":5,"count":2,"prefix":"AB","category":"paid"}]'
    expect(codeBatchFingerprint(input)).toBe(stored)
    expect(codeBatchFingerprint(reversed(input))).toBe(stored)
    expect(codeBatchFingerprint({ ...input, validityDays: undefined })).toBe(stored)
    expect(codeBatchFingerprint({ ...input, count: 3 })).not.toBe(stored)
  })

  it('decideCodeBatch: no record → created (a tenant-level record); same → replayed; else conflict', () => {
    const key = { key: 'batch-1', fingerprint: 'f1', result: { batchId: 'cdb_1' } }
    const created = decideCodeBatch(null, key, NOW)
    expect(created).toEqual({
      status: 'created',
      save: {
        key: 'batch-1',
        account: '',
        fingerprint: 'f1',
        result: { batchId: 'cdb_1' },
        createdAt: NOW,
      },
    })
    const saved = created.status === 'created' ? created.save : null
    expect(decideCodeBatch(saved, { ...key, result: { batchId: 'cdb_2' } }, NOW + 1)).toEqual({
      status: 'replayed',
      result: { batchId: 'cdb_1' },
    })
    expect(decideCodeBatch(saved, { ...key, fingerprint: 'f2' }, NOW + 1)).toEqual({
      status: 'conflict',
    })
    // The key of an account operation, even with the same fingerprint text.
    expect(decideCodeBatch({ ...saved!, account: 'a' }, key, NOW + 1)).toEqual({
      status: 'conflict',
    })
  })
})
