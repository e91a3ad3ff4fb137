export type { RequestCredits } from '@tollgate/core/metering'
export { isMeteredError, type MeteredError, type MeteredOptions, metered } from './metered.js'
