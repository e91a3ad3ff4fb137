/**
 * An Express API metered by Tollgate:
 *
 * - `POST /v1/completions { maxTokens }`: priced by the tokens asked for, streamed as
 *   server-sent events, charged for the tokens actually produced;
 * - `POST /v1/tokenize { text }`: a cheap endpoint at 1 credit;
 * - `GET /v1/balance`: free.
 *
 * Callers authenticate with `Authorization: Bearer <api key>`; each key belongs to an account.
 */
import type { Meter } from '@tollgate/core'
import { metered } from '@tollgate/express'
import express, {
  type ErrorRequestHandler,
  type Express,
  type Request,
  type RequestHandler,
} from 'express'
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

/** Builds the app over `meter`; the caller listens. */
export function createApp(meter: Meter, options: AppOptions = {}): Express {
  const apiKeys = new Map(Object.entries(options.apiKeys ?? { [DEMO_KEY]: DEMO_ACCOUNT }))
  const tokenDelayMs = options.tokenDelayMs ?? 50

  /** The caller's account; '' when the key is unknown (authenticate() answered 401 then). */
  const accountOf = (req: Request): string =>
    apiKeys.get(req.get('authorization')?.replace(/^Bearer /i, '') ?? '') ?? ''

  const authenticate: RequestHandler = (req, res, next) => {
    if (accountOf(req) === '') {
      res.status(401).json({ error: 'send Authorization: Bearer <api key>' })
      return
    }
    next()
  }

  const app = express()
  // Before metered(): the completion's price is read from the parsed body.
  app.use(express.json())
  app.use('/v1', authenticate)

  app.get('/v1/balance', async (req, res) => {
    const { account, available, held, total } = await meter.balance(accountOf(req))
    res.json({ account, available, held, total })
  })

  app.post('/v1/tokenize', metered(meter, { account: accountOf, cost: 1 }), (req, res) => {
    const text = typeof req.body?.text === 'string' ? req.body.text : ''
    res.json({ tokens: text.split(/\s+/).filter(Boolean).length })
  })

  const validCompletion: RequestHandler = (req, res, next) => {
    const maxTokens = req.body?.maxTokens
    if (!Number.isSafeInteger(maxTokens) || maxTokens < 1 || maxTokens > MAX_TOKENS) {
      res.status(400).json({ error: `maxTokens must be an integer from 1 to ${MAX_TOKENS}` })
      return
    }
    next()
  }

  app.post(
    '/v1/completions',
    validCompletion,
    // Reserve the most this completion may cost: one credit per token asked for.
    metered(meter, { account: accountOf, cost: (req) => req.body.maxTokens }),
    async (req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' })
      let gone = false
      res.on('close', () => {
        gone = true
      })
      let produced = 0
      for await (const token of complete(req.body.maxTokens, tokenDelayMs)) {
        if (gone) return // the client left: metered() releases the hold
        res.write(`data: ${JSON.stringify({ token })}\n\n`)
        produced++
        // Charged when the response ends: the tokens produced, not the tokens reserved.
        if (req.credits) req.credits.actual = produced
      }
      res.end(`event: done\ndata: ${JSON.stringify({ tokens: produced })}\n\n`)
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
