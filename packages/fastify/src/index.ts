export type { RequestCredits } from '@tollgate/core/metering'
export {
  type RouteCredits,
  type RouteCreditsOptions,
  type TollgateOptions,
  tollgate,
} from './tollgate.js'
