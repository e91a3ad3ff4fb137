export type { RequestCredits } from '@tollgate/core/metering'
export {
  type CreditsVariables,
  type MeteredOptions,
  metered,
  type TollgateEnv,
} from './metered.js'
