/**
 * PGlite answers in this thread, through promises alone. Under steady load the store must
 * still let timers and I/O run, or a busy app would stop accepting requests.
 */
import { createMeter } from '@tollgate/core'
import { describe, expect, it } from 'vitest'
import { pgliteStore } from './pglite-store.js'

describe('pgliteStore under steady load', () => {
  it.each([true, false])(
    'lets timers fire (groupCommit: %s)',
    async (groupCommit) => {
      const meter = createMeter({ store: pgliteStore({ groupCommit }), cache: false })
      try {
        await meter.grant('a', 1_000_000)
        let running = true
        let ops = 0
        const started = performance.now()
        let firedAfter = Number.POSITIVE_INFINITY
        const timer = setTimeout(() => {
          firedAfter = performance.now() - started
          running = false
        }, 50)
        const loop = async () => {
          // Bounded, so a store that starves timers fails the test instead of hanging it.
          while (running && ops < 3_000) {
            const hold = await meter.reserve('a', 1)
            await hold.commit()
            ops++
          }
        }
        await Promise.all(Array.from({ length: 8 }, loop))
        clearTimeout(timer)
        expect(ops).toBeLessThan(3_000)
        expect(firedAfter).toBeLessThan(1_000)
      } finally {
        await meter.close()
      }
    },
    30_000,
  )
})
