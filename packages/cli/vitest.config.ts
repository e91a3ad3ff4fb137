import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    // The binary tests run dist/bin.js: build it from the current sources first.
    globalSetup: ['./src/test-global-setup.ts'],
    // PGlite (WASM) takes seconds to start on a busy 2-core machine.
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
})
