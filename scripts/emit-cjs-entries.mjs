// Run by every publishable package's `build`, after tsc, in the package's folder. It emits what a
// CommonJS consumer resolves through the `require` condition of each entry in `exports`:
//
// - For every `dist/**/*.d.ts`, a `.d.cts` twin whose relative imports name `.cjs` files. Under
//   TypeScript's `module: node16` (and node18) a `require()` of an ES module is an error, so a
//   CommonJS app on those settings could not type its `require('@tollgate/core')`; the twins
//   type it as the CommonJS module it is at run time.
// - For every entry, the `.cjs` file its `require` condition names: it require()s the ESM entry
//   (Node >= 20.19 loads ESM with require()), so `import` and `require()` reach one and the same
//   module instance, never a second copy of the package (no dual-package hazard).
//
// The package's code stays ESM only; these files add no second build. docs/decisions.md
// ("Packages") says why.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'

const pkg = JSON.parse(readFileSync('package.json', 'utf8'))

/** Every file under `dir`, recursively. */
function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  )
}

// Start from tsc's output alone: a twin or wrapper left by a deleted source must not ship.
for (const file of walk('dist')) {
  if (file.endsWith('.d.cts') || file.endsWith('.cjs')) rmSync(file)
}

// `from './x.js'`, `import('./x.js')`, `export * from '../y/index.js'`, either quote.
const RELATIVE_JS = /((?:from\s+|import\()\s*)(['"])(\.{1,2}\/[^'"]*?)\.js\2/g
let twins = 0
for (const file of walk('dist')) {
  if (!file.endsWith('.d.ts')) continue
  const text = readFileSync(file, 'utf8').replace(RELATIVE_JS, '$1$2$3.cjs$2')
  writeFileSync(`${file.slice(0, -'.d.ts'.length)}.d.cts`, text)
  twins += 1
}

let wrappers = 0
for (const [subpath, target] of Object.entries(pkg.exports ?? {})) {
  if (typeof target === 'string') continue // './package.json'
  const esm = target.import?.default
  const cjs = target.require?.default
  const cjsTypes = target.require?.types
  if (!esm?.endsWith('.js') || !cjs?.endsWith('.cjs') || !cjsTypes?.endsWith('.d.cts')) {
    throw new Error(
      `${pkg.name}: exports["${subpath}"] needs import.default (.js), require.types (.d.cts) ` +
        'and require.default (.cjs)',
    )
  }
  if (!existsSync(esm)) {
    throw new Error(`${pkg.name}: exports["${subpath}"] names ${esm}, which tsc did not emit`)
  }
  let specifier = relative(dirname(cjs), esm)
  if (!specifier.startsWith('.')) specifier = `./${specifier}`
  mkdirSync(dirname(cjs), { recursive: true })
  writeFileSync(
    cjs,
    `'use strict'\n// ${pkg.name}${subpath.slice(1)} for require(): the ES module itself (Node >= 20.19).\nmodule.exports = require(${JSON.stringify(specifier)})\n`,
  )
  wrappers += 1
}
console.log(`${pkg.name}: require() entries: ${wrappers}, CommonJS declaration twins: ${twins}`)
