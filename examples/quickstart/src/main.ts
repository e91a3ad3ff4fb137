import { runQuickstart } from './quickstart.js'

console.log('Tollgate quickstart: the ledger of one account, on the in-memory store.\n')
await runQuickstart((line) => console.log(line))
console.log('\nNext: docs/decisions.md explains every rule shown here.')
