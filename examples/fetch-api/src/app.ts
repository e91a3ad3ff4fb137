/**
 * A web-standard fetch handler metered by Tollgate, `(request: Request) => Promise<Response>`,
 * as Next.js route handlers, Bun.serve, Deno.serve and Workers take it:
 *
 * - `POST /v1/completions { maxTokens }`: priced by the tokens asked for, streamed as
 *   server-sent events from a `ReadableStream`, charged for the tokens actually produced;
 * - `POST /v1/tokenize { text }`: a cheap endpoint at 1 credit;
 * - `GET /v1/balance`: free.
 *
 * Callers authenticate with `Authorization: Bearer <api key>`; each key belongs to an account.
 * The JSON body is read once, before `metered()`, which prices the completion by it.
 */
import type { Meter } from '@tollgate/core'
import { metered } from '@tollgate/fetch'
import { complete } from './model.js'

/** The seeded account of the demo, and its API key. */
export const DEMO_ACCOUNT = 'acct_demo'
export const DEMO_KEY = 'demo-key'

/** The largest completion one request may ask for. */
export const MAX_TOKENS = 4_096

export interface AppOptions {
  /** API key → account. @default { 'demo-key': 'acct_demo' } */
  apiKeys?: Record<string, string>
  /** Pause between streamed tokens, as a model would take. @default 50 */
  tokenDelayMs?: number
}

/** What the app read from a request before metering it: its account and JSON body. */
interface Read {
  account: string
  body: Record<string, unknown>
}

const encoder = new TextEncoder()

/** Builds the handler over `meter`; the caller serves it. */
export function createHandler(
  meter: Meter,
  options: AppOptions = {},
): (request: Request) => Promise<Response> {
  const apiKeys = new Map(Object.entries(options.apiKeys ?? { [DEMO_KEY]: DEMO_ACCOUNT }))
  const tokenDelayMs = options.tokenDelayMs ?? 50
  // What metered() passes to account/cost is the Request; the app keeps what it read of it.
  const read = new WeakMap<Request, Read>()
  const account = (request: Request) => read.get(request)?.account ?? ''

  const tokenize = metered(meter, { account, cost: 1 }, (request) => {
    const text = read.get(request)?.body.text
    const words = typeof text === 'string' ? text.split(/\s+/).filter(Boolean).length : 0
    return Response.json({ tokens: words })
  })

  const completions = metered(
    meter,
    // Reserve the most this completion may cost: one credit per token asked for.
    { account, cost: (request) => read.get(request)?.body.maxTokens as number },
    (request, credits) => {
      const tokens = complete(read.get(request)?.body.maxTokens as number, tokenDelayMs)
      let produced = 0
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const next = await tokens.next()
          if (next.done) {
            controller.enqueue(encoder.encode(`event: done\ndata: {"tokens":${produced}}\n\n`))
            controller.close()
            return
          }
          controller.enqueue(encoder.encode(`data: ${JSON.stringify({ token: next.value })}\n\n`))
          produced++
          // Charged once the stream has ended: the tokens produced, not the tokens reserved.
          if (credits) credits.actual = produced
        },
        // The client left: metered() releases the hold; stop the model too.
        cancel: async () => {
          await tokens.return(undefined)
        },
      })
      return new Response(body, {
        headers: { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' },
      })
    },
  )

  return async function handler(request: Request): Promise<Response> {
    const found = apiKeys.get(request.headers.get('authorization')?.replace(/^Bearer /i, '') ?? '')
    if (found === undefined) {
      return Response.json({ error: 'send Authorization: Bearer <api key>' }, { status: 401 })
    }
    const route = `${request.method} ${new URL(request.url).pathname}`
    if (route === 'GET /v1/balance') {
      const { account: id, available, held, total } = await meter.balance(found)
      return Response.json({ account: id, available, held, total })
    }
    if (route !== 'POST /v1/tokenize' && route !== 'POST /v1/completions') {
      return Response.json({ error: 'not found' }, { status: 404 })
    }
    const body: unknown = await request.json().catch(() => ({}))
    const fields =
      typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {}
    read.set(request, { account: found, body: fields })
    if (route === 'POST /v1/tokenize') return tokenize(request)
    const maxTokens = read.get(request)?.body.maxTokens
    if (
      !Number.isSafeInteger(maxTokens) ||
      (maxTokens as number) < 1 ||
      (maxTokens as number) > MAX_TOKENS
    ) {
      return Response.json(
        { error: `maxTokens must be an integer from 1 to ${MAX_TOKENS}` },
        { status: 400 },
      )
    }
    return completions(request)
  }
}
