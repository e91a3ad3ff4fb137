/**
 * `@tollgate/conformance/testing`: the helpers Tollgate's own tests share (ledger reads and the
 * replay check, exact meters, spy and failing stores, a real HTTP server, waiting). Imported by
 * the tests of stores, adapters, the server and `test/`; each helper has one name.
 */
export { type Deferred, deferred, sleep } from './async.js'
export { type Listening, listen } from './http.js'
export {
  expectLedgerReplays,
  ledgerOldestFirst,
  ledgerTypes,
  readLedger,
  settledAs,
} from './ledger.js'
export { downStore, failingStore, meterWith, type SpyStore, spyStore } from './stores.js'
