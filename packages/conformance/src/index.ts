export {
  type ConformanceOptions,
  describeStoreConformance,
} from './describe-store-conformance.js'
export { ReferenceModel } from './model/reference-model.js'
