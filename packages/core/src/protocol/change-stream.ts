/**
 * The change feed's wire format (`GET /v1/store/changes`, `text/event-stream`), shared by the
 * server that streams it and `httpStore().watch()` that reads it. Events:
 * - `ready`: the stream is live; changes from here on are sent (data: `{ tenant }`, the one
 *   tenant the stream carries, or null for every tenant);
 * - `changes`: data is a JSON array of {@link AccountChange} (`{ tenant, account, seq }`);
 * - `status`: data is `{ up, reason? }`, the server's own feed from its store went down or
 *   came back.
 * Lines starting with `:` are heartbeats. See docs/server.md, "Change feed".
 */
import type { AccountChange } from '../store/store.js'

/** The route of the change feed in the store protocol. */
export const CHANGES_ROUTE = '/v1/store/changes'

/** One server-sent event, encoded. */
export function sseEvent(event: 'ready' | 'changes' | 'status', data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
}

/** A heartbeat: a comment line, ignored by every SSE reader. */
export const SSE_HEARTBEAT = ':\n\n'

/** What {@link SseReader} hands on. */
export type ChangeStreamEvent =
  | { type: 'ready'; tenant: string | null }
  | { type: 'changes'; changes: AccountChange[] }
  | { type: 'status'; up: boolean; reason: string | undefined }

/** Longest event accepted, in characters: a server never sends one this large. */
const MAX_EVENT_CHARS = 4 * 1024 * 1024

/**
 * Reads a `text/event-stream` body chunk by chunk (chunks split anywhere) into the events of
 * the change feed. Unknown events are skipped; a malformed one throws.
 */
export class SseReader {
  #buffer = ''

  /** Adds a chunk; returns the events it completed. */
  push(chunk: string): ChangeStreamEvent[] {
    this.#buffer += chunk
    if (this.#buffer.length > MAX_EVENT_CHARS) throw new Error('change stream event too large')
    const out: ChangeStreamEvent[] = []
    for (;;) {
      const end = this.#buffer.indexOf('\n\n')
      if (end < 0) return out
      const block = this.#buffer.slice(0, end)
      this.#buffer = this.#buffer.slice(end + 2)
      const event = parseBlock(block)
      if (event !== null) out.push(event)
    }
  }
}

function parseBlock(block: string): ChangeStreamEvent | null {
  let name = 'message'
  let data = ''
  for (const line of block.split('\n')) {
    if (line.startsWith(':') || line === '') continue
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
    if (field === 'event') name = value
    else if (field === 'data') data = data === '' ? value : `${data}\n${value}`
  }
  if (name === 'ready') {
    const tenant = (JSON.parse(data || '{}') as { tenant?: unknown }).tenant
    return { type: 'ready', tenant: typeof tenant === 'string' ? tenant : null }
  }
  if (name === 'changes') {
    const changes = JSON.parse(data) as unknown
    if (!Array.isArray(changes) || !changes.every(isChange)) {
      throw new Error('malformed changes event')
    }
    return { type: 'changes', changes }
  }
  if (name === 'status') {
    const s = JSON.parse(data) as { up?: unknown; reason?: unknown }
    if (typeof s?.up !== 'boolean') throw new Error('malformed status event')
    return { type: 'status', up: s.up, reason: typeof s.reason === 'string' ? s.reason : undefined }
  }
  return null
}

function isChange(c: unknown): c is AccountChange {
  if (typeof c !== 'object' || c === null) return false
  const { tenant, account, seq } = c as Record<string, unknown>
  return typeof tenant === 'string' && typeof account === 'string' && typeof seq === 'number'
}
