export type { RequestCredits } from '@tollgate/core'
export { isMeteredError, type MeteredError, type MeteredOptions, metered } from './metered.js'
