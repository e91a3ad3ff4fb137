/**
 * The packages as npm delivers them. Every publishable package is packed with `pnpm pack` (which
 * turns `workspace:` ranges into versions) and the tarballs are installed with npm into a fresh
 * folder, outside the workspace. There every entry of every `exports` map is loaded with
 * `require()` and with `import`, a small consumer is type-checked (strict) under `node16` (a
 * CommonJS `.cts` with `import x = require()` and an ESM `.mts`) and `bundler` resolution, and
 * @arethetypeswrong/cli and publint check each tarball. A missing optional peer (`pg`, PGlite)
 * must fail when the store is created, naming the package to install.
 *
 * npm fetches the third-party dependencies (from its cache when it has them); TypeScript is the
 * workspace's own.
 */
import { execFile } from 'node:child_process'
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { publint } from 'publint'
import { formatMessage } from 'publint/utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('..', import.meta.url))
const require = createRequire(import.meta.url)

interface Manifest {
  name: string
  version: string
  private?: boolean
  exports: Record<string, string | { import: { types: string; default: string } }>
}

/** The publishable packages: every package under packages/ not marked private. */
const packages = readdirSync(join(root, 'packages'))
  .map((dir) => ({
    dir: join(root, 'packages', dir),
    manifest: JSON.parse(
      readFileSync(join(root, 'packages', dir, 'package.json'), 'utf8'),
    ) as Manifest,
  }))
  .filter((p) => !p.manifest.private)

/**
 * The environment of the commands: this one without what would let a command see the
 * workspace's packages (pnpm's launchers set NODE_PATH to its store) or change how Node runs.
 */
const env = { ...process.env }
delete env.NODE_PATH
delete env.NODE_OPTIONS

/** A command's stdout and stderr; on failure an error with both. */
function sh(cmd: string, args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`${cmd} ${args.join(' ')} failed (${err.message})\n${stderr}\n${stdout}`))
      } else {
        resolve({ stdout, stderr })
      }
    })
  })
}

/** The version of `name` the workspace installs for the package in `from`. */
function workspaceVersion(name: string, from: string): string {
  const manifest = createRequire(join(from, 'package.json')).resolve(`${name}/package.json`)
  return (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version
}

const tmp = mkdtempSync(join(tmpdir(), 'tollgate-pack-'))
const tarballDir = join(tmp, 'tarballs')
const app = join(tmp, 'app')
/** package name → its tarball. */
const tarballs = new Map<string, string>()
/** Every entry: `@tollgate/core`, `@tollgate/core/engine`, … */
const entries: string[] = []

beforeAll(async () => {
  mkdirSync(tarballDir)
  mkdirSync(app)
  // One pnpm process packs them all (the `workspace:` ranges become the packages' versions).
  await sh(
    'corepack',
    [
      'pnpm',
      '--recursive',
      ...packages.flatMap((p) => ['--filter', p.manifest.name]),
      'pack',
      '--pack-destination',
      tarballDir,
    ],
    root,
  )
  for (const { manifest } of packages) {
    // pnpm's name for a tarball: @scope/name@version → scope-name-version.tgz
    const file = join(
      tarballDir,
      `${manifest.name.slice(1).replace('/', '-')}-${manifest.version}.tgz`,
    )
    expect(existsSync(file), `${manifest.name}: ${file}`).toBe(true)
    tarballs.set(manifest.name, file)
  }

  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'tollgate-consumer', version: '0.0.0', private: true }),
  )
  // The type packages a TypeScript app of these frameworks has, at the workspace's versions.
  const types = [
    `@types/node@${workspaceVersion('@types/node', root)}`,
    `@types/express@${workspaceVersion('@types/express', join(root, 'packages/express'))}`,
    `@types/koa@${workspaceVersion('@types/koa', join(root, 'packages/koa'))}`,
  ]
  // Peers (express, koa, @trpc/server, vitest) come with them, as npm installs peers.
  await sh(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--prefer-offline',
      '--ignore-scripts',
      '--loglevel=error',
      ...tarballs.values(),
      ...types,
    ],
    app,
  )

  for (const { manifest } of packages) {
    const installed = join(app, 'node_modules', manifest.name)
    for (const [subpath, target] of Object.entries(manifest.exports)) {
      if (typeof target === 'string') continue // ./package.json
      const specifier = manifest.name + subpath.slice(1)
      if (!existsSync(join(installed, target.import.default))) {
        throw new Error(`${specifier}: ${target.import.default} is not in the tarball`)
      }
      entries.push(specifier)
    }
  }
}, 300_000)

