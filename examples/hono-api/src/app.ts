/**
 * A Hono API metered by Tollgate:
 *
 * - `POST /v1/completions { maxTokens }`: priced by the tokens asked for, streamed as
 *   server-sent events (`streamSSE`), charged for the tokens actually produced;
 * - `POST /v1/tokenize { text }`: a cheap endpoint at 1 credit;
 * - `GET /v1/balance`: free.
 *
 * Callers authenticate with `Authorization: Bearer <api key>`; each key belongs to an account.
 * The app is a web-standard `fetch` handler: `main.ts` serves it on Node with
 * `@hono/node-server`; `export default app` serves it on Bun, Deno or Workers.
 */
import type { Meter } from '@tollgate/core'
import { metered, type TollgateEnv } from '@tollgate/hono'
import { type Context, Hono, type MiddlewareHandler } from 'hono'
import { streamSSE } from 'hono/streaming'
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

/** What the app's own middleware sets: the caller's account, the completion asked for. */
type AppEnv = { Variables: { account: string; maxTokens: number } }

/** The app's context: its own variables and `c.get('credits')`. */
type Env = AppEnv & TollgateEnv

/** Builds the app over `meter`; the caller serves `app.fetch`. */
export function createApp(meter: Meter, options: AppOptions = {}): Hono<Env> {
  const apiKeys = new Map(Object.entries(options.apiKeys ?? { [DEMO_KEY]: DEMO_ACCOUNT }))
  const tokenDelayMs = options.tokenDelayMs ?? 50
  const account = (c: Context<AppEnv>) => c.get('account')

  const app = new Hono<Env>()

  app.use('/v1/*', async (c, next) => {
    const found = apiKeys.get(c.req.header('authorization')?.replace(/^Bearer /i, '') ?? '')
    if (found === undefined) return c.json({ error: 'send Authorization: Bearer <api key>' }, 401)
    c.set('account', found)
    await next()
  })

  app.get('/v1/balance', async (c) => {
    const { account: id, available, held, total } = await meter.balance(c.get('account'))
    return c.json({ account: id, available, held, total })
  })

  app.post('/v1/tokenize', metered<AppEnv>(meter, { account, cost: 1 }), async (c) => {
    const body = await c.req.json<{ text?: unknown }>().catch(() => ({ text: undefined }))
    const text = typeof body.text === 'string' ? body.text : ''
    return c.json({ tokens: text.split(/\s+/).filter(Boolean).length })
  })

  /** Reads `{ maxTokens }` before metered(), which prices the completion by it. */
  const validCompletion: MiddlewareHandler<AppEnv> = async (c, next) => {
    const body = await c.req.json<{ maxTokens?: unknown }>().catch(() => ({ maxTokens: undefined }))
    const maxTokens = body.maxTokens
    if (
      !Number.isSafeInteger(maxTokens) ||
      (maxTokens as number) < 1 ||
      (maxTokens as number) > MAX_TOKENS
    ) {
      return c.json({ error: `maxTokens must be an integer from 1 to ${MAX_TOKENS}` }, 400)
    }
    c.set('maxTokens', maxTokens as number)
    await next()
  }

  app.post(
    '/v1/completions',
    validCompletion,
    // Reserve the most this completion may cost: one credit per token asked for.
    metered<AppEnv>(meter, { account, cost: (c) => c.get('maxTokens') }),
    (c) =>
      // The handler returns at once; metered() settles when this stream has been sent, or
      // releases the hold when the client leaves (which aborts the stream).
      streamSSE(c, async (sse) => {
        const credits = c.get('credits')
        let produced = 0
        for await (const token of complete(c.get('maxTokens'), tokenDelayMs)) {
          if (sse.aborted) return
          await sse.writeSSE({ data: JSON.stringify({ token }) })
          produced++
          // Charged once the stream has ended: the tokens produced, not the tokens reserved.
          if (credits) credits.actual = produced
        }
        await sse.writeSSE({ event: 'done', data: JSON.stringify({ tokens: produced }) })
      }),
  )

  return app
}
