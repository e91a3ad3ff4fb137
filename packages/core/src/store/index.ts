/**
 * `@tollgate/core/store`: the Store contract and what a new store needs beside the engine:
 * the request and outcome shapes, ledger cursors, the API key registry, id generation, and the
 * options kit its factory resolves its options with (as every Tollgate factory does), with
 * the redeem throttle's resolution that a factory running meters (the server) shares.
 * Imported by store authors (`@tollgate/postgres`) and the server; apps never need it.
 */

export { type RedeemAttemptsOptions, resolveRedeemAttempts } from '../meter/redeem-attempts.js'
export {
  checkBoolean,
  checkFunction,
  checkInt,
  checkOneOf,
  checkStore,
  type OptionDefaults,
  type OptionsSpec,
  type ResolvedOptions,
  readOptions,
  UNKNOWN_OPTION_WARNING,
  WARNING_TYPE,
  warn,
} from '../options-kit.js'
export {
  type AccountsKey,
  type AccountsOrder,
  accountsOrder,
  compareAccountIds,
  decodeAccountsCursor,
  encodeAccountsCursor,
  matchesAccountsFilters,
  pageAccounts,
  sortValue,
} from './accounts.js'
export { eventId, newId } from './ids.js'
export {
  type AccountChange,
  type AccountsRequest,
  type ApiKeyRecord,
  type CodeBatch,
  type CodeBatchOutcome,
  decodeCursor,
  type EventsRequest,
  type ExecuteRequest,
  encodeCursor,
  errorOutcome,
  type KeyRegistry,
  type LedgerRequest,
  memoryKeyRegistry,
  NO_TENANT_SETTINGS,
  type Outcome,
  patchTenantSettings,
  type Store,
  type StoredEvent,
  type StoredEventType,
  type StoreObserver,
  type WatchListener,
  type WatchSubscription,
  withTenantSettings,
} from './store.js'
export {
  memoryWebhookRegistry,
  type NewWebhookDelivery,
  type WebhookAttempt,
  type WebhookClaim,
  type WebhookDelivery,
  type WebhookDeliveryQuery,
  type WebhookDeliveryStatus,
  type WebhookEndpoint,
  type WebhookRegistry,
} from './webhooks.js'
