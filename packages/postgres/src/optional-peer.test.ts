import { InvalidInputError } from '@tollgate/core'
import { describe, expect, it } from 'vitest'
import { assertPeerInstalled } from './optional-peer.js'

// The packed packages are checked without their peers in test/pack.test.ts; here, the rule.
describe('assertPeerInstalled', () => {
  it('passes for an installed peer', () => {
    expect(() => assertPeerInstalled('pg', 'postgresStore')).not.toThrow()
    expect(() => assertPeerInstalled('@electric-sql/pglite', 'pgliteStore')).not.toThrow()
  })

  it('names the package to install when it is missing', () => {
    const err = (() => {
      try {
        assertPeerInstalled('@tollgate/no-such-driver', 'someStore')
      } catch (e) {
        return e
      }
    })()
    expect(err).toBeInstanceOf(InvalidInputError)
    expect(err).toMatchObject({
      code: 'invalid_input',
      status: 400,
      field: '@tollgate/no-such-driver',
      message:
        "@tollgate/no-such-driver: someStore needs the '@tollgate/no-such-driver' package: npm install @tollgate/no-such-driver",
    })
  })
})
