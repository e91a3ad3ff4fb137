export { type CreditsErrorData, creditsErrorData } from './errors.js'
export {
  createMetered,
  type MeteredBuilder,
  type MeteredCallOptions,
  type MeteredContext,
  type MeteredMeta,
  type MeteredMiddleware,
  type MeteredOptions,
  type MeteredResult,
  type MeteredRoot,
  metered,
} from './metered.js'
