/**
 * A Fastify API metered by Tollgate:
 *
 * - `POST /v1/completions { maxTokens }`: priced by the tokens asked for, streamed as
 *   server-sent events with `reply.send(stream)`, charged for the tokens actually produced;
 * - `POST /v1/tokenize { text }`: a cheap endpoint at 1 credit;
 * - `GET /v1/balance`: free.
 *
 * Callers authenticate with `Authorization: Bearer <api key>`; each key belongs to an account.
 */
import { Readable } from 'node:stream'
import type { Meter } from '@tollgate/core'
import { tollgate } from '@tollgate/fastify'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
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

/** The body of a completion, as the route's schema has checked it. */
interface Completion {
  maxTokens: number
}

/** Builds the app over `meter`; the caller listens. */
export async function createApp(meter: Meter, options: AppOptions = {}): Promise<FastifyInstance> {
  const apiKeys = new Map(Object.entries(options.apiKeys ?? { [DEMO_KEY]: DEMO_ACCOUNT }))
  const tokenDelayMs = options.tokenDelayMs ?? 50

  /** The caller's account; '' when the key is unknown (the onRequest hook answered 401 then). */
  const accountOf = (req: FastifyRequest): string =>
    apiKeys.get(req.headers.authorization?.replace(/^Bearer /i, '') ?? '') ?? ''

  const app = Fastify()

  // Everything under /v1 in one plugin: the API key check and the metering apply to it only.
  await app.register(
    async (v1) => {
      v1.addHook('onRequest', async (req, reply) => {
        if (accountOf(req) === '') {
          return reply.code(401).send({ error: 'send Authorization: Bearer <api key>' })
        }
      })
      // Every route below costs 1 credit unless its config says otherwise.
      await v1.register(tollgate, { meter, account: accountOf, cost: 1 })

      v1.get('/balance', { config: { credits: false } }, async (req) => {
        const { account, available, held, total } = await meter.balance(accountOf(req))
        return { account, available, held, total }
      })

      v1.post<{ Body: { text?: unknown } }>('/tokenize', async (req) => {
        const text = typeof req.body?.text === 'string' ? req.body.text : ''
        return { tokens: text.split(/\s+/).filter(Boolean).length }
      })

      v1.post<{ Body: Completion }>(
        '/completions',
        {
          // Validated before the plugin's preHandler: a bad maxTokens is a 400, nothing reserved.
          schema: {
            body: {
              type: 'object',
              required: ['maxTokens'],
              properties: { maxTokens: { type: 'integer', minimum: 1, maximum: MAX_TOKENS } },
            },
          },
          // Reserve the most this completion may cost: one credit per token asked for.
          config: { credits: { cost: (req) => (req.body as Completion).maxTokens } },
        },
        (req, reply) => {
          async function* events() {
            let produced = 0
            // A client that leaves destroys this stream: the generator stops, the hold is released.
            for await (const token of complete(req.body.maxTokens, tokenDelayMs)) {
              yield `data: ${JSON.stringify({ token })}\n\n`
              produced++
              // Charged when the stream ends: the tokens produced, not the tokens reserved.
              if (req.credits) req.credits.actual = produced
            }
            yield `event: done\ndata: ${JSON.stringify({ tokens: produced })}\n\n`
          }
          return reply
            .header('cache-control', 'no-cache')
            .type('text/event-stream')
            .send(Readable.from(events()))
        },
      )
    },
    { prefix: '/v1' },
  )
  return app
}
