/**
 * API keys: `tg_sk_<id>_<secret>`. The id is public (it names the key in lists and logs); the
 * store keeps only the SHA-256 of the whole key, and verification compares hashes in constant
 * time, so neither a database dump nor response timing gives a key away.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { isTollgateError, StoreUnavailableError } from '@tollgate/core'
import type { ApiKeyRecord, KeyRegistry } from '@tollgate/core/store'
import { LRUCache } from 'lru-cache'

/** The role of a key: `admin` keys manage keys and act for any tenant. */
export type KeyRole = ApiKeyRecord['role']

const KEY_PATTERN = /^tg_sk_([0-9a-z]{8,32})_([A-Za-z0-9_-]{16,128})$/
const ID_ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'
/** Verified records are reused this long: a revocation by another process shows within it. */
const CACHE_MS = 1_000
/**
 * Unknown ids are remembered this long, so a flood of requests with the same bogus key costs one
 * store query per id per interval; a key created by another process with a remembered id (ids
 * are random: only if someone sent that id first) works after it.
 */
const NEGATIVE_CACHE_MS = 2_000
/** Entries of each cache (LRU): bounded whatever the traffic. */
const CACHE_MAX = 10_000
/** Compared against when the id is unknown, so that an unknown id costs what a known one does. */
const DUMMY_HASH = createHash('sha256').update('tg_sk_unknown').digest()

/**
 * Splits a key into its public id; null when it is not shaped like a Tollgate key.
 * @example parseApiKey(process.env.TOLLGATE_API_KEY!)?.id // the id `tollgate keys revoke` takes
 */
export function parseApiKey(key: string): { id: string } | null {
  const m = KEY_PATTERN.exec(key)
  return m ? { id: m[1]! } : null
}

/**
 * SHA-256 hex of a whole key: what the registry stores.
 * @example await store.keys.createKey({ id, hash: hashApiKey(key), … })
 */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex')
}

/**
 * A new random key: a 16-character id and 256 bits of secret, e.g. to provision
 * `TOLLGATE_ADMIN_KEY` before the first start.
 * @example const { key } = generateApiKey() // tg_sk_<id>_<secret>
 */
export function generateApiKey(): { id: string; key: string } {
  const bytes = randomBytes(16)
  let id = ''
  // 256 is a multiple of 32, so `byte & 31` is uniform.
  for (const b of bytes) id += ID_ALPHABET[b & 31]
  const key = `tg_sk_${id}_${randomBytes(32).toString('base64url')}`
  return { id, key }
}

/** A key record without its hash: what responses show. */
export interface ApiKeyInfo {
  id: string
  tenant: string
  role: KeyRole
  name: string
  createdAt: number
  revokedAt: number | null
}

/** The public view of a record. */
export function keyInfo(record: ApiKeyRecord): ApiKeyInfo {
  return {
    id: record.id,
    tenant: record.tenant,
    role: record.role,
    name: record.name,
    createdAt: record.createdAt,
    revokedAt: record.revokedAt,
  }
}

/** Verifies bearer keys against a registry, with short caches of found and unknown ids. */
export class KeyVerifier {
  readonly #keys: KeyRegistry
  readonly #found: LRUCache<string, ApiKeyRecord>
  readonly #unknown: LRUCache<string, true>
  /** Lookups in flight, shared by concurrent requests with the same id. */
  readonly #inFlight = new Map<string, Promise<ApiKeyRecord | null>>()

  constructor(keys: KeyRegistry, clock: () => number = Date.now) {
    this.#keys = keys
    // ttlResolution 0: read the clock on every check (no timer, and a test clock is obeyed).
    const perf = { now: clock }
    this.#found = new LRUCache({ max: CACHE_MAX, ttl: CACHE_MS, ttlResolution: 0, perf })
    this.#unknown = new LRUCache({ max: CACHE_MAX, ttl: NEGATIVE_CACHE_MS, ttlResolution: 0, perf })
  }

  /**
   * The active key record for `key`, or null for a malformed, unknown, revoked or wrong key.
   * Callers answer every null the same way. A registry that cannot be read is
   * {@link StoreUnavailableError} (503, retried by clients), never a 401 or a 500.
   */
  async verify(key: string): Promise<ApiKeyRecord | null> {
    const parsed = parseApiKey(key)
    const given = createHash('sha256').update(key).digest()
    if (parsed === null) {
      timingSafeEqual(given, DUMMY_HASH)
      return null
    }
    const record = await this.#find(parsed.id)
    const stored = record ? Buffer.from(record.hash, 'hex') : DUMMY_HASH
    const equal = stored.length === given.length && timingSafeEqual(given, stored)
    if (record === null || !equal || record.revokedAt !== null) return null
    return record
  }

  #find(id: string): ApiKeyRecord | null | Promise<ApiKeyRecord | null> {
    const hit = this.#found.get(id)
    if (hit !== undefined) return hit
    if (this.#unknown.has(id)) return null
    let lookup = this.#inFlight.get(id)
    if (lookup === undefined) {
      lookup = this.#lookup(id).finally(() => this.#inFlight.delete(id))
      this.#inFlight.set(id, lookup)
    }
    return lookup
  }

  async #lookup(id: string): Promise<ApiKeyRecord | null> {
    let record: ApiKeyRecord | null
    try {
      record = await this.#keys.findKey(id)
    } catch (err) {
      // The registry's own words (a database message) go to the log through `cause`, not out.
      throw isTollgateError(err, 'store_unavailable')
        ? err
        : new StoreUnavailableError('API keys cannot be read', { cause: err })
    }
    if (record) this.#found.set(id, record)
    else this.#unknown.set(id, true)
    return record
  }

  /** Cached ids, found and unknown (each bounded). */
  get size(): number {
    return this.#found.size + this.#unknown.size
  }

  /** Drops what is cached about an id: a revocation or creation here takes effect at once. */
  forget(id: string): void {
    this.#found.delete(id)
    this.#unknown.delete(id)
  }
}
