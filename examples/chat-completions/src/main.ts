/** Runs the example: Express on PORT (3000), Hono on PORT + 1; try the curl commands it prints. */
import { serve } from '@hono/node-server'
import { createMeter, memoryStore } from '@tollgate/core'
import { createExpressApp, DEMO_ACCOUNT, DEMO_KEY } from './express-app.js'
import { createHonoApp } from './hono-app.js'

const meter = createMeter({ store: memoryStore() })
await meter.grant(DEMO_ACCOUNT, 1_000)

const port = Number(process.env.PORT ?? 3000)
const expressServer = createExpressApp(meter).listen(port)
const honoServer = serve({ fetch: createHonoApp(meter).fetch, port: port + 1 })
const auth = `-H 'Authorization: Bearer ${DEMO_KEY}' -H 'Content-Type: application/json'`
const body = `'{"stream":true,"messages":[{"role":"user","content":"How does Tollgate meter streams?"}]}'`
console.log(`Chat completions metered by Tollgate: Express on http://localhost:${port}, Hono on \
http://localhost:${port + 1}; ${DEMO_ACCOUNT} holds 1,000 credits (one account for both).

  # streams OpenAI chunks; the hold tops up as it goes, the tokens served are charged
  curl -N -i ${auth} -d ${body} http://localhost:${port}/v1/chat/completions

  # the balance, free
  curl -s ${auth} http://localhost:${port + 1}/v1/balance
`)

process.on('SIGINT', () => {
  expressServer.close()
  honoServer.close()
  void meter.close()
})
