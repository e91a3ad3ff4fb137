/**
 * Runs the example: `pnpm start` (Express) or `PLATFORM=fastify pnpm start`, then try the curl
 * commands it prints.
 */
import { createMeter, memoryStore } from '@tollgate/core'
import { createApp, DEMO_ACCOUNT, DEMO_KEY } from './app.js'

const meter = createMeter({ store: memoryStore() })
await meter.grant(DEMO_ACCOUNT, 500)

const platform = process.env.PLATFORM === 'fastify' ? 'fastify' : 'express'
const port = Number(process.env.PORT ?? 3000)
const app = await createApp(meter, { platform })
await app.listen(port, '127.0.0.1')

const url = `http://127.0.0.1:${port}`
const auth = `-H 'Authorization: Bearer ${DEMO_KEY}'`
console.log(`NestJS (${platform}) API metered by Tollgate on ${url}; ${DEMO_ACCOUNT} holds 500 credits.

  # free: the balance
  curl -s ${auth} ${url}/v1/balance

  # 1 credit
  curl -si ${auth} -H 'Content-Type: application/json' -d '{"text":"hello metered world"}' ${url}/v1/tokenize

  # reserves 64 credits, streams (SSE), charges the tokens produced (see X-Credits-* headers)
  curl -N -i ${auth} '${url}/v1/completions?maxTokens=64'

  # more than the balance: 402 application/problem+json
  curl -si ${auth} '${url}/v1/completions?maxTokens=4096'
`)

process.on('SIGINT', () => {
  void app.close().then(() => meter.close())
})
