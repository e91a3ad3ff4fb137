/**
 * The meters' end of the change feed (DESIGN §5): one subscription to `store.watch()` per store,
 * shared by every meter on it that has a cache (as their caches are shared, see
 * shared-cache.ts), and closed when the last of them closes. A change to an account, made by
 * any process sharing the store, drops the account from every cache on the store, a cached
 * refusal included, so a user who just paid is served on their next request instead of after
 * the cache's TTL. While the feed is down the caches fall back to their TTL, and a warning says
 * so; when it comes back they are emptied, since the changes missed in between are not replayed.
 */
import { warn } from '../options-kit.js'
import type { Store, WatchSubscription } from '../store/store.js'
import { forgetAccount, forgetAll } from './shared-cache.js'

/** Code of the warning raised when a store's change feed cannot be opened or goes down. */
export const CHANGE_FEED_WARNING = 'TOLLGATE_CHANGE_FEED_DOWN'

interface Feed {
  /** Meters on the store that joined. */
  users: number
  /** The subscription, once `watch()` resolved; null before, or when it failed. */
  subscription: Promise<WatchSubscription | null>
  /** False from a reported loss until the feed is back. */
  up: boolean
}

const FEEDS = new WeakMap<Store, Feed>()

function open(store: Store, watch: NonNullable<Store['watch']>, ttlMs: number): Feed {
  const feed: Feed = { users: 0, subscription: Promise.resolve(null), up: true }
  const down = (reason: string): void => {
    if (!feed.up) return
    feed.up = false
    forgetAll(store)
    warn(
      `Tollgate: the change feed of the ${store.kind} store is down (${reason}); cached balances ` +
        `are trusted for up to their TTL (${ttlMs} ms) until it is back`,
      CHANGE_FEED_WARNING,
    )
  }
  feed.subscription = watch
    .call(store, {
      onChanges(changes) {
        for (const c of changes) forgetAccount(store, c.tenant, c.account)
      },
      onStatus(up, reason) {
        if (!up) return down(reason ?? 'connection lost')
        // Changes made while it was down are not replayed: nothing cached before is trusted.
        forgetAll(store)
        feed.up = true
      },
    })
    .then(
      (subscription) => subscription,
      (err: unknown) => {
        down(err instanceof Error ? err.message : String(err))
        return null
      },
    )
  return feed
}

/**
 * Joins the change feed of `store` for a meter with a cache whose entries live `ttlMs`; returns
 * the function that leaves it. A store without `watch()` has no feed: its caches rely on the TTL.
 */
export function joinChangeFeed(store: Store, ttlMs: number): () => Promise<void> {
  const watch = store.watch
  if (typeof watch !== 'function') return async () => {}
  let feed = FEEDS.get(store)
  if (feed === undefined) {
    feed = open(store, watch, ttlMs)
    FEEDS.set(store, feed)
  }
  feed.users++
  const joined = feed
  let left = false
  return async () => {
    if (left) return
    left = true
    if (--joined.users > 0) return
    if (FEEDS.get(store) === joined) FEEDS.delete(store)
    const subscription = await joined.subscription
    await subscription?.close()
  }
}
