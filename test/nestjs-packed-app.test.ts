/**
 * `@tollgate/nestjs` as a NestJS user gets it: an app laid out as `nest new` makes it (no
 * "type" in package.json, the starter's tsconfig, so TypeScript emits CommonJS), installed with
 * npm from the tarballs `pnpm pack` makes of @tollgate/core and @tollgate/nestjs, compiled with
 * tsc and run with node. CommonJS `require()`s the ESM packages (Node >= 20.19).
 *
 * The same app on Nest 10, 11 and 12, each with its major's starter tsconfig (10's has
 * `module: commonjs`, 11's and 12's CommonJS one `module: nodenext`); TOLLGATE_NEST_VERSIONS
 * (e.g. `11`) picks fewer. The tarballs are packed once.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'

const run = promisify(execFile)
const VERSIONS = (process.env.TOLLGATE_NEST_VERSIONS ?? '10,11,12').split(',').map((v) => v.trim())
const root = fileURLToPath(new URL('..', import.meta.url))
const fixture = join(root, 'test/fixtures/nestjs-app')
const tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc')

/** `nest new`'s tsconfig.json: Nest 10's starter emits CommonJS with `module: commonjs`. */
const TSCONFIG_NEST_10 = {
  module: 'commonjs',
  declaration: true,
  removeComments: true,
  emitDecoratorMetadata: true,
  experimentalDecorators: true,
  allowSyntheticDefaultImports: true,
  target: 'ES2021',
  sourceMap: true,
  outDir: './dist',
  baseUrl: './',
  incremental: true,
  skipLibCheck: true,
  strictNullChecks: false,
  noImplicitAny: false,
  strictBindCallApply: false,
  forceConsistentCasingInFileNames: false,
  noFallthroughCasesInSwitch: false,
}

/** Nest 11's (and Nest 12's CommonJS) starter: `module: nodenext` without "type": CommonJS. */
const TSCONFIG_NEST_11 = {
  module: 'nodenext',
  moduleResolution: 'nodenext',
  resolvePackageJsonExports: true,
  esModuleInterop: true,
  isolatedModules: true,
  declaration: true,
  removeComments: true,
  emitDecoratorMetadata: true,
  experimentalDecorators: true,
  allowSyntheticDefaultImports: true,
  target: 'ES2023',
  sourceMap: true,
  outDir: './dist',
  incremental: true,
  skipLibCheck: true,
  strictNullChecks: true,
  forceConsistentCasingInFileNames: true,
  noImplicitAny: false,
  strictBindCallApply: false,
  noFallthroughCasesInSwitch: false,
}

/** The tarballs of @tollgate/core and @tollgate/nestjs, packed once for every app. */
let packed: string
let tarballs: { core: string; nestjs: string }

beforeAll(async () => {
  packed = mkdtempSync(join(tmpdir(), 'tollgate-nest-tarballs-'))
  tarballs = { core: await pack('core', packed), nestjs: await pack('nestjs', packed) }
}, 60_000)

afterAll(() => {
  if (packed) rmSync(packed, { recursive: true, force: true })
})

/** Packs a workspace package into `dest`; returns the tarball's file name. */
async function pack(pkg: string, dest: string): Promise<string> {
  const before = new Set(readdirSync(dest))
  await run('corepack', ['pnpm', 'pack', '--pack-destination', dest], {
    cwd: join(root, 'packages', pkg),
  })
  const made = readdirSync(dest).find((f) => f.endsWith('.tgz') && !before.has(f))
  if (made === undefined) throw new Error(`pnpm pack made no tarball for ${pkg}`)
  return made
}

/** Starts `node dist/main.js` and resolves with the URL it prints once listening. */
function start(cwd: string, onChild: (child: ChildProcess) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['dist/main.js'], {
      cwd,
      env: { ...process.env, PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    onChild(child)
    let stderr = ''
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk
    })
    const timer = setTimeout(() => reject(new Error(`the app did not start: ${stderr}`)), 20_000)
    timer.unref()
    child.on('exit', (code) => reject(new Error(`the app exited with ${code}: ${stderr}`)))
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const match = /^listening (http:\/\/\S+)$/.exec(line)
      if (match) {
        clearTimeout(timer)
        resolve(match[1]!)
      }
    })
  })
}

