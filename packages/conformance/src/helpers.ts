/**
 * Assertions and store wrappers the rule files share.
 */
import { once } from 'node:events'
import { createServer, type RequestListener } from 'node:http'
import type { AddressInfo } from 'node:net'
import type {
  Balance,
  LedgerEntry,
  LedgerEntryType,
  LedgerQuery,
  Meter,
  Store,
} from '@tollgate/core'
import { createMeter, memoryStore, StoreUnavailableError } from '@tollgate/core'
import type { CodeBatch, ExecuteRequest } from '@tollgate/core/store'
import { expect, vi } from 'vitest'

/** Crockford base32, as redeem codes use it (no I, L, O, U). */
export const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'

/** Every entry of an account's ledger, newest first, read page by page. */
export async function readLedger(
  meter: Meter,
  account: string,
  query: Omit<LedgerQuery, 'cursor'> = {},
): Promise<LedgerEntry[]> {
  const out: LedgerEntry[] = []
  let cursor: string | undefined
  for (let page = 0; page < 10_000; page++) {
    const res = await meter.ledger(account, {
      limit: 1000,
      ...query,
      ...(cursor === undefined ? {} : { cursor }),
    })
    out.push(...res.entries)
    if (res.nextCursor === null) return out
    // A cursor that does not move on would page forever.
    if (res.nextCursor === cursor) throw new Error('ledger paging returned the same cursor twice')
    cursor = res.nextCursor
  }
  throw new Error('ledger paging did not end')
}

/** The ledger oldest first (the order replay uses). */
export async function ledgerOldestFirst(meter: Meter, account: string): Promise<LedgerEntry[]> {
  return (await readLedger(meter, account)).reverse()
}

/** The entry types of the ledger, oldest first: a compact way to assert what was written. */
export async function ledgerTypes(meter: Meter, account: string): Promise<LedgerEntryType[]> {
  return (await ledgerOldestFirst(meter, account)).map((e) => e.type)
}

/**
 * The ledger invariant of DESIGN §1: replaying the entries oldest first reproduces the balance.
 * `Σ delta = total − debt`, `Σ heldDelta = held`, `Σ debtDelta = debt`, every `balanceAfter`
 * is the running net balance, `at` never decreases, and the balance adds up
 * (`available = total − held`, buckets sum to `total` and `held`).
 *
 * The balance is read first (fresh, so due housekeeping is applied and written), then the
 * ledger, so both describe the same moment.
 */
export async function expectLedgerReplays(meter: Meter, account: string): Promise<Balance> {
  const balance = await meter.balance(account, { fresh: true })
  const entries = await ledgerOldestFirst(meter, account)
  let net = 0
  let held = 0
  let debt = 0
  let lastAt = Number.NEGATIVE_INFINITY
  const ids = new Set<string>()
  for (const e of entries) {
    net += e.delta
    held += e.heldDelta
    debt += e.debtDelta
    const where = `ledger entry ${e.id} (${e.type})`
    expect(e.account, where).toBe(account)
    expect(e.balanceAfter, `${where}: balanceAfter is the running net balance`).toBe(net)
    expect(e.at, `${where}: at never decreases`).toBeGreaterThanOrEqual(lastAt)
    expect(held, `${where}: held never goes negative`).toBeGreaterThanOrEqual(0)
    expect(debt, `${where}: debt never goes negative`).toBeGreaterThanOrEqual(0)
    expect(ids.has(e.id), `${where}: ids are unique`).toBe(false)
    ids.add(e.id)
    lastAt = e.at
  }
  expect({ net, held, debt }, 'ledger replay').toEqual({
    net: balance.total - balance.debt,
    held: balance.held,
    debt: balance.debt,
  })
  expect(balance.available).toBe(balance.total - balance.held)
  expect(balance.buckets.reduce((s, b) => s + b.remaining, 0)).toBe(balance.total)
  expect(balance.buckets.reduce((s, b) => s + b.held, 0)).toBe(balance.held)
  return balance
}

/**
 * Waits until the account's newest entry is `type` (adapters settle after the response has
 * gone, so a test sees the response first), then checks the ledger replays and nothing is held.
 */
export async function settledAs(
  meter: Meter,
  account: string,
  type: LedgerEntryType,
): Promise<Balance> {
  await vi.waitFor(async () => expect((await ledgerTypes(meter, account)).at(-1)).toBe(type), {
    timeout: 3_000,
    interval: 10,
  })
  const balance = await expectLedgerReplays(meter, account)
  expect(balance.held).toBe(0)
  return balance
}

/** A meter over a fresh memory store, without the balance cache so every read is exact. */
export async function meterWith(
  grants: Record<string, number> = {},
  overage?: 'overdraft',
): Promise<Meter> {
  const meter = createMeter({ store: memoryStore(), cache: false, ...(overage ? { overage } : {}) })
  for (const [account, amount] of Object.entries(grants)) await meter.grant(account, amount)
  return meter
}

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> =>
  new Promise<void>((resolve) => setTimeout(resolve, ms))

/** A real HTTP server on an ephemeral port; `close()` also drops connections still open. */
export async function listen(handler: RequestListener): Promise<{
  url: string
  close: () => Promise<void>
}> {
  const server = createServer(handler)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections()
      server.close()
      await once(server, 'close')
    },
  }
}

/** A store wrapper that records calls and never closes the store it wraps. */
export interface SpyStore {
  store: Store
  executes: ExecuteRequest[]
  batches: CodeBatch[]
}

/** Wraps `inner` to count `execute` calls and capture code batches (to check what is stored). */
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
      // The wrapped store belongs to the test context, which closes it.
      close: async () => {},
    },
  }
  return spy
}

/** A store whose every call fails like a lost connection. */
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

/** A store that is down: every operation throws `StoreUnavailableError`, as a lost database does. */
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

/** `PFX-XXXX-XXXX-XXXX-C` with Crockford groups and check character. */
export function canonicalCodePattern(prefix: string): RegExp {
  const c = '[0-9A-HJKMNP-TV-Z]'
  return new RegExp(`^${prefix}-${c}{4}-${c}{4}-${c}{4}-${c}$`)
}

/**
 * Validates a code's Luhn mod 32 check character the validating way (check character
 * included, sum ≡ 0), independently of how the engine computes it.
 */
export function luhnValid(code: string): boolean {
  const body = code.split('-').slice(1).join('')
  let sum = 0
  let factor = 1
  for (let i = body.length - 1; i >= 0; i--) {
    const v = CROCKFORD.indexOf(body[i]!)
    if (v < 0) return false
    let addend = factor * v
    addend = Math.floor(addend / 32) + (addend % 32)
    sum += addend
    factor = factor === 1 ? 2 : 1
  }
  return sum % 32 === 0
}

/**
 * The code with one character of its random part replaced by another Crockford character of a
 * different value: a typo the check character must catch.
 */
export function withTypo(code: string): string {
  const parts = code.split('-')
  const group = parts[2]!
  const ch = group[1]!
  const replacement = CROCKFORD[(CROCKFORD.indexOf(ch) + 7) % 32]!
  parts[2] = group[0] + replacement + group.slice(2)
  return parts.join('-')
}
