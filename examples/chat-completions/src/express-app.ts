/**
 * The chat completions endpoint on Express: `metered()` holds the opening price, tops the hold
 * up while the answer streams, and charges what was served, also to a client that leaves.
 */
import type { Meter } from '@tollgate/core'
import { metered } from '@tollgate/express'
import express, { type ErrorRequestHandler, type Express, type Request } from 'express'
import { completionEvents, openingHold, TOP_UP } from './chat.js'

/** The seeded account of the demo, and its API key. */
export const DEMO_ACCOUNT = 'acct_demo'
export const DEMO_KEY = 'demo-key'

export interface AppOptions {
  /** API key → account. @default { 'demo-key': 'acct_demo' } */
  apiKeys?: Record<string, string>
  /** Pause between streamed tokens, as a model would take. @default 30 */
  tokenDelayMs?: number
}

/** The caller's account from `Authorization: Bearer <key>`; null for an unknown key. */
export function accountFor(keys: Map<string, string>, authorization: string | undefined) {
  return keys.get(authorization?.replace(/^Bearer /i, '') ?? '') ?? null
}

/** Builds the app over `meter`; the caller listens. */
export function createExpressApp(meter: Meter, options: AppOptions = {}): Express {
  const keys = new Map(Object.entries(options.apiKeys ?? { [DEMO_KEY]: DEMO_ACCOUNT }))
  const tokenDelayMs = options.tokenDelayMs ?? 30
  const accountOf = (req: Request) => accountFor(keys, req.get('authorization')) ?? ''

  const app = express()
  // Before metered(): the opening hold is priced from the parsed body.
  app.use(express.json({ limit: '1mb' }))
  app.use('/v1', (req, res, next) => {
    if (accountOf(req) === '') res.status(401).json({ error: 'send Authorization: Bearer <key>' })
    else next()
  })

  app.get('/v1/balance', async (req, res) => {
    const { account, available, held, total } = await meter.balance(accountOf(req))
    res.json({ account, available, held, total })
  })

  app.post(
    '/v1/chat/completions',
    metered(meter, {
      account: accountOf,
      cost: (req) => openingHold(req.body),
      topUp: TOP_UP,
      onAbort: 'used',
    }),
    async (req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' })
      // A client that leaves aborts `credits.signal`, which ends the events: metered() then
      // charges what was served (onAbort: 'used').
      for await (const event of completionEvents(req.body, req.credits ?? null, { tokenDelayMs })) {
        res.write(event)
      }
      res.end()
    },
  )

  const onError: ErrorRequestHandler = (err, _req, res, _next) => {
    console.error(err)
    if (!res.headersSent) res.status(500).json({ error: 'internal error' })
    else res.end()
  }
  app.use(onError)
  return app
}