afterAll(() => rm(tmp, { recursive: true, force: true }), 60_000)

describe('the packed packages, installed by npm', () => {
  it('every entry loads with require() and with import, as one module instance', async () => {
    writeFileSync(
      join(app, 'load.mjs'),
      `import { createRequire } from 'node:module'
const require = createRequire(import.meta.url)
const out = {}
for (const spec of ${JSON.stringify(entries)}) {
  const imported = await import(spec)
  const required = require(spec)
  out[spec] = { same: imported === required, names: Object.keys(imported).length }
}
console.log(JSON.stringify(out))
`,
    )
    // A CommonJS program of its own: require() only, no ESM loader started first.
    writeFileSync(
      join(app, 'load.cjs'),
      `const out = {}
for (const spec of ${JSON.stringify(entries)}) out[spec] = Object.keys(require(spec)).length
console.log(JSON.stringify(out))
`,
    )
    const esm = await sh(process.execPath, ['load.mjs'], app)
    const cjs = await sh(process.execPath, ['load.cjs'], app)
    const loaded = JSON.parse(esm.stdout) as Record<string, { same: boolean; names: number }>
    const required = JSON.parse(cjs.stdout) as Record<string, number>
    expect(Object.keys(loaded)).toEqual(entries)
    for (const spec of entries) {
      // require() hands back the ES module itself: no second copy of a package's state.
      expect(loaded[spec], spec).toEqual({ same: true, names: expect.any(Number) })
      expect(loaded[spec]!.names, spec).toBeGreaterThan(0)
      expect(required[spec], spec).toBe(loaded[spec]!.names)
    }
    // Installed packages load without Node's experimental-feature warnings.
    expect(esm.stderr + cjs.stderr).toBe('')
  }, 60_000)

  it('the tollgate command runs from node_modules/.bin', async () => {
    const { stdout } = await sh(join(app, 'node_modules/.bin/tollgate'), ['--version'], app)
    const cli = packages.find((p) => p.manifest.name === '@tollgate/cli')!
    expect(stdout.trim()).toBe(cli.manifest.version)
  }, 30_000)

  it('a missing optional peer fails at construction, naming the package to install', async () => {
    // A folder with @tollgate/postgres and @tollgate/core only: no pg, no PGlite.
    const bare = join(tmp, 'bare')
    mkdirSync(join(bare, 'node_modules/@tollgate'), { recursive: true })
    cpSync(
      join(app, 'node_modules/@tollgate/postgres'),
      join(bare, 'node_modules/@tollgate/postgres'),
      { recursive: true },
    )
    symlinkSync(join(app, 'node_modules/@tollgate/core'), join(bare, 'node_modules/@tollgate/core'))
    const script = (load: string) => `${load}
const out = []
for (const make of [() => postgresStore({ connectionString: 'postgres://127.0.0.1/x' }), () => pgliteStore()]) {
  try { make(); out.push('created') } catch (err) { out.push({ code: err.code, status: err.status, field: err.field, message: err.message }) }
}
// Exit once written: a PGlite store, once created, starts its database in the background.
process.stdout.write(JSON.stringify(out), () => process.exit(0))`
    writeFileSync(
      join(bare, 'peers.mjs'),
      script(`import { pgliteStore, postgresStore } from '@tollgate/postgres'`),
    )
    writeFileSync(
      join(bare, 'peers.cjs'),
      script(`const { pgliteStore, postgresStore } = require('@tollgate/postgres')`),
    )
    const expected = [
      {
        code: 'invalid_input',
        status: 400,
        field: 'pg',
        message: "pg: postgresStore needs the 'pg' package: npm install pg",
      },
      {
        code: 'invalid_input',
        status: 400,
        field: '@electric-sql/pglite',
        message:
          "@electric-sql/pglite: pgliteStore needs the '@electric-sql/pglite' package: npm install @electric-sql/pglite",
      },
    ]
    for (const file of ['peers.mjs', 'peers.cjs']) {
      const { stdout } = await sh(process.execPath, [file], bare)
      expect(JSON.parse(stdout), file).toEqual(expected)
    }
    // With the peers installed (the app folder has both, through @tollgate/cli), both build.
    writeFileSync(
      join(app, 'peers.mjs'),
      script(`import { pgliteStore, postgresStore } from '@tollgate/postgres'`),
    )
    const { stdout } = await sh(process.execPath, ['peers.mjs'], app)
    expect(JSON.parse(stdout)).toEqual(['created', 'created'])
  }, 30_000)
})

/**
 * A consumer that names every entry and proves each is typed (an entry that resolved to `any`
 * fails), then types a few calls across packages.
 */
