/**
 * The app of the shared-ledger demo: an Express API whose meter keeps no credits of its own.
 * Its store is `httpStore()`, so every reserve and commit goes to the Tollgate server, where
 * any other instance of the app (or the `tollgate` CLI) sees the same balance.
 *
 * - `POST /v1/completions { prompt, maxTokens }` with `X-Account: <account>`: reserves
 *   `maxTokens` credits, answers, and is charged the tokens it produced;
 * - `GET /balance/:account`: free.
 */
import { isTollgateError, type Meter, PROBLEM_CONTENT_TYPE, problemDetails } from '@tollgate/core'
import { metered } from '@tollgate/express'
import express, {
  type ErrorRequestHandler,
  type Express,
  type Request,
  type RequestHandler,
} from 'express'

/** The largest completion one request may ask for. */
export const MAX_TOKENS = 4_096

/** The caller's account, from the `X-Account` header ('' when missing: metered() answers 400). */
const accountOf = (req: Request): string => req.get('x-account') ?? ''

/**
 * A stand-in for a model: it echoes the prompt's words, at most `maxTokens` of them. The price
 * is reserved for `maxTokens`; only the words produced are charged.
 */
export function complete(prompt: string, maxTokens: number): { text: string; tokens: number } {
  const words = prompt.split(/\s+/).filter(Boolean).slice(0, maxTokens)
  return { text: words.join(' '), tokens: words.length }
}

/**
 * Builds the app over `meter` (a meter on `httpStore()` in the demo); the caller listens.
 * @example
 * const meter = createMeter({ store: httpStore({ url, apiKey }) })
 * createApp(meter).listen(3000)
 */
export function createApp(meter: Meter): Express {
  const app = express()
  // Before metered(): the price is read from the parsed body.
  app.use(express.json())

  app.get('/balance/:account', async (req, res) => {
    // Fresh: the meter's cache would be up to a second behind other instances' requests.
    const { account, available, held, total } = await meter.balance(req.params.account, {
      fresh: true,
    })
    res.json({ account, available, held, total })
  })

  const validCompletion: RequestHandler = (req, res, next) => {
    const { prompt, maxTokens } = req.body ?? {}
    if (
      typeof prompt !== 'string' ||
      !Number.isSafeInteger(maxTokens) ||
      maxTokens < 1 ||
      maxTokens > MAX_TOKENS
    ) {
      res.status(400).json({ error: `send { prompt: string, maxTokens: 1–${MAX_TOKENS} }` })
      return
    }
    next()
  }

  app.post(
    '/v1/completions',
    validCompletion,
    // Reserve the most this completion may cost: one credit per token asked for.
    metered(meter, { account: accountOf, cost: (req) => req.body.maxTokens }),
    (req, res) => {
      const answer = complete(req.body.prompt, req.body.maxTokens)
      // Charged when the response ends: the tokens produced, not the tokens reserved.
      if (req.credits) req.credits.actual = answer.tokens
      res.json(answer)
    },
  )

  const onError: ErrorRequestHandler = (err, _req, res, _next) => {
    // A Tollgate error (the server unreachable: 503, a bad account id: 400) keeps its status.
    if (!isTollgateError(err)) console.error(err)
    if (res.headersSent) return void res.end()
    const problem = problemDetails(err)
    res.status(problem.status).type(PROBLEM_CONTENT_TYPE).send(problem)
  }
  app.use(onError)
  return app
}
