/**
 * `GET /v1/accounts` over a real server: the tenant's accounts from the caller's key, filters,
 * sorts and keyset pages, and every bad query value a 400 problem+json naming its parameter.
 * Once on the memory store and once on PGlite (the SQL implementation).
 */
import type { Balance, AccountsPage as Page } from '@tollgate/core'
import { memoryStore, type Store } from '@tollgate/core'
import { pgliteStore } from '@tollgate/postgres'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startServer, type TestServer } from './test-support.js'

/** A store without the optional `accounts()`: everything else of a memory store. */
function storeWithoutAccounts(): Store {
  const inner = memoryStore()
  return new Proxy(inner, {
    get(target, prop) {
      if (prop === 'accounts') return undefined
      const value = Reflect.get(target, prop, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}

for (const [name, makeStore] of [
  ['memory', () => memoryStore()],
  ['pglite', () => pgliteStore()],
] as const) {
  describe(`GET /v1/accounts (${name})`, () => {
    let t: TestServer
    let key = ''
    let otherKey = ''
    const list = (query: string, k = key) => t.call<Page>('GET', `/v1/accounts${query}`, { key: k })

    beforeAll(async () => {
      t = await startServer({ store: makeStore() })
      key = (await t.createKey('acme')).key
      otherKey = (await t.createKey('globex')).key
      const grant = (account: string, amount: number, k = key) =>
        t.call('POST', `/v1/accounts/${encodeURIComponent(account)}/grants`, {
          key: k,
          body: { amount },
        })
      await grant('user-1', 100)
      await grant('user-2', 10)
      await grant('user-3', 300)
      await grant('org-1', 50)
      await grant('user-1', 999, otherKey)
      await t.call('PUT', '/v1/accounts/user-2/settings', {
        key,
        body: { lowBalanceThreshold: 20 },
      })
      await t.call('POST', '/v1/accounts/user-3/holds', { key, body: { amount: 40 } })
    }, 60_000)
    afterAll(async () => {
      await t.close()
    })

    it("lists the caller's tenant only, by account, with the balance's figures", async () => {
      const res = await list('')
      expect(res.status).toBe(200)
      expect(res.body.nextCursor).toBeNull()
      expect(res.body.accounts.map((a) => a.account)).toEqual([
        'org-1',
        'user-1',
        'user-2',
        'user-3',
      ])
      const u3 = res.body.accounts[3]!
      expect(u3).toMatchObject({ total: 300, held: 40, available: 260, debt: 0, low: false })
      expect(u3.updatedAt).toBeGreaterThan(0)
      const balance = await t.call<Balance>('GET', '/v1/accounts/user-3/balance', { key })
      expect(balance.body).toMatchObject({ total: u3.total, held: u3.held, available: 260 })
      const other = await list('', otherKey)
      expect(other.body.accounts).toMatchObject([{ account: 'user-1', total: 999 }])
    })

    it('filters combine with AND; sorts by balance descending by default', async () => {
      const names = async (q: string) => (await list(q)).body.accounts.map((a) => a.account)
      expect(await names('?prefix=user-')).toEqual(['user-1', 'user-2', 'user-3'])
      expect(await names('?low=true')).toEqual(['user-2'])
      expect(await names('?low=false&prefix=user-')).toEqual(['user-1', 'user-3'])
      expect(await names('?hasHolds=true')).toEqual(['user-3'])
      expect(await names('?inDebt=true')).toEqual([])
      expect(await names('?sort=balance')).toEqual(['user-3', 'user-1', 'org-1', 'user-2'])
      expect(await names('?sort=balance&order=asc&prefix=user-')).toEqual([
        'user-2',
        'user-1',
        'user-3',
      ])
      expect(await names('?order=desc')).toEqual(['user-3', 'user-2', 'user-1', 'org-1'])
    })

    it('pages follow nextCursor to the end, each account once', async () => {
      const seen: string[] = []
      let cursor: string | null = null
      for (let i = 0; i < 10; i++) {
        const res: Awaited<ReturnType<typeof list>> = await list(
          `?limit=3&sort=activity${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        )
        expect(res.status).toBe(200)
        seen.push(...res.body.accounts.map((a) => a.account))
        cursor = res.body.nextCursor
        if (cursor === null) break
      }
      expect(cursor).toBeNull()
      expect([...seen].sort()).toEqual(['org-1', 'user-1', 'user-2', 'user-3'])
    })

    it('bad query values are 400 problem+json naming the parameter', async () => {
      const cases: [string, string][] = [
        ['?limit=0', 'limit'],
        ['?limit=1001', 'limit'],
        ['?limit=two', 'limit'],
        ['?low=yes', 'low'],
        ['?inDebt=1', 'inDebt'],
        ['?hasHolds=', 'hasHolds'],
        ['?sort=name', 'sort'],
        ['?order=up', 'order'],
        ['?prefix=', 'prefix'],
        [`?prefix=${'p'.repeat(201)}`, 'prefix'],
        ['?cursor=bogus', 'cursor'],
        ['?colour=red', 'colour'],
      ]
      for (const [query, field] of cases) {
        const res = await list(query)
        expect(res.status, query).toBe(400)
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
        expect(res.body, query).toMatchObject({ code: 'invalid_input', status: 400, field })
      }
      // A cursor of another sort is refused, not read as something else.
      const page = await list('?limit=1')
      const res = await list(`?sort=balance&cursor=${page.body.nextCursor}`)
      expect(res.body).toMatchObject({ status: 400, field: 'cursor' })
    })

    it('needs a key', async () => {
      const res = await t.call('GET', '/v1/accounts', { key: null })
      expect(res.status).toBe(401)
    })
  })
}

describe('GET /v1/accounts on a store that cannot list', () => {
  it('is a 400 problem naming the store, not a 500', async () => {
    const t = await startServer({ store: storeWithoutAccounts() })
    try {
      const res = await t.call('GET', '/v1/accounts')
      expect(res.status).toBe(400)
      expect(res.body).toMatchObject({ code: 'invalid_input', field: 'store' })
      const store = await t.call('POST', '/v1/store/accounts', { body: { limit: 10 } })
      expect(store.body).toMatchObject({ code: 'invalid_input', field: 'store' })
    } finally {
      await t.close()
    }
  })
})

describe('OpenAPI', () => {
  it('documents GET /v1/accounts and its page', async () => {
    const t = await startServer()
    try {
      const doc = await t.call<{
        paths: Record<string, Record<string, { parameters?: { name: string }[] }>>
        components: { schemas: Record<string, unknown> }
      }>('GET', '/openapi.json')
      const op = doc.body.paths['/v1/accounts']?.get
      expect(op?.parameters?.map((p) => p.name).sort()).toEqual(
        expect.arrayContaining([
          'cursor',
          'hasHolds',
          'inDebt',
          'limit',
          'low',
          'order',
          'prefix',
          'sort',
        ]),
      )
      expect(doc.body.components.schemas).toHaveProperty('AccountsPage')
      expect(doc.body.components.schemas).toHaveProperty('AccountSummary')
      expect(doc.body.paths['/v1/store/accounts']?.post).toBeDefined()
    } finally {
      await t.close()
    }
  })
})
