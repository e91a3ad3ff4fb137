export type { RequestCredits } from '@tollgate/core'
export { type MeteredOptions, metered } from './metered.js'
