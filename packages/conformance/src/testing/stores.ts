/**
 * Meters and store wrappers for tests: a fresh exact meter, a store that records its calls, and
 * stores that fail the two ways a ledger can (a lost connection, a store that reports itself
 * down).
 */
import {
  createMeter,
  type Meter,
  memoryStore,
  type Store,
  StoreUnavailableError,
} from '@tollgate/core'
import type { CodeBatch, ExecuteRequest } from '@tollgate/core/store'

/**
 * A meter over a fresh memory store, without the balance cache so every read is exact, with
 * `grants` made.
 * @example
 * const meter = await meterWith({ alice: 100 })
 */
export async function meterWith(
  grants: Record<string, number> = {},
  overage?: 'overdraft',
): Promise<Meter> {
  const meter = createMeter({ store: memoryStore(), cache: false, ...(overage ? { overage } : {}) })
  for (const [account, amount] of Object.entries(grants)) await meter.grant(account, amount)
  return meter
}

/** A store wrapper that records calls and never closes the store it wraps. */
export interface SpyStore {
  store: Store
  /** Every `execute` request, in order. */
  executes: ExecuteRequest[]
  /** Every code batch given to `createCodes`. */
  batches: CodeBatch[]
}

/**
 * Wraps `inner` to record `execute` calls and capture code batches (to check what is stored).
 * @example
 * const spy = spyStore(memoryStore())
 * const meter = createMeter({ store: spy.store })
 * // … later: spy.executes.filter((r) => r.op.type === 'extend')
 */
export function spyStore(inner: Store): SpyStore {
  const spy: SpyStore = {
    executes: [],
    batches: [],
    store: {
      kind: inner.kind,
      execute: (request) => {
        spy.executes.push(request)
        return inner.execute(request)
      },
      ledger: (tenant, account, request) => inner.ledger(tenant, account, request),
      createCodes: (tenant, batch) => {
        spy.batches.push(batch)
        return inner.createCodes(tenant, batch)
      },
      dueAccounts: (tenant, now, limit) => inner.dueAccounts(tenant, now, limit),
      prune: (tenant, before) => inner.prune(tenant, before),
      // The wrapped store belongs to whoever made it, who closes it.
      close: async () => {},
    },
  }
  return spy
}

/**
 * A store whose every call rejects with `cause`, like a lost connection the store did not
 * classify: the meter must turn it into `StoreUnavailableError` itself.
 * @example
 * const meter = createMeter({ store: failingStore(new Error('ECONNRESET')) })
 */
export function failingStore(cause: Error): Store {
  const fail = () => Promise.reject(cause)
  return {
    kind: 'failing',
    execute: fail,
    ledger: fail,
    createCodes: fail,
    dueAccounts: fail,
    prune: fail,
    close: async () => {},
  }
}

/**
 * A store that is down: every operation throws `StoreUnavailableError`, as a store that lost
 * its database does. What `failMode` tests run against.
 * @example
 * const meter = createMeter({ store: downStore() })
 */
export function downStore(): Store {
  const fail = (): never => {
    throw new StoreUnavailableError('ledger unreachable')
  }
  return {
    kind: 'down',
    execute: fail,
    ledger: async () => fail(),
    createCodes: async () => fail(),
    dueAccounts: async () => fail(),
    prune: async () => fail(),
    close: async () => {},
  }
}