/** Installs, compiles and starts the app on Nest `major` in a fresh folder. */
async function makeApp(major: string, onChild: (child: ChildProcess) => void) {
  const dir = mkdtempSync(join(tmpdir(), `tollgate-nest${major}-app-`))
  cpSync(join(packed, tarballs.core), join(dir, tarballs.core))
  cpSync(join(packed, tarballs.nestjs), join(dir, tarballs.nestjs))
  const nest = `^${major}.0.0`
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify(
      {
        name: 'credits-app',
        version: '0.0.1',
        private: true,
        license: 'UNLICENSED',
        scripts: { build: 'tsc -p tsconfig.json', 'start:prod': 'node dist/main' },
        dependencies: {
          '@nestjs/common': nest,
          '@nestjs/core': nest,
          '@nestjs/platform-express': nest,
          '@tollgate/core': `file:./${tarballs.core}`,
          '@tollgate/nestjs': `file:./${tarballs.nestjs}`,
          'reflect-metadata': '^0.2.2',
          rxjs: '^7.8.1',
        },
        devDependencies: { '@types/node': '^20.19.0' },
        // @tollgate/nestjs depends on @tollgate/core by version: the tarball serves it.
        overrides: { '@tollgate/core': '$@tollgate/core' },
      },
      null,
      2,
    ),
  )
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: major === '10' ? TSCONFIG_NEST_10 : TSCONFIG_NEST_11,
      include: ['src'],
    }),
  )
  cpSync(join(fixture, 'src'), join(dir, 'src'), { recursive: true })
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], {
    cwd: dir,
    timeout: 120_000,
  })
  await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: dir, timeout: 60_000 })
  return { dir, url: await start(dir, onChild) }
}

async function get(url: string, path: string, account: string) {
  const res = await request(`${url}${path}`, { headers: { 'x-account': account } })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, text }
}

async function grant(url: string, account: string, amount: number): Promise<void> {
  const res = await request(`${url}/grant/${account}/${amount}`, { method: 'POST' })
  expect(res.statusCode).toBe(201)
  await res.body.dump()
}

interface Ledger {
  total: number
  held: number
  types: string[]
}

/** The account's ledger, read through the app's free route, once its last entry is `type`. */
async function settledAs(url: string, account: string, type: string): Promise<Ledger> {
  let ledger: Ledger | undefined
  await vi.waitFor(
    async () => {
      ledger = JSON.parse((await get(url, `/ledger/${account}`, account)).text) as Ledger
      expect(ledger.types.at(-1)).toBe(type)
    },
    { timeout: 3_000, interval: 20 },
  )
  expect(ledger!.held).toBe(0)
  return ledger!
}

describe.each(VERSIONS)(
  'a "nest new" app on Nest %s, CommonJS, installed from packed tarballs',
  (major) => {
    let dir = ''
    let url = ''
    let app: ChildProcess | undefined

    beforeAll(async () => {
      ;({ dir, url } = await makeApp(major, (child) => {
        app = child
      }))
    }, 180_000)

    afterAll(() => {
      app?.kill()
      if (dir) rmSync(dir, { recursive: true, force: true })
    })

    it('was compiled to CommonJS and loads the packages with require()', () => {
      const main = readFileSync(join(dir, 'dist/app.module.js'), 'utf8')
      expect(main).toMatch(/^"use strict";/)
      expect(main).toContain('require("@tollgate/nestjs")')
      const installed = JSON.parse(
        readFileSync(join(dir, 'node_modules/@nestjs/core/package.json'), 'utf8'),
      ) as { version: string }
      expect(installed.version.split('.')[0]).toBe(major)
    })

    it('a 200 commits the actual cost the handler set', async () => {
      await grant(url, 'a', 25)
      const res = await get(url, '/work?n=4', 'a')
      expect(res.status).toBe(200)
      expect(JSON.parse(res.text)).toEqual({ reserved: 10 })
      expect(res.headers['x-credits-cost']).toBe('10')
      expect(res.headers['x-credits-remaining']).toBe('15')
      expect(await settledAs(url, 'a', 'commit')).toEqual({
        total: 21,
        held: 0,
        types: ['grant', 'hold', 'commit'],
      })
    })

    it('a thrown error releases the hold', async () => {
      await grant(url, 'b', 25)
      expect((await get(url, '/fail', 'b')).status).toBe(500)
      expect((await settledAs(url, 'b', 'release')).total).toBe(25)
    })

    it('a refusal is a 402 problem+json with both credit headers', async () => {
      await grant(url, 'c', 8)
      const res = await get(url, '/work?n=1', 'c')
      expect(res.status).toBe(402)
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
      expect(res.headers['x-credits-cost']).toBe('10')
      expect(res.headers['x-credits-remaining']).toBe('8')
      expect(JSON.parse(res.text)).toMatchObject({
        status: 402,
        code: 'insufficient_credits',
        account: 'c',
        required: 10,
        available: 8,
      })
    })

    it('an @Sse stream settles when it ends, with the actual cost it set', async () => {
      await grant(url, 'd', 25)
      const res = await get(url, '/events', 'd')
      expect(res.status).toBe(200)
      expect(res.headers['content-type']).toMatch(/^text\/event-stream/)
      expect(res.text.match(/^data: /gm)).toHaveLength(3)
      expect((await settledAs(url, 'd', 'commit')).total).toBe(22)
    })

    it.each([
      ['below', '/work?n=10'],
      ['above', '/work-above'],
    ])('@Credits written %s @Get meters the route', async (_, path) => {
      const account = `order-${path.length}`
      await grant(url, account, 25)
      const res = await get(url, path, account)
      expect(res.status).toBe(200)
      expect(res.headers['x-credits-cost']).toBe('10')
      expect((await settledAs(url, account, 'commit')).total).toBe(15)
    })
  },
)
