/**
 * The change feed over PostgreSQL `LISTEN/NOTIFY` (and PGlite's, in its process). A batch sends
 * its notifications in its own transaction, so they are delivered when it commits and never
 * when it rolls back: one `pg_notify` per batch, listing the accounts it changed, split into
 * payloads under PostgreSQL's 8000-byte limit. A store listens on one dedicated connection and
 * hands each payload to every `watch()` subscriber of the store.
 */
import { createHash } from 'node:crypto'
import type { AccountChange, WatchListener, WatchSubscription } from '@tollgate/core/store'
import { warn } from '@tollgate/core/store'

/** Bytes of one payload's account list; the rest of the 8000 bytes holds `{"s":<seq>,…}`. */
export const MAX_CHUNK_BYTES = 7_900

/** The notification channel of a schema: the same for every process on it. */
export function channelOf(schema: string): string {
  // An identifier is at most 63 bytes: a digest keeps long schema names apart.
  return `tollgate_${createHash('sha256').update(schema).digest('hex').slice(0, 24)}`
}

/**
 * The `"c":[[tenant, account], …]` parts of a batch's notifications, each under
 * {@link MAX_CHUNK_BYTES}; the statement wraps each as `{"s":<seq>,<part>}`.
 */
export function changeChunks(accounts: Iterable<readonly [string, string]>): string[] {
  const chunks: string[] = []
  let part = ''
  let bytes = 0
  for (const pair of accounts) {
    const item = JSON.stringify(pair)
    const size = Buffer.byteLength(item)
    if (part !== '' && bytes + size + 1 > MAX_CHUNK_BYTES) {
      chunks.push(`"c":[${part}]`)
      part = ''
      bytes = 0
    }
    part = part === '' ? item : `${part},${item}`
    bytes += size + 1
  }
  if (part !== '') chunks.push(`"c":[${part}]`)
  return chunks
}

/** A payload as changes; empty for one this store did not write. */
export function parseChanges(payload: string): AccountChange[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(payload)
  } catch {
    return []
  }
  const { s, c } = (parsed ?? {}) as { s?: unknown; c?: unknown }
  const seq = Number(s)
  if (!Array.isArray(c) || !Number.isSafeInteger(seq)) return []
  const out: AccountChange[] = []
  for (const pair of c) {
    if (Array.isArray(pair) && typeof pair[0] === 'string' && typeof pair[1] === 'string') {
      out.push({ tenant: pair[0], account: pair[1], seq })
    }
  }
  return out
}

/** How a driver listens: calls `onPayload` per notification, `onStatus` when the line drops. */
export interface Listener {
  /** Stops listening and releases the connection. */
  close(): Promise<void>
}

export type Listen = (
  channel: string,
  onPayload: (payload: string) => void,
  onStatus: (up: boolean, reason?: string) => void,
) => Promise<Listener>

/** Subscribers of one store at most; a bound, not a rule (each is a cache or a worker). */
export const MAX_WATCHERS = 1_000
const LISTENER_ERROR_WARNING = 'TOLLGATE_LISTENER_ERROR'

/**
 * The store's end of the feed: one listening connection, opened by the first subscriber and
 * closed after the last, fanned out to every subscriber.
 */
export class ChangeFeed {
  readonly #watchers = new Set<WatchListener>()
  #listener: Promise<Listener> | null = null

  constructor(
    readonly channel: string,
    readonly listen: Listen,
  ) {}

  async watch(listener: WatchListener): Promise<WatchSubscription> {
    if (this.#watchers.size >= MAX_WATCHERS) {
      throw new Error(`a store takes at most ${MAX_WATCHERS} watch() subscribers`)
    }
    // A fresh reference per subscription: the same listener may subscribe twice.
    const own: WatchListener = {
      onChanges: (changes) => listener.onChanges(changes),
      onStatus: (up, reason) => listener.onStatus?.(up, reason),
    }
    this.#watchers.add(own)
    try {
      this.#listener ??= this.listen(
        this.channel,
        (payload) => this.#tell(payload),
        (up, reason) => this.#status(up, reason),
      )
      await this.#listener
    } catch (err) {
      this.#watchers.delete(own)
      this.#listener = null
      throw err
    }
    let closed = false
    return {
      close: async () => {
        if (closed) return
        closed = true
        this.#watchers.delete(own)
        if (this.#watchers.size === 0) await this.close()
      },
    }
  }

  #tell(payload: string): void {
    const changes = parseChanges(payload)
    if (changes.length === 0) return
    for (const w of this.#watchers) {
      try {
        w.onChanges(changes)
      } catch (err) {
        warn(`Tollgate watch listener threw: ${String(err)}`, LISTENER_ERROR_WARNING)
      }
    }
  }

  #status(up: boolean, reason?: string): void {
    for (const w of this.#watchers) {
      try {
        w.onStatus?.(up, reason)
      } catch (err) {
        warn(`Tollgate watch listener threw: ${String(err)}`, LISTENER_ERROR_WARNING)
      }
    }
  }

  /** Closes the listening connection (the store closes; or the last subscriber left). */
  async close(): Promise<void> {
    const l = this.#listener
    this.#listener = null
    this.#watchers.clear()
    if (l) await (await l.catch(() => null))?.close()
  }
}
