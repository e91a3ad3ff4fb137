/**
 * One webhook attempt: the Standard Webhooks message (https://www.standardwebhooks.com), signed
 * with node:crypto, sent over node:http(s) to the address {@link resolveTarget} checked, with a
 * deadline on the whole exchange and a cap on how much of the answer is read. Redirects are not
 * followed (a 3xx is a failed attempt): following one would let a receiver point the server at
 * a target it may not reach.
 */
import { createHmac, randomBytes } from 'node:crypto'
import http from 'node:http'
import https from 'node:https'
import type { LookupFunction } from 'node:net'
import { resolveTarget, type TargetPolicy } from './webhook-targets.js'

/** A new signing secret: `whsec_` and 24 random bytes in base64 (Standard Webhooks). */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`
}

/** `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under the secret's decoded key. */
export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64')
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`
}

/** What to send. */
export interface WebhookMessage {
  url: string
  secret: string
  /** `webhook-id`: the event's id, the same on every attempt. */
  id: string
  /** The JSON body. */
  body: string
  /** ms since epoch; sent in seconds as `webhook-timestamp`. */
  now: number
}

/** How an attempt went: `ok` for a 2xx answer. */
export interface SendResult {
  ok: boolean
  status: number | null
  error: string | null
}

/** Limits of one attempt. */
export interface SendLimits extends TargetPolicy {
  timeoutMs: number
  maxResponseBytes: number
}

const USER_AGENT = 'Tollgate-Webhooks/1'
/** How much of a failure's answer is kept with the delivery (for the operator's eyes). */
const ERROR_EXCERPT = 200

/** Makes one attempt; never throws (every failure is a result). */
export async function sendWebhook(
  message: WebhookMessage,
  limits: SendLimits,
): Promise<SendResult> {
  const url = new URL(message.url)
  const deadline = AbortSignal.timeout(limits.timeoutMs)
  try {
    const target = await resolveTarget(url, limits)
    if (deadline.aborted) return { ok: false, status: null, error: 'timed out' }
    const timestamp = Math.floor(message.now / 1000)
    // Connects to the checked address whatever a second resolution would say.
    const pinned: LookupFunction = (_host, options, callback) => {
      if ((options as { all?: boolean }).all) {
        ;(callback as (e: null, a: { address: string; family: number }[]) => void)(null, [
          { address: target.address, family: target.family },
        ])
      } else callback(null, target.address, target.family)
    }
    const client = url.protocol === 'https:' ? https : http
    return await new Promise<SendResult>((resolve) => {
      const request = client.request(
        url,
        {
          method: 'POST',
          lookup: pinned,
          signal: deadline,
          agent: false,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(message.body),
            'user-agent': USER_AGENT,
            'webhook-id': message.id,
            'webhook-timestamp': String(timestamp),
            'webhook-signature': signWebhook(message.secret, message.id, timestamp, message.body),
          },
        },
        (response) => {
          const status = response.statusCode ?? 0
          let read = 0
          const chunks: Buffer[] = []
          const finish = () => {
            const ok = status >= 200 && status < 300
            // Printable text only: the excerpt is stored and shown, whatever the receiver sent.
            const excerpt = Buffer.concat(chunks)
              .toString('utf8')
              .slice(0, ERROR_EXCERPT)
              .replace(/[^\x20-\x7e]/g, ' ')
              .trim()
            resolve({
              ok,
              status,
              error: ok ? null : `HTTP ${status}${excerpt ? `: ${excerpt}` : ''}`,
            })
          }
          response.on('data', (chunk: Buffer) => {
            read += chunk.length
            if (read <= ERROR_EXCERPT) chunks.push(chunk)
            // Past the cap the answer is not worth waiting for: the status line decided.
            if (read > limits.maxResponseBytes) {
              response.destroy()
              finish()
            }
          })
          response.on('end', finish)
          // A deadline or a reset mid-body: the status line already decided.
          response.on('close', finish)
          response.on('error', finish)
        },
      )
      request.on('error', (err) =>
        resolve({
          ok: false,
          status: null,
          error: deadline.aborted ? `timed out after ${limits.timeoutMs} ms` : err.message,
        }),
      )
      request.end(message.body)
    })
  } catch (err) {
    return { ok: false, status: null, error: err instanceof Error ? err.message : String(err) }
  }
}
