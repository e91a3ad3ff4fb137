import type { AddressInfo } from 'node:net'
import { createMeter, memoryStore } from '@tollgate/core'
import { createServer } from './server.js'

const meter = createMeter({ store: memoryStore() })
await meter.grant('demo', 500)

const server = createServer(meter)
server.listen(Number(process.env.PORT ?? 3000), () => {
  const url = `http://localhost:${(server.address() as AddressInfo).port}`
  const json = `-H 'x-account: demo' -H 'content-type: application/json'`
  console.log(`Class handlers metered by @Metered on ${url}. Account "demo" holds 500 credits.

Try:
  curl -H 'x-account: demo' ${url}/v1/balance
  curl ${json} -d '{"text":"Credits are reserved first. Then settled."}' ${url}/v1/summaries
  curl -N ${json} -d '{"prompt":"Why meter","maxTokens":40}' ${url}/v1/completions
  curl -i ${json} -d '{"prompt":"Too much","maxTokens":4000}' ${url}/v1/completions

The completion reserves maxTokens credits, streams its tokens and charges the ones it sent;
the last call asks for more than the account holds and gets a 402 problem+json.
Press Ctrl+C to stop.`)
})
