import { configDefaults, defineConfig } from 'vitest/config'

/**
 * Three groups, one after the other (`sequence.groupOrder`): the cross-process files run in
 * parallel; then the fault tests alone, since they measure latencies; then, only when
 * TOLLGATE_TEST_PG_RESTART=1, the test that stops the machine's PostgreSQL, which nothing else
 * may be using at that moment.
 */
const ALONE = ['store-faults.test.ts', 'postgres-restart.test.ts']

export default defineConfig({
  test: {
    // Finds the PostgreSQL server of the PostgreSQL tests (TOLLGATE_TEST_DATABASE_URL, else the
    // default local address when it answers).
    globalSetup: ['../scripts/test-database.mjs'],
    projects: [
      {
        extends: true,
        test: {
          name: 'processes',
          include: ['*.test.ts'],
          exclude: [...configDefaults.exclude, ...ALONE],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: { name: 'faults', include: ['store-faults.test.ts'], sequence: { groupOrder: 1 } },
      },
      {
        extends: true,
        test: {
          name: 'postgres-restart',
          include: ['postgres-restart.test.ts'],
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
})
