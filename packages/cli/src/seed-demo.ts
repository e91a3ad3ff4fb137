/**
 * `seedDemo()`: the demo tenant that `tollgate serve --demo` and `examples/shared-ledger` start
 * with. One implementation, so the README's two ways in show the same thing.
 */
import type { Balance, Store } from '@tollgate/core'
import { generateApiKey, hashApiKey } from '@tollgate/server'
import { createClient } from './client.js'

/** The demo's tenant. */
export const DEMO_TENANT = 'demo'
/** The demo's account. */
export const DEMO_ACCOUNT = 'alice'
/** What the demo grants its account, once. */
export const DEMO_CREDITS = 1_000

/** Options of {@link seedDemo}. */
export interface SeedDemoOptions {
  /**
   * The running server's store. The demo tenant's key is registered in its key registry
   * directly: the bootstrap admin key is shown on the first start only, so a restarted demo
   * has no key it could create one with over HTTP.
   */
  store: Store
  /** The running server's URL: the grant goes through the REST API, like any client's. */
  url: string
  /** @default 'demo' */
  tenant?: string
  /** @default 'alice' */
  account?: string
  /** @default 1_000 */
  credits?: number
}

/** What {@link seedDemo} set up. */
export interface DemoSeed {
  url: string
  tenant: string
  account: string
  /** A new tenant key, shown this once (keys are stored as hashes). */
  apiKey: string
  keyId: string
  /** False when an earlier run already granted the demo credits. */
  granted: boolean
  /** The account's balance after seeding. */
  balance: Balance
}

/**
 * Seeds the demo tenant on a running server: registers a fresh tenant key for tenant `demo`
 * (a key is shown once, so every run makes a new one) and grants `alice` 1,000 credits under a
 * fixed idempotency key, so a restart on the same data does not grant twice.
 * @example
 * const server = createServer({ store })
 * const { url } = await server.listen({ port: 7070 })
 * const seed = await seedDemo({ store, url })
 * console.log(`TOLLGATE_API_KEY=${seed.apiKey}`)
 */
export async function seedDemo(options: SeedDemoOptions): Promise<DemoSeed> {
  const tenant = options.tenant ?? DEMO_TENANT
  const account = options.account ?? DEMO_ACCOUNT
  const credits = options.credits ?? DEMO_CREDITS
  const keys = options.store.keys
  if (!keys) throw new TypeError(`seedDemo: a ${options.store.kind} store has no key registry`)

  // The server's own key format and hash, so it verifies this key like one it made.
  const { id, key } = generateApiKey()
  await keys.createKey({
    id,
    tenant,
    role: 'tenant',
    name: 'demo',
    hash: hashApiKey(key),
    createdAt: Date.now(),
    revokedAt: null,
  })

  const client = createClient({ url: options.url, apiKey: key })
  try {
    // The idempotency key alone would grant again once the server has pruned it (after 48 h),
    // so look for the seed grant in the ledger first; the key still covers two demos racing.
    const idempotencyKey = `demo-seed:${account}:${credits}`
    const page = await client.ledger(account, { types: ['grant'], limit: 1000 })
    const seeded = page.entries.some((e) => e.idempotencyKey === idempotencyKey)
    let granted = false
    if (!seeded) {
      const grant = await client.grant(
        account,
        { amount: credits, metadata: { source: 'demo seed' } },
        { idempotencyKey },
      )
      granted = !grant.replayed
    }
    const balance = await client.balance(account)
    return { url: options.url, tenant, account, apiKey: key, keyId: id, granted, balance }
  } finally {
    await client.close()
  }
}
