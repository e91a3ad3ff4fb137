#!/usr/bin/env node
// The `tollgate` command. A committed file rather than dist/bin.js itself, so that installing
// the workspace links the command before anything is built (package managers link bins at
// install time); it runs the built program.
import '../dist/bin.js'
