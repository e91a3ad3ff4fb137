/**
 * Vitest global setup: compiles `dist/` from the current sources, so the tests that run the
 * built binary (`node dist/bin.js`) never test a stale build. `pnpm test` does not build the
 * package under test itself (turbo builds its dependencies).
 */
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

export function setup(): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  const cwd = fileURLToPath(new URL('..', import.meta.url))
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd, stdio: 'inherit' })
}
