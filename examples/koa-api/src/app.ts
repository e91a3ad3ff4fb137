/**
 * A Koa API metered by Tollgate:
 *
 * - `POST /v1/completions { maxTokens }`: priced by the tokens asked for, streamed as
 *   server-sent events, charged for the tokens actually produced;
 * - `POST /v1/tokenize { text }`: a cheap endpoint at 1 credit;
 * - `GET /v1/balance`: free.
 *
 * Callers authenticate with `Authorization: Bearer <api key>`; each key belongs to an account.
 * Routing is a table of `METHOD path` → middlewares, to stay free of a router dependency.
 */
import { Readable } from 'node:stream'
import type { Meter } from '@tollgate/core'
import { metered } from '@tollgate/koa'
import Koa, { type Context, type Middleware, type Next } from 'koa'
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

interface State {
  account: string
  body: Record<string, unknown>
}

const state = (ctx: Context) => ctx.state as State

/** Reads a JSON body (up to 64 kB) into `ctx.state.body`. */
const jsonBody: Middleware = async (ctx, next) => {
  state(ctx).body = {}
  if (ctx.method === 'POST' && ctx.is('application/json')) {
    let text = ''
    for await (const chunk of ctx.req) {
      text += String(chunk)
      if (text.length > 65_536) ctx.throw(413, 'body too large')
    }
    try {
      state(ctx).body = JSON.parse(text)
    } catch {
      ctx.throw(400, 'body is not JSON')
    }
  }
  await next()
}

/** Runs `middlewares` in order, as koa-compose would. */
function chain(...middlewares: Middleware[]): Middleware {
  return (ctx, next) => {
    const run = (i: number): Promise<void> =>
      i === middlewares.length
        ? Promise.resolve(next()).then(() => {})
        : Promise.resolve(middlewares[i]!(ctx, () => run(i + 1))).then(() => {})
    return run(0)
  }
}

/** Builds the app over `meter`; the caller listens. */
export function createApp(meter: Meter, options: AppOptions = {}): Koa {
  const apiKeys = new Map(Object.entries(options.apiKeys ?? { [DEMO_KEY]: DEMO_ACCOUNT }))
  const tokenDelayMs = options.tokenDelayMs ?? 50
  const account = (ctx: Context) => state(ctx).account

  const authenticate: Middleware = async (ctx, next) => {
    const key = ctx.get('authorization').replace(/^Bearer /i, '')
    const found = apiKeys.get(key)
    if (found === undefined) {
      ctx.status = 401
      ctx.body = { error: 'send Authorization: Bearer <api key>' }
      return
    }
    state(ctx).account = found
    await next()
  }

  const balance: Middleware = async (ctx) => {
    const { account: id, available, held, total } = await meter.balance(account(ctx))
    ctx.body = { account: id, available, held, total }
  }

  const tokenize: Middleware = (ctx) => {
    const text = state(ctx).body.text
    ctx.body = { tokens: typeof text === 'string' ? text.split(/\s+/).filter(Boolean).length : 0 }
  }

  const validCompletion: Middleware = async (ctx, next) => {
    const maxTokens = state(ctx).body.maxTokens
    const valid = Number.isSafeInteger(maxTokens) && (maxTokens as number) >= 1
    if (!valid || (maxTokens as number) > MAX_TOKENS) {
      ctx.throw(400, `maxTokens must be an integer from 1 to ${MAX_TOKENS}`)
    }
    await next()
  }

  const completion: Middleware = (ctx) => {
    const credits = ctx.state.credits
    const maxTokens = state(ctx).body.maxTokens as number
    async function* events() {
      let produced = 0
      for await (const token of complete(maxTokens, tokenDelayMs)) {
        yield `data: ${JSON.stringify({ token })}\n\n`
        produced++
        // Charged once the stream has been sent: the tokens produced, not the tokens reserved.
        if (credits) credits.actual = produced
      }
      yield `event: done\ndata: ${JSON.stringify({ tokens: produced })}\n\n`
    }
    ctx.type = 'text/event-stream'
    ctx.set('Cache-Control', 'no-cache')
    // The chain returns now; metered() settles when this stream has been sent (or the client
    // left, which destroys the stream and releases the hold).
    ctx.body = Readable.from(events())
  }

  const routes = new Map<string, Middleware>([
    ['GET /v1/balance', balance],
    ['POST /v1/tokenize', chain(metered(meter, { account, cost: 1 }), tokenize)],
    [
      'POST /v1/completions',
      chain(
        validCompletion,
        // Reserve the most this completion may cost: one credit per token asked for.
        metered(meter, { account, cost: (ctx) => state(ctx).body.maxTokens as number }),
        completion,
      ),
    ],
  ])

  const app = new Koa()
  app.on('error', (err: Error & { code?: string; expose?: boolean }) => {
    // A client that leaves mid-stream breaks the pipe: expected, and already not charged.
    if (err.code === 'ERR_STREAM_PREMATURE_CLOSE' || err.expose) return
    console.error(err)
  })
  app.use(jsonBody)
  app.use(async (ctx: Context, next: Next) => {
    const route = routes.get(`${ctx.method} ${ctx.path}`)
    if (route === undefined) return next()
    return chain(authenticate, route)(ctx, next)
  })
  return app
}
