/**
 * The change feed over PostgreSQL `LISTEN/NOTIFY` (and PGlite's, in its process). A batch's
 * changes are handed to the store's notifier (notifier.ts) once the batch has committed, never
 * when it rolls back; the notifier sends what several batches changed as one `pg_notify`
 * statement outside their transactions, split into payloads under PostgreSQL's 8000-byte limit.
 * A store listens on one dedicated connection and hands each payload to every `watch()`
 * subscriber of the store.
 *
 * Payloads (JSON):
 * - `{"s":<seq>,"c":[[tenant, account], …]}`: these accounts changed, at sequence numbers up to
 *   `seq`; each becomes an `AccountChange` with that `seq`;
 * - `{"s":<seq>,"all":true}`: too many accounts changed at once to list (more than the
 *   notifier's bound): any account may have changed. Subscribers are told as if the feed had
 *   dropped and come back, `onStatus(false, reason)` then `onStatus(true)`, which every watcher
 *   already answers by dropping its whole cache (meters) or reading to catch up (subscribers).
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
 * {@link MAX_CHUNK_BYTES}; {@link noticePayloads} wraps each as `{"s":<seq>,<part>}`.
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

/** What {@link parseNotice} returns for an "everything changed" payload. */
export const EVERYTHING = 'everything'

/** The payloads of one notice: the accounts as `{"s":<seq>,"c":[…]}` chunks, or "everything". */
export function noticePayloads(
  seq: number,
  accounts: Iterable<readonly [string, string]> | typeof EVERYTHING,
): string[] {
  if (accounts === EVERYTHING) return [`{"s":${seq},"all":true}`]
  return changeChunks(accounts).map((part) => `{"s":${seq},${part}}`)
}

/** Why subscribers are told the feed dropped when a notice says everything changed. */
export const EVERYTHING_REASON =
  'too many accounts changed at once to list them; every cached account is dropped'

/** A payload as changes, or {@link EVERYTHING}; empty for one this store did not write. */
export function parseNotice(payload: string): AccountChange[] | typeof EVERYTHING {
  let parsed: unknown
  try {
    parsed = JSON.parse(payload)
  } catch {
    return []
  }
  const { s, c, all } = (parsed ?? {}) as { s?: unknown; c?: unknown; all?: unknown }
  const seq = Number(s)
  if (!Number.isSafeInteger(seq)) return []
  if (all === true) return EVERYTHING
  if (!Array.isArray(c)) return []
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
    const changes = parseNotice(payload)
    if (changes === EVERYTHING) {
      // No listener API change: a drop and a return already mean "forget everything cached".
      this.#status(false, EVERYTHING_REASON)
      this.#status(true)
      return
    }
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
