/**
 * The packages as a consumer sees them: resolved through their `exports` maps from the built
 * `dist/`, not from source.
 */
import { execFileSync } from 'node:child_process'
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import * as conformance from '@tollgate/conformance'
import * as core from '@tollgate/core'
import { describe, expect, it } from 'vitest'

const require = createRequire(import.meta.url)

/** Every publishable package: the folders of packages/ not marked private. */
const root = fileURLToPath(new URL('..', import.meta.url))
const publishable = readdirSync(join(root, 'packages'))
  .map((dir) => ({ dir, pkg: readJson(join(root, 'packages', dir, 'package.json')) }))
  .filter(({ pkg }) => pkg.private !== true)

function readJson(file: string): Record<string, unknown> & { name: string } {
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown> & { name: string }
}

describe('package entry points', () => {
  it('every entry is ESM for import and its require() twin for require, types first', () => {
    expect(publishable.map((p) => p.pkg.name)).toContain('@tollgate/core')
    for (const { pkg } of publishable) {
      const exports = pkg.exports as Record<string, unknown>
      expect(pkg.type, pkg.name).toBe('module')
      expect((pkg.engines as { node: string }).node, pkg.name).toBe('>=20.19')
      expect(exports['./package.json'], pkg.name).toBe('./package.json')
      for (const [subpath, target] of Object.entries(exports)) {
        if (subpath === './package.json') continue
        const base = subpath === '.' ? 'index' : `${subpath.slice(2)}/index`
        // `import` gets the ES module, `require` a CommonJS file that require()s that same
        // module (Node >= 20.19), each with its declarations first.
        expect(target, `${pkg.name} ${subpath}`).toStrictEqual({
          import: { types: `./dist/${base}.d.ts`, default: `./dist/${base}.js` },
          require: { types: `./dist/${base}.d.cts`, default: `./dist/${base}.cjs` },
        })
      }
      // For resolvers that predate `exports`.
      expect([pkg.main, pkg.types], pkg.name).toEqual(['./dist/index.cjs', './dist/index.d.cts'])
    }
    for (const name of ['@tollgate/core', '@tollgate/conformance', '@tollgate/server']) {
      expect(import.meta.resolve(name)).toMatch(/\/dist\/index\.js$/)
      expect(require.resolve(name)).toMatch(/\/dist\/index\.cjs$/)
    }
  })

  it('this package depends on every publishable one, so turbo builds them before the pack test', () => {
    const self = readJson(join(root, 'test', 'package.json'))
    const deps = { ...(self.dependencies as object), ...(self.devDependencies as object) }
    for (const { pkg } of publishable) expect(deps, pkg.name).toHaveProperty([pkg.name])
  })

  it('every package says where it comes from and under which license', () => {
    const license = readFileSync(join(root, 'LICENSE'), 'utf8')
    for (const { dir, pkg } of publishable) {
      expect(pkg.license, pkg.name).toBe('MIT')
      expect(readFileSync(join(root, 'packages', dir, 'LICENSE'), 'utf8'), pkg.name).toBe(license)
      expect(pkg.repository, pkg.name).toEqual({
        type: 'git',
        url: 'git+https://github.com/tollgate-dev/tollgate.git',
        directory: `packages/${dir}`,
      })
      // A peer range has an upper bound: a future major is not promised to work.
      for (const [peer, range] of Object.entries(
        (pkg.peerDependencies ?? {}) as Record<string, string>,
      )) {
        expect(range, `${pkg.name} → ${peer}`).toMatch(/^\^\d+\.\d+\.\d+( \|\| \^\d+\.\d+\.\d+)*$/)
      }
      // npm shows the README away from the repository: no link may be relative to it.
      const readme = readFileSync(join(root, 'packages', dir, 'README.md'), 'utf8')
      const relative = [...readme.matchAll(/\]\(([^)]+)\)/g)]
        .map((m) => m[1]!)
        .filter((href) => !/^(https?:|#)/.test(href))
      expect(relative, `${pkg.name} README`).toEqual([])
    }
  })

  it('@tollgate/core exports the public surface of the design', () => {
    for (const fn of ['createMeter', 'memoryStore', 'httpStore', 'isTollgateError']) {
      expect(typeof (core as Record<string, unknown>)[fn], fn).toBe('function')
    }
    // The root is what an app calls: the engine, wire and schemas have entries of their own.
    const runtime = Object.keys(core)
    expect(runtime.length).toBeLessThanOrEqual(45)
    for (const name of ['applyOperation', 'newAccountState', 'hashCode', 'operationSchema']) {
      expect(runtime, name).not.toContain(name)
    }
    const meter = core.createMeter({ store: core.memoryStore() })
    for (const method of [
      'grant',
      'debit',
      'reserve',
      'commit',
      'release',
      'extend',
      'balance',
      'ledger',
      'configure',
      'startCycle',
      'stopCycle',
      'createCodes',
      'redeem',
      'sweep',
      'on',
      'close',
    ]) {
      expect(typeof (meter as unknown as Record<string, unknown>)[method], method).toBe('function')
    }
  })

  it('each audience has its own entry', async () => {
    const engine = await import('@tollgate/core/engine')
    const store = await import('@tollgate/core/store')
    const protocol = await import('@tollgate/core/protocol')
    const metering = await import('@tollgate/core/metering')
    expect(typeof engine.applyOperation).toBe('function')
    expect(typeof engine.hashCode).toBe('function')
    expect(typeof store.encodeCursor).toBe('function')
    expect(typeof protocol.operationSchema.parse).toBe('function')
    expect(typeof metering.createRequestMeter).toBe('function')
  })

  it('@tollgate/conformance exports the suites and the reference model, helpers from /testing', async () => {
    expect(typeof conformance.describeStoreConformance).toBe('function')
    expect(typeof conformance.describeAdapterConformance).toBe('function')
    expect(typeof conformance.ReferenceModel).toBe('function')
    expect(Object.keys(conformance)).not.toContain('expectLedgerReplays')
    const testing = await import('@tollgate/conformance/testing')
    for (const helper of ['expectLedgerReplays', 'ledgerOldestFirst', 'downStore', 'listen']) {
      expect(typeof (testing as Record<string, unknown>)[helper], helper).toBe('function')
    }
  })
})

