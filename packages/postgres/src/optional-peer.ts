/**
 * The drivers are optional peer dependencies (`pg`, `@electric-sql/pglite`), imported only when
 * a store creates its own pool or instance. A missing one is the app's setup to fix, so it fails
 * when the store is created, saying what to install, instead of at the first operation as a
 * `store_unavailable` the meter would retry.
 */
import { createRequire } from 'node:module'
import { InvalidInputError } from '@tollgate/core'

const require = createRequire(import.meta.url)

/**
 * Throws `InvalidInputError` (field: the package) when `pkg` cannot be found from this package.
 * @example assertPeerInstalled('pg', 'postgresStore') // "pg: postgresStore needs the 'pg' package: npm install pg"
 */
export function assertPeerInstalled(pkg: string, factory: string): void {
  try {
    require.resolve(pkg)
  } catch (err) {
    // Only "not installed" is the app's to fix here; anything else (a package that resolves for
    // import only, say) is left to the import itself.
    if ((err as { code?: unknown }).code !== 'MODULE_NOT_FOUND') return
    throw new InvalidInputError(pkg, `${factory} needs the '${pkg}' package: npm install ${pkg}`, {
      cause: err,
    })
  }
}
