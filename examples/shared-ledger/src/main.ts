/**
 * Runs the shared-ledger demo (`corepack pnpm demo` from the repository root) and prints what to
 * try. Ctrl-C stops the app and the server cleanly.
 */
import path from 'node:path'
import { CLI_BIN, formatCredits, nodeCommand } from '@tollgate/cli'
import { startDemo } from './demo.js'

// Where the user ran the command: pnpm runs this script from the example's directory but says
// where it was started in INIT_CWD. The ledger and the printed paths are relative to that.
const cwd = process.env.INIT_CWD ?? process.cwd()
const dataDir = path.join(cwd, '.tollgate')

const demo = await startDemo({
  port: Number(process.env.TOLLGATE_PORT ?? 7070),
  appPort: Number(process.env.PORT ?? 3000),
  dataDir,
})
const { seed, serverUrl, appUrl } = demo
const cli = nodeCommand(CLI_BIN, cwd)
const env = `TOLLGATE_URL=${serverUrl} TOLLGATE_API_KEY=${seed.apiKey}`
const json = `-H 'Content-Type: application/json'`
const as = `-H 'X-Account: ${seed.account}'`

console.log(`Tollgate shared-ledger demo: an Express app whose credits live in a Tollgate server.

Tollgate server  ${serverUrl}  (PGlite in ${path.relative(cwd, dataDir) || '.'})
  admin key      ${demo.adminKey ?? '(printed on the first start only)'}
  tenant "${seed.tenant}"  key ${seed.apiKey}  (a new one each run)
  ${seed.account}          ${formatCredits(seed.balance.available)} credits available${seed.granted ? '' : ' (granted on an earlier run)'}
Express app      ${appUrl}  (meter: httpStore() → the server above, tenant "${seed.tenant}")

Try:
  # reserves maxTokens (50), charges the words produced (6); see the X-Credits-* headers
  curl -si ${as} ${json} -d '{"prompt":"the ledger lives in the server","maxTokens":50}' ${appUrl}/v1/completions

  # free: the balance, as the app sees it
  curl -s ${appUrl}/balance/${seed.account}

  # the same balance from the server's REST API, with the tenant key
  curl -s -H 'Authorization: Bearer ${seed.apiKey}' ${serverUrl}/v1/accounts/${seed.account}/balance

  # and from the tollgate CLI (ledger, grant, debit, codes create work the same way)
  ${env} ${cli} balance ${seed.account}
  ${env} ${cli} ledger ${seed.account}

  # more than the balance: 402 application/problem+json
  curl -si ${as} ${json} -d '{"prompt":"hi","maxTokens":4096}' ${appUrl}/v1/completions

Ctrl-C stops the app and the server.`)

let stopping = false
const stop = async (signal: NodeJS.Signals) => {
  if (stopping) process.exit(130) // a second Ctrl-C: do not wait
  stopping = true
  console.log(`\n${signal}: stopping the app and the server…`)
  await demo.close()
  console.log('stopped')
}
const onSignal = (signal: NodeJS.Signals) => {
  stop(signal).catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
process.on('SIGINT', onSignal)
process.on('SIGTERM', onSignal)
