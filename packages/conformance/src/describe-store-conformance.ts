import type { Store } from '@tollgate/core'
import { describe } from 'vitest'
import { describeModelProperty } from './model/property.js'
import { describeUsageProperty } from './model/usage-property.js'
import { accountRules } from './rules/accounts.js'
import { accountsListRules } from './rules/accounts-list.js'
import { cycleRules } from './rules/cycles.js'
import { debitRules } from './rules/debit.js'
import { debtRules } from './rules/debt.js'
import { errorRules } from './rules/errors.js'
import { eventRules } from './rules/events.js'
import { expiryRules } from './rules/expiry.js'
import { grantAndBurnOrderRules } from './rules/grants-and-burn-order.js'
import { holdGrowthRules } from './rules/hold-growth.js'
import { holdRules } from './rules/holds.js'
import { idempotencyRules } from './rules/idempotency.js'
import { ledgerRules } from './rules/ledger.js'
import { outboxRules } from './rules/outbox.js'
import { overageRules } from './rules/overage.js'
import { redeemCodeRules } from './rules/redeem-codes.js'
import { tenantSettingsRules } from './rules/tenant-settings.js'
import { tenantRules } from './rules/tenants.js'
import { usageRules } from './rules/usage.js'

/** Options of {@link describeStoreConformance}. */
export interface ConformanceOptions {
  /** Shown in the suite name, e.g. `'memory'`. */
  name: string
  /** A fresh, empty store (or one whose tenants the suite does not reuse). */
  createStore: () => Store | Promise<Store>
  /** Called after each test with the store it used. */
  teardown?: (store: Store) => void | Promise<void>
  /** Rule names (test titles) or groups to skip, for a store that cannot support them yet. */
  skip?: string[]
  /**
   * Another store over the same data as `store` (another connection or process), for the rules
   * that check a change made through one is seen through the other (the change feed). Leave it
   * out where there is nothing to share (memory, an in-process PGlite): those rules then use
   * `store` itself. The suite closes it.
   */
  createPeer?: (store: Store) => Store | Promise<Store>
  /** Random sequences the property test runs. @default 1000 */
  numRuns?: number
}

/**
 * Registers the shared conformance suite for a store: every rule of DESIGN §1 (as refined by
 * docs/decisions.md), checked through a `Meter` with a fake clock, plus the model-based
 * property test. Each test gets a fresh store from `createStore()` and a tenant of its own, so a
 * store shared between tests still isolates; after it, `teardown(store)` runs if given, else
 * the meter (and with it the store) is closed.
 * @example
 * import { memoryStore } from '@tollgate/core'
 * import { describeStoreConformance } from '@tollgate/conformance'
 * describeStoreConformance({ name: 'memory', createStore: () => memoryStore() })
 */
export function describeStoreConformance(options: ConformanceOptions): void {
  describe(`store conformance: ${options.name}`, () => {
    accountRules(options)
    accountsListRules(options)
    grantAndBurnOrderRules(options)
    debitRules(options)
    holdRules(options)
    holdGrowthRules(options)
    overageRules(options)
    debtRules(options)
    expiryRules(options)
    cycleRules(options)
    redeemCodeRules(options)
    ledgerRules(options)
    idempotencyRules(options)
    eventRules(options)
    outboxRules(options)
    tenantRules(options)
    tenantSettingsRules(options)
    errorRules(options)
    usageRules(options)
    describeModelProperty(options)
    describeUsageProperty(options)
  })
}
