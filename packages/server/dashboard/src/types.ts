/**
 * The API's answers the dashboard reads (see `/openapi.json`): the public types of
 * `@tollgate/core`, whose JSON the REST routes send as they are. Type-only: nothing of core is
 * bundled.
 */
export type {
  AccountSummary as AccountRow,
  AccountsPage as AccountList,
  Balance,
  BalanceBucket as Bucket,
  LedgerEntry,
  LedgerPage,
  UsagePeriod,
  UsageReport as Usage,
} from '@tollgate/core'
