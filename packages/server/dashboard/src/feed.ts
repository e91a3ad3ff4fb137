/**
 * The change feed (`GET /v1/store/changes`) read with `fetch` and a stream parser: EventSource
 * cannot send the Authorization header, and the key must not travel in a URL. Reconnects with
 * exponential backoff (1 s doubling to 30 s, with jitter) until stopped.
 */
import { authHeaders, type Session } from './api.js'

/** One changed account. */
export interface AccountChange {
  tenant: string
  account: string
  seq: number
}

export interface FeedHandlers {
  /** Accounts that changed (possibly repeated). */
  onChanges(changes: AccountChange[]): void
  /** The stream is live (after `ready`) or lost (reconnecting). */
  onStatus(live: boolean): void
}

const MIN_BACKOFF_MS = 1_000
const MAX_BACKOFF_MS = 30_000
/** An event larger than this is not a change list: the stream is dropped and reopened. */
const MAX_EVENT_CHARS = 1 << 20

/** One server-sent event. */
export interface SseEvent {
  event: string
  data: string
}

/**
 * Splits a text/event-stream into events, chunk by chunk (comments and unknown fields are
 * skipped; `data` lines are joined with a newline, as the SSE standard says).
 */
export class SseParser {
  #buffer = ''
  /** Feeds a chunk of text; returns the events it completed. */
  push(chunk: string): SseEvent[] {
    this.#buffer += chunk
    if (this.#buffer.length > MAX_EVENT_CHARS) throw new Error('event too large')
    const events: SseEvent[] = []
    for (;;) {
      const match = /\r\n\r\n|\n\n|\r\r/.exec(this.#buffer)
      if (match === null) return events
      const block = this.#buffer.slice(0, match.index)
      this.#buffer = this.#buffer.slice(match.index + match[0].length)
      let event = 'message'
      const data: string[] = []
      for (const line of block.split(/\r\n|\n|\r/)) {
        if (line === '' || line.startsWith(':')) continue
        const colon = line.indexOf(':')
        const name = colon === -1 ? line : line.slice(0, colon)
        let value = colon === -1 ? '' : line.slice(colon + 1)
        if (value.startsWith(' ')) value = value.slice(1)
        if (name === 'event') event = value
        else if (name === 'data') data.push(value)
      }
      if (data.length > 0) events.push({ event, data: data.join('\n') })
    }
  }
}

/**
 * Follows the change feed of the session's tenant until the returned function is called. An
 * admin key always names its tenant, so the stream carries that tenant's changes only.
 */
export function followChanges(session: Session, handlers: FeedHandlers): () => void {
  const stop = new AbortController()
  let backoff = MIN_BACKOFF_MS

  const run = async () => {
    while (!stop.signal.aborted) {
      try {
        const headers = authHeaders(session)
        if (session.admin && session.tenant === '') headers['tollgate-tenant'] = 'default'
        const res = await fetch('/v1/store/changes', {
          headers: { ...headers, accept: 'text/event-stream' },
          signal: stop.signal,
          cache: 'no-store',
        })
        if (!res.ok || res.body === null) throw new Error(`HTTP ${res.status}`)
        const parser = new SseParser()
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
        for (;;) {
          const { value, done } = await reader.read()
          if (done) break
          for (const e of parser.push(value)) {
            if (e.event === 'ready') {
              backoff = MIN_BACKOFF_MS
              handlers.onStatus(true)
            } else if (e.event === 'changes') {
              const list = JSON.parse(e.data) as AccountChange[]
              if (Array.isArray(list)) handlers.onChanges(list)
            } else if (e.event === 'status') {
              handlers.onStatus((JSON.parse(e.data) as { up?: boolean }).up === true)
            }
          }
        }
      } catch {
        // Reconnect below, unless stopped.
      }
      if (stop.signal.aborted) return
      handlers.onStatus(false)
      const wait = backoff / 2 + Math.random() * (backoff / 2)
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait)
        stop.signal.addEventListener('abort', () => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }
  void run()
  return () => stop.abort()
}
