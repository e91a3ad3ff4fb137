import type { AddressInfo } from 'node:net'
import { createMeter, memoryStore } from '@tollgate/core'
import { createServer } from './server.js'

const meter = createMeter({ store: memoryStore() })
await meter.grant('demo', 500)

const server = createServer(meter)
server.listen(Number(process.env.PORT ?? 3000), () => {
  const url = `http://localhost:${(server.address() as AddressInfo).port}`
  const input = (value: unknown) => encodeURIComponent(JSON.stringify(value))
  console.log(`tRPC API metered by Tollgate on ${url}. Account "demo" holds 500 credits.

Try:
  curl -H 'x-account: demo' '${url}/balance'
  curl -X POST -H 'x-account: demo' -H 'content-type: application/json' \\
       -d '{"text":"Credits are reserved first. Then settled."}' ${url}/summarize
  curl -N -H 'x-account: demo' '${url}/complete?input=${input({ prompt: 'Why meter', maxTokens: 40 })}'
  curl -N -H 'x-account: demo' '${url}/complete?input=${input({ prompt: 'Too much', maxTokens: 4000 })}'

The completion reserves maxTokens credits, streams tokens over SSE and charges the ones it
sent; the last call asks for more than the account holds and gets PAYMENT_REQUIRED.
Press Ctrl+C to stop.`)
})
