// Sums the vitest JSON reports every package's `test` script writes, and prints one closing
// line, "Tests: N passed, N failed, N skipped". Exits non-zero when a test failed or none ran.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const dirs = ['packages', 'examples'].flatMap((d) =>
  existsSync(join(root, d)) ? readdirSync(join(root, d)).map((p) => join(root, d, p)) : [],
)
dirs.push(join(root, 'test'))
let passed = 0
let failed = 0
let skipped = 0
const rows = []
for (const dir of dirs) {
  const file = join(dir, '.vitest-report.json')
  if (!existsSync(file)) continue
  const report = JSON.parse(readFileSync(file, 'utf8'))
  passed += report.numPassedTests
  failed += report.numFailedTests + (report.numRuntimeErrors ?? 0)
  skipped += report.numPendingTests + report.numTodoTests
  const skips = report.numPendingTests + report.numTodoTests
  rows.push(
    `${dir.slice(root.length)}: ${report.numPassedTests} passed, ${report.numFailedTests} failed` +
      (skips > 0 ? `, ${skips} skipped` : ''),
  )
}
for (const row of rows) console.log(`  ${row}`)
console.log(`Tests: ${passed} passed, ${failed} failed, ${skipped} skipped`)
if (failed > 0 || passed === 0) process.exit(1)
