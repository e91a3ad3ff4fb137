import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    // Finds the PostgreSQL server of the PostgreSQL tests (TOLLGATE_TEST_DATABASE_URL, else the
    // default local address when it answers).
    globalSetup: ['../../scripts/test-database.mjs'],
  },
})
