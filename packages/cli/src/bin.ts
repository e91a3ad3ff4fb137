#!/usr/bin/env node
/** The `tollgate` executable: runs the program on the process's arguments and sets the exit code. */
import { runCli } from './program.js'
import { nodeCommand } from './serve.js'

// How `serve --demo` tells the user to call the CLI: `tollgate` once installed, or the
// `node …/bin.js` that was run when started from a checkout.
const script = process.argv[1] ?? ''
const command =
  script.endsWith('bin.js') && !script.includes('node_modules') ? nodeCommand(script) : 'tollgate'

const code = await runCli(process.argv.slice(2), { command })
process.exitCode = code
// Everything the CLI opened is closed by now; should a stray handle (a driver's idle timer)
// still hold the event loop, do not hang the shell. Unref'd: it never delays a clean exit.
setTimeout(() => process.exit(code), 2_000).unref()