function consumer(style: 'require' | 'import'): string {
  const lines = entries.map((spec, i) =>
    style === 'require' ? `import e${i} = require('${spec}')` : `import * as e${i} from '${spec}'`,
  )
  const core = entries.indexOf('@tollgate/core')
  const postgres = entries.indexOf('@tollgate/postgres')
  return `${lines.join('\n')}

type Typed<T> = 0 extends 1 & T ? never : true
export const typed: [${entries.map((_, i) => `Typed<typeof e${i}>`).join(', ')}] = [${entries.map(() => 'true').join(', ')}]

// A store of one package is the Store of the other: both resolve to one declaration.
const store: e${core}.Store = e${postgres}.pgliteStore()
const meter: e${core}.Meter = e${core}.createMeter({ store })
export async function spend(account: string): Promise<number> {
  const hold = await meter.reserve(account, 5)
  const { charged } = await hold.commit(3)
  const balance = await meter.balance(account)
  return charged + balance.available
}
export function wrong(): void {
  // @ts-expect-error amounts are numbers
  void meter.grant('a', 'ten')
}
`
}

/**
 * Type-checks `file` under `options` with the workspace's TypeScript. Third-party declarations
 * are not ours to check (\`skipLibCheck\`, as apps set it); ours are checked by use above and
 * by attw below.
 */
async function typecheck(name: string, file: string, options: Record<string, unknown>) {
  const tsc = require.resolve('typescript/bin/tsc')
  writeFileSync(
    join(app, `tsconfig.${name}.json`),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: ['node'],
        target: 'ES2022',
        ...options,
      },
      files: [file],
    }),
  )
  await sh(process.execPath, [tsc, '-p', `tsconfig.${name}.json`, '--pretty', 'false'], app)
}

// A program is one app: CommonJS or ESM. (One program holding both formats' declarations of an
// adapter would meet its global augmentation twice; see docs/decisions.md, "Packages".)
describe.concurrent('a TypeScript consumer type-checks (strict)', () => {
  it('module node16, a CommonJS .cts with import x = require()', async () => {
    writeFileSync(join(app, 'consumer.cts'), consumer('require'))
    await typecheck('node16-cjs', 'consumer.cts', { module: 'node16', moduleResolution: 'node16' })
  }, 90_000)

  it('module node16, an ESM .mts', async () => {
    writeFileSync(join(app, 'consumer.mts'), consumer('import'))
    await typecheck('node16-esm', 'consumer.mts', { module: 'node16', moduleResolution: 'node16' })
  }, 90_000)

  it('moduleResolution bundler', async () => {
    writeFileSync(join(app, 'consumer.ts'), consumer('import'))
    await typecheck('bundler', 'consumer.ts', { module: 'esnext', moduleResolution: 'bundler' })
  }, 90_000)
})

describe('package checkers report no problem', () => {
  it('@arethetypeswrong/cli, every package, every resolution mode (strict profile)', async () => {
    const manifest = require.resolve('@arethetypeswrong/cli/package.json')
    const { bin } = JSON.parse(readFileSync(manifest, 'utf8')) as { bin: { attw: string } }
    const attw = join(manifest, '..', bin.attw)
    const check = async ([name, file]: [string, string]) => {
      const args = [attw, file, '--format', 'table-flipped', '--no-emoji', '--no-color']
      // attw exits non-zero on any problem; sh() then fails with attw's table.
      const { stdout } = await sh(process.execPath, args, tmp)
      return `${name}: ${stdout.includes('No problems found') ? 'no problems' : stdout}`
    }
    // Two at a time: each attw loads TypeScript.
    const queue = [...tarballs]
    const reports: string[] = []
    await Promise.all(
      [0, 1].map(async () => {
        for (let next = queue.shift(); next; next = queue.shift()) reports.push(await check(next))
      }),
    )
    expect(reports.sort()).toEqual([...tarballs.keys()].sort().map((n) => `${n}: no problems`))
    // A limit, not a speed check: about 8 s a package on a quiet machine, one more package each
    // time the workspace grows.
  }, 300_000)

  it('publint, every package, suggestions included', async () => {
    const found: string[] = []
    for (const [name, file] of tarballs) {
      const buffer = readFileSync(file)
      const tarball = buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength)
      const { messages, pkg } = await publint({
        pack: { tarball },
        level: 'suggestion',
        strict: true,
      })
      for (const m of messages) {
        found.push(`${name}: ${m.type} ${m.code}: ${formatMessage(m, pkg)}`)
      }
    }
    expect(found).toEqual([])
  }, 60_000)
})
