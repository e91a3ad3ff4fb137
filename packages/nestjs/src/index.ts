export type { RequestCredits } from '@tollgate/core/metering'
export { Credits, type CreditsCost, type CreditsOptions, CurrentCredits } from './credits.js'
export { CreditsExceptionFilter, CreditsRefusedException } from './credits-exception.js'
export type { HttpRequest } from './http.js'
export {
  TOLLGATE_METER,
  TOLLGATE_OPTIONS,
  type TollgateModuleAsyncOptions,
  type TollgateModuleOptions,
} from './options.js'
export { TollgateModule } from './tollgate-module.js'
