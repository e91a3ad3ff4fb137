export {
  type ConformanceOptions,
  describeStoreConformance,
} from './describe-store-conformance.js'
export {
  downStore,
  expectLedgerReplays,
  failingStore,
  ledgerOldestFirst,
  ledgerTypes,
  listen,
  meterWith,
  readLedger,
  settledAs,
  sleep,
} from './helpers.js'
export { ReferenceModel } from './model/reference-model.js'
