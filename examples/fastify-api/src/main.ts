/** Runs the example: `pnpm start`, then try the curl commands it prints. */
import { createMeter, memoryStore } from '@tollgate/core'
import { createApp, DEMO_ACCOUNT, DEMO_KEY } from './app.js'

const meter = createMeter({ store: memoryStore() })
await meter.grant(DEMO_ACCOUNT, 500)

const port = Number(process.env.PORT ?? 3000)
const app = await createApp(meter)
await app.listen({ port })
const url = `http://localhost:${port}`
const auth = `-H 'Authorization: Bearer ${DEMO_KEY}'`
const json = `-H 'Content-Type: application/json'`
console.log(`Fastify API metered by Tollgate on ${url}; ${DEMO_ACCOUNT} holds 500 credits.

  # free: the balance
  curl -s ${auth} ${url}/v1/balance

  # 1 credit
  curl -si ${auth} ${json} -d '{"text":"hello metered world"}' ${url}/v1/tokenize

  # reserves 64 credits, streams, charges the tokens produced (see X-Credits-* headers)
  curl -N -i ${auth} ${json} -d '{"maxTokens":64}' ${url}/v1/completions

  # more than the balance: 402 application/problem+json
  curl -si ${auth} ${json} -d '{"maxTokens":4096}' ${url}/v1/completions
`)

process.on('SIGINT', () => {
  void app.close().then(() => meter.close())
})
