/**
 * The chat completions endpoint on Hono, served by `app.fetch` on any runtime: `metered()`
 * holds the opening price, tops the hold up while the answer streams, and charges what was
 * served, also to a client that leaves.
 */
import { InvalidInputError, type Meter } from '@tollgate/core'
import { metered, type TollgateEnv } from '@tollgate/hono'
import { type Context, Hono } from 'hono'
import { stream } from 'hono/streaming'
import { type ChatRequest, completionEvents, openingHold, TOP_UP } from './chat.js'
import { type AppOptions, accountFor, DEMO_ACCOUNT, DEMO_KEY } from './express-app.js'

/** What the app's own middleware sets: the caller's account. */
type AppEnv = { Variables: { account: string } }

/** The request body, parsed once (Hono keeps it for the handler). */
async function bodyOf(c: Context): Promise<ChatRequest> {
  try {
    return await c.req.json<ChatRequest>()
  } catch {
    throw new InvalidInputError('body', 'must be JSON')
  }
}

/** Builds the app over `meter`; the caller serves `app.fetch`. */
export function createHonoApp(meter: Meter, options: AppOptions = {}): Hono<AppEnv & TollgateEnv> {
  const keys = new Map(Object.entries(options.apiKeys ?? { [DEMO_KEY]: DEMO_ACCOUNT }))
  const tokenDelayMs = options.tokenDelayMs ?? 30
  const app = new Hono<AppEnv & TollgateEnv>()

  app.use('/v1/*', async (c, next) => {
    const account = accountFor(keys, c.req.header('authorization'))
    if (account === null) return c.json({ error: 'send Authorization: Bearer <key>' }, 401)
    c.set('account', account)
    await next()
  })

  app.get('/v1/balance', async (c) => {
    const { account, available, held, total } = await meter.balance(c.get('account'))
    return c.json({ account, available, held, total })
  })

  app.post(
    '/v1/chat/completions',
    metered<AppEnv>(meter, {
      account: (c) => c.get('account'),
      cost: async (c) => openingHold(await bodyOf(c)),
      topUp: TOP_UP,
      onAbort: 'used',
    }),
    async (c) => {
      const body = await bodyOf(c)
      c.header('Content-Type', 'text/event-stream')
      c.header('Cache-Control', 'no-cache')
      // metered() settles when this stream has been sent; a client that leaves aborts
      // `credits.signal`, which ends the events, and is charged what was served.
      return stream(c, async (s) => {
        for await (const event of completionEvents(body, c.get('credits') ?? null, {
          tokenDelayMs,
        })) {
          await s.write(event)
        }
      })
    },
  )

  return app
}