describe('errors across two copies of @tollgate/core', () => {
  it('are recognised by code, not by class identity', () => {
    // Plain Node (not the test runner, which dedupes modules) loads a second instance of the
    // package, as when two versions are installed, and checks an error from one with the other.
    const entry = fileURLToPath(import.meta.resolve('@tollgate/core'))
    const root = dirname(dirname(entry))
    const copy = mkdtempSync(join(tmpdir(), 'tollgate-core-copy-'))
    cpSync(join(root, 'dist'), join(copy, 'dist'), { recursive: true })
    cpSync(join(root, 'package.json'), join(copy, 'package.json'))
    symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'))
    const script = `
      const a = await import(${JSON.stringify(pathToFileURL(entry).href)})
      const b = await import(${JSON.stringify(pathToFileURL(join(copy, 'dist/index.js')).href)})
      const meter = b.createMeter({ store: b.memoryStore() })
      const err = await meter.debit('a', 1).catch((e) => e)
      console.log(JSON.stringify({
        sameClass: a.InsufficientCreditsError === b.InsufficientCreditsError,
        instanceOfA: err instanceof a.InsufficientCreditsError,
        byCode: a.isTollgateError(err, 'insufficient_credits'),
        fields: { code: err.code, status: err.status, required: err.required, available: err.available },
      }))`
    let out: string
    try {
      out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
        encoding: 'utf8',
      })
    } finally {
      rmSync(copy, { recursive: true, force: true })
    }
    expect(JSON.parse(out)).toEqual({
      sameClass: false,
      instanceOfA: false,
      byCode: true,
      fields: { code: 'insufficient_credits', status: 402, required: 1, available: 0 },
    })
  })

  it('every documented error code maps to its HTTP status', () => {
    const cases: [core.TollgateError, string, number][] = [
      [new core.InvalidInputError('amount', 'bad'), 'invalid_input', 400],
      [new core.AuthError(), 'auth', 401],
      [new core.InsufficientCreditsError('a', 2, 1), 'insufficient_credits', 402],
      [new core.CodeUnavailableError('expired'), 'code_unavailable', 402],
      [new core.NotFoundError('hold', 'h'), 'not_found', 404],
      [new core.IdempotencyConflictError('k'), 'idempotency_conflict', 409],
      [new core.HoldResolvedError('h', 'committed'), 'hold_resolved', 409],
      [new core.HoldExpiredError('h', 0), 'hold_expired', 410],
      [new core.OverageError('h', 1, 2), 'overage', 409],
      [new core.StoreUnavailableError(), 'store_unavailable', 503],
    ]
    for (const [err, code, status] of cases) {
      expect([err.code, err.status]).toEqual([code, status])
      expect(err).toBeInstanceOf(core.TollgateError)
    }
  })
})
