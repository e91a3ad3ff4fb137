import type { Store } from '@tollgate/core'

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
  /** Random sequences the property test runs. @default 1000 */
  numRuns?: number
}
