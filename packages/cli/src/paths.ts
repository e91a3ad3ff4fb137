/** Where this package's files are at run time. */
import { fileURLToPath } from 'node:url'

/**
 * The built `tollgate` executable (`dist/bin.js`), for `node <CLI_BIN> …` in printed
 * instructions and tests. From the sources (tests), it still points at `dist/`.
 */
export const CLI_BIN = fileURLToPath(new URL('../dist/bin.js', import.meta.url))
