export type { RequestCredits } from '@tollgate/core/metering'
export { type MeteredHandler, type MeteredOptions, metered } from './metered.js'
export {
  answerRefusal,
  canCopy,
  problemResponse,
  refusalResponse,
  withCreditHeaders,
  withHeaders,
} from './responses.js'
export {
  type BodyGiven,
  type NodeEnv,
  nodeEnvOf,
  startWebRequest,
  WebMeteredRequest,
} from './web-request.js'
