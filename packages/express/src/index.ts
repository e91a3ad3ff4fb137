export type { RequestCredits } from '@tollgate/core/metering'
export { type MeteredOptions, metered } from './metered.js'
