/** The scenarios of the HTTP benchmark, shared by the driver and the server process. */

export const SCENARIOS = [
  'express-bare',
  'express-rate-limit',
  'express-tollgate',
  'koa-bare',
  'koa-ratelimit',
  'koa-tollgate',
] as const

export type Scenario = (typeof SCENARIOS)[number]

/** Accounts the load rotates through (one per request, via the `x-account` header). */
export const ACCOUNTS = 100

export const accountName = (i: number) => `acct_${i}`
