/**
 * `@tollgate/conformance`: the suites every store and every adapter runs, `describeStoreConformance`
 * (the ledger rules, a reference model and a property test) and `describeAdapterConformance`
 * (the middleware contract over real HTTP). The helpers tests share are in
 * `@tollgate/conformance/testing`.
 */
export {
  ADAPTER_TESTS,
  type AdapterConformanceOptions,
  type AdapterMountContext,
  type AdapterSkip,
  type AdapterTestName,
  type MountedAdapter,
  type RequestView,
  SUITE_PATHS,
  type SuiteMeteringOptions,
  type SuitePath,
  type SuiteReply,
  type SuiteRequest,
  type SuiteRoute,
  type SuiteStreamRoute,
} from './adapter/contract.js'
export { describeAdapterConformance } from './adapter/describe-adapter-conformance.js'
export {
  type ConformanceOptions,
  describeStoreConformance,
} from './describe-store-conformance.js'
export { ReferenceModel } from './model/reference-model.js'
