import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    // Finds the PostgreSQL server of the PostgreSQL tests (TOLLGATE_TEST_DATABASE_URL, else the
    // default local address when it answers).
    globalSetup: ['../../scripts/test-database.mjs'],
    // Starting PGlite (WASM) takes seconds on a busy 2-core machine; database tests get room.
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
})
