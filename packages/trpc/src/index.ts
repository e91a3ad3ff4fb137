export { type CreditsErrorData, creditsErrorData } from './errors.js'
export {
  type MeteredCallOptions,
  type MeteredContext,
  type MeteredMeta,
  type MeteredMiddleware,
  type MeteredOptions,
  type MeteredResult,
  metered,
} from './metered.js'
