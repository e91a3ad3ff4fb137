import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    // Starting PGlite (WASM) takes seconds on a busy 2-core machine; database tests get room.
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
})
