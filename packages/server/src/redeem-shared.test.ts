/**
 * The tenant redeem limit (distinct failing accounts) shared by server processes through their
 * store: two servers on one store, on PGlite and PostgreSQL; and what a store without the
 * method, or with a failing one, leaves.
 */
import { memoryStore, type Store } from '@tollgate/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  describeSqlStores,
  fakeClock,
  logCapture,
  startServer,
  type TestServer,
} from './test-support.js'

const limits = { accountFailuresPerMinute: 5, failingAccountsPerMinute: 4 }

/**
 * The store as two server processes see it: closing a server leaves it open (the test closes it
 * once), and `noteRedeemFailure` can be hidden or made to fail.
 */
function sharedView(inner: Store, note?: Store['noteRedeemFailure'] | 'hidden'): Store {
  return new Proxy(inner, {
    get(target, prop) {
      if (prop === 'close') return async () => {}
      if (prop === 'noteRedeemFailure' && note !== undefined) {
        return note === 'hidden' ? undefined : note
      }
      const value: unknown = Reflect.get(target, prop, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}

interface Pair {
  a: TestServer
  b: TestServer
  key: string
  close(): Promise<void>
}

/** Two servers on one store (one clock, so one window), and a tenant key both accept. */
async function twoServers(store: Store, logger?: ReturnType<typeof logCapture>): Promise<Pair> {
  const clock = fakeClock()
  const options = {
    redeemLimit: limits,
    // The engine's own per-account limit out of the way, to see the server's.
    meter: { redeemAttempts: { max: 1_000 } },
    clock: clock.now,
    ...(logger ? { logger: { level: 'warn', stream: logger.stream } } : {}),
  }
  const a = await startServer({ ...options, store })
  const b = await startServer({ ...options, store, adminKey: a.adminKey })
  const { key } = await a.createKey('acme')
  return {
    a,
    b,
    key,
    close: async () => {
      await a.close()
      await b.close()
    },
  }
}

function guess(t: TestServer, key: string, account: string, n = 0): Promise<number> {
  return t
    .call('POST', `/v1/accounts/${account}/redemptions`, {
      key,
      body: { code: `TG-${String(n).padStart(4, '0')}-0000-0000-0` },
    })
    .then((r) => r.status)
}

/** Two accounts fail on each server: 4 distinct failing accounts, 2 seen by each process. */
async function failOnBoth(p: Pair): Promise<void> {
  for (const [t, account] of [
    [p.a, 'f1'],
    [p.a, 'f2'],
    [p.b, 'f3'],
    [p.b, 'f4'],
  ] as const) {
    expect(await guess(t, p.key, account)).toBe(400)
  }
}

describeSqlStores('the tenant redeem limit across two servers', (kind) => {
  let inner: Store
  let p: Pair
  beforeAll(async () => {
    inner = kind.make().store
    p = await twoServers(sharedView(inner))
  }, 60_000)
  afterAll(async () => {
    await p.close()
    await inner.close()
  })

  it('failures spread over both servers trip it; a correct code still redeems', async () => {
    await failOnBoth(p)
    // Each process alone has seen 2 of the 4; through the store, a 5th failing account on
    // either server is past the limit and stopped at its first failure.
    expect(await guess(p.a, p.key, 's1', 1)).toBe(400)
    expect(await guess(p.a, p.key, 's1', 2)).toBe(429)
    expect(await guess(p.b, p.key, 's2', 1)).toBe(400)
    expect(await guess(p.b, p.key, 's2', 2)).toBe(429)
    // Accounts that failed first keep their allowance (5 a minute), on either server.
    expect(await guess(p.b, p.key, 'f1', 3)).toBe(400)
    // Another user of the tenant with a good code is never refused.
    const codes = await p.a.call<{ codes: string[] }>('POST', '/v1/codes', {
      key: p.key,
      body: { credits: 5, count: 1 },
    })
    const ok = await p.b.call<{ creditsGranted: number }>(
      'POST',
      '/v1/accounts/alice/redemptions',
      { key: p.key, body: { code: codes.body.codes[0] } },
    )
    expect(ok.status).toBe(201)
    expect(ok.body.creditsGranted).toBe(5)
  })
})

describe('the tenant redeem limit without a shared count', () => {
  it('a store without noteRedeemFailure: each server counts alone', async () => {
    const inner = memoryStore()
    const p = await twoServers(sharedView(inner, 'hidden'))
    try {
      await failOnBoth(p)
      // Server A has seen only 2 failing accounts (and s1): s1 keeps its full allowance.
      for (let i = 1; i <= 5; i++) expect(await guess(p.a, p.key, 's1', i)).toBe(400)
      expect(await guess(p.a, p.key, 's1', 6)).toBe(429)
    } finally {
      await p.close()
      await inner.close()
    }
  })

  it('a store that fails to count: the redemption is answered, the local count decides', async () => {
    const inner = memoryStore()
    const logs = logCapture()
    let calls = 0
    const failing: Store['noteRedeemFailure'] = async () => {
      calls++
      throw new Error('counter table unavailable')
    }
    const p = await twoServers(sharedView(inner, failing), logs)
    try {
      await failOnBoth(p)
      expect(calls).toBe(4)
      // Locally server A reaches the limit with its own 4 failing accounts, store or not.
      expect(await guess(p.a, p.key, 'f5')).toBe(400)
      expect(await guess(p.a, p.key, 'f6')).toBe(400)
      expect(await guess(p.a, p.key, 's1', 1)).toBe(400)
      expect(await guess(p.a, p.key, 's1', 2)).toBe(429)
      expect(logs.text()).toContain('redeem limiter')
    } finally {
      await p.close()
      await inner.close()
    }
  })
})
