/**
 * `@Metered` in both decorator modes. DESIGN section 3 is checked by the shared adapter suite,
 * run over `node:http` by a host that calls decorated methods (the way an app's handler would),
 * with the tests skipped that are about HTTP answers a method decorator does not give; the
 * tests after it cover what only method calls have: arguments and `this`, abort signals, async
 * generators, nesting, and the two decorator flavours' type checking.
 */
import 'reflect-metadata'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import {
  type AdapterSkip,
  describeAdapterConformance,
  type SuitePath,
  type SuiteReply,
} from '@tollgate/conformance'
import { deferred, downStore, listen } from '@tollgate/conformance/testing'
import {
  createMeter,
  InsufficientCreditsError,
  InvalidInputError,
  isTollgateError,
  type Meter,
  memoryStore,
  StoreUnavailableError,
} from '@tollgate/core'
import ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { currentCredits } from './credits.js'
import { createMetered, type MeteredOptions } from './metered.js'
import type { defineService } from './test-fixtures/service.js'
import type { defineSuiteRoutes, SuiteArgs } from './test-fixtures/suite-routes.js'

const FIXTURE = fileURLToPath(new URL('./test-fixtures/service.ts', import.meta.url))
const SUITE_FIXTURE = fileURLToPath(new URL('./test-fixtures/suite-routes.ts', import.meta.url))
const MODES = ['standard', 'legacy'] as const
type Mode = (typeof MODES)[number]

function compilerOptions(mode: Mode): ts.CompilerOptions {
  return {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    strict: true,
    experimentalDecorators: mode === 'legacy',
  }
}

const tmp = mkdtempSync(join(tmpdir(), 'tollgate-decorators-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

/** Compiles a fixture file with TypeScript in one decorator mode and imports it. */
async function compile<T>(fixture: string, mode: Mode): Promise<T> {
  const out = ts.transpileModule(readFileSync(fixture, 'utf8'), {
    compilerOptions: compilerOptions(mode),
    fileName: fixture,
  })
  const name = fixture.slice(fixture.lastIndexOf('/') + 1, -'.ts'.length)
  const file = join(tmp, `${name}.${mode}.mjs`)
  writeFileSync(file, out.outputText)
  return (await import(pathToFileURL(file).href)) as T
}

/** Compiles the fixture classes with TypeScript in one decorator mode and imports them. */
async function compileFixture(mode: Mode): Promise<typeof defineService> {
  return (await compile<{ defineService: typeof defineService }>(FIXTURE, mode)).defineService
}

const SKIP: AdapterSkip[] = [
  {
    reason:
      'a method decorator answers no HTTP request: it throws the Tollgate error ' +
      '(InsufficientCreditsError, InvalidInputError, StoreUnavailableError) for the host ' +
      "framework to render; the suite's status tests run through a host that answers error.status",
    tests: [
      'the 402 is problem+json with both credit headers and no Retry-After',
      'the 400 is problem+json naming the field',
      "failMode 'closed': the 503 is problem+json",
    ],
  },
  {
    reason:
      'a method decorator sets no response headers (the headers option does not apply); the ' +
      'method reads currentCredits()',
    tests: [
      'sets both credit headers on every metered response',
      'credit headers take other names, or none',
      'standardHeaders adds the RateLimit fields: the account credits as quota, available as r',
      'the 402 carries RateLimit with what was available when standardHeaders is on',
    ],
  },
]

for (const mode of MODES) {
  describeAdapterConformance({
    name: `@tollgate/decorators (${mode} decorators)`,
    skip: SKIP,
    async mount({ meter, options, routes, stream }) {
      const { defineSuiteRoutes: define } = await compile<{
        defineSuiteRoutes: typeof defineSuiteRoutes
      }>(SUITE_FIXTURE, mode)
      const Metered = createMetered(meter, {
        ...options((args: SuiteArgs) => args[1]),
        signal: (args) => args[2],
        // A method knows no HTTP status: the host says which results are failures, as an app
        // whose handler returns a status would.
        shouldCharge: (result) => ((result as SuiteReply | undefined)?.status ?? 200) < 400,
      })
      const suite = new (define(Metered, currentCredits))()
      return listen(async (req: IncomingMessage, res) => {
        const aborter = new AbortController()
        res.once('close', () => {
          if (!res.writableFinished) aborter.abort()
        })
        const view = {
          header: (name: string) => req.headers[name.toLowerCase()] as string | undefined,
        }
        try {
          if (req.url === '/stream') {
            const chunks = suite.stream(stream, view, aborter.signal)[Symbol.asyncIterator]()
            // The reserve happens on the first next(): a refusal can still be a status.
            let next = await chunks.next()
            res.writeHead(200, { 'Content-Type': 'text/plain' })
            for (; !next.done; next = await chunks.next()) res.write(next.value)
            res.end()
            return
          }
          const reply = await suite.call(routes[req.url as SuitePath], view, aborter.signal)
          res.writeHead(reply.status, { 'Content-Type': 'text/plain' }).end(reply.body)
        } catch (err) {
          if (res.headersSent) return void res.destroy()
          res.writeHead(isTollgateError(err) ? err.status : 500).end(String(err))
        }
      })
    },
  })
}

describe.each(MODES)('type checking (%s decorators)', (mode) => {
  it('accepts the fixture and rejects its misuses', () => {
    const program = ts.createProgram([FIXTURE, SUITE_FIXTURE], {
      ...compilerOptions(mode),
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      types: ['node'],
      noEmit: true,
      skipLibCheck: true,
    })
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ({
      file: d.file?.fileName,
      message: ts.flattenDiagnosticMessageText(d.messageText, '\n'),
    }))
    // The @ts-expect-error lines in the fixture fail the check when a misuse type-checks.
    expect(diagnostics).toEqual([])
    // And the decorators really were checked in this mode: the emitted code differs.
    const emitted = ts.transpileModule(readFileSync(FIXTURE, 'utf8'), {
      compilerOptions: compilerOptions(mode),
    }).outputText
    expect(emitted).toContain(mode === 'legacy' ? '__decorate(' : '__esDecorate(')
  }, 30_000)
})

describe.each(MODES)('@Metered (%s decorators)', (mode) => {
  let define: typeof defineService
  beforeAll(async () => {
    define = await compileFixture(mode)
  })

  type Shared = Partial<MeteredOptions>
  async function setup(
    options: Shared = {},
    { grant = 100, meter: given }: { grant?: number; meter?: Meter } = {},
  ) {
    const meter = given ?? createMeter({ store: memoryStore(), cache: false })
    if (!given && grant > 0) await meter.grant('u', grant)
    const started = deferred()
    const runs = { slow: 0 }
    const Metered = createMetered(meter, {
      account: (_args, self) => (self as { user: string }).user,
      ...options,
    })
    const Service = define(Metered, currentCredits, {
      started: () => {
        runs.slow++
        started.resolve()
      },
    })
    return { meter, Service, service: new Service('u'), started: started.promise, runs }
  }

  async function balanceOf(meter: Meter, account = 'u') {
    const b = await meter.balance(account, { fresh: true })
    return { total: b.total, held: b.held }
  }

  async function entryTypes(meter: Meter, account = 'u') {
    return (await meter.ledger(account)).entries.map((e) => e.type)
  }

  describe('settlement', () => {
    it('a thrown error releases the hold and reaches the caller', async () => {
      const { meter, service } = await setup()
      await expect(service.fail()).rejects.toThrow('boom')
      expect(await balanceOf(meter)).toEqual({ total: 100, held: 0 })
      expect(await entryTypes(meter)).toEqual(['release', 'hold', 'grant'])
    })

    it('an aborted signal releases the hold, though the method goes on', async () => {
      const { meter, service, started } = await setup()
      const ac = new AbortController()
      const call = service.slow(ac.signal)
      await started
      ac.abort()
      expect(await call).toBe('late')
      expect(await balanceOf(meter)).toEqual({ total: 100, held: 0 })
      expect(await entryTypes(meter)).toEqual(['release', 'hold', 'grant'])
    })

    it('a signal aborted before the call neither runs the method nor keeps a hold', async () => {
      const { meter, service, runs } = await setup()
      const ac = new AbortController()
      ac.abort()
      await expect(service.slow(ac.signal)).rejects.toMatchObject({ name: 'AbortError' })
      expect(runs.slow).toBe(0)
      await vi.waitFor(async () => expect(await balanceOf(meter)).toEqual({ total: 100, held: 0 }))
    })

    it('shouldCharge can release a resolved call', async () => {
      const { meter, service } = await setup({ shouldCharge: (result) => result !== 'ok' })
      await service.ok()
      expect(await balanceOf(meter)).toEqual({ total: 100, held: 0 })
      await service.actual(4)
      expect(await balanceOf(meter)).toEqual({ total: 96, held: 0 })
    })

    it('a shouldCharge that throws is reported and the call is charged', async () => {
      const onError = vi.fn()
      const { meter, service } = await setup({
        onError,
        shouldCharge: () => {
          throw new Error('bug')
        },
      })
      await service.ok()
      expect(onError).toHaveBeenCalledWith(
        expect.objectContaining({ message: 'bug' }),
        expect.objectContaining({ method: 'ok', args: [] }),
      )
      expect(await balanceOf(meter)).toEqual({ total: 90, held: 0 })
    })

    it('settles exactly once per call', async () => {
      const { meter, service } = await setup()
      await Promise.all([service.ok(), service.ok(), service.actual(2)])
      expect(await balanceOf(meter)).toEqual({ total: 78, held: 0 })
      const types = await entryTypes(meter)
      expect(types.filter((t) => t === 'commit')).toHaveLength(3)
      expect(types.filter((t) => t === 'hold')).toHaveLength(3)
    })
  })

  describe('credits', () => {
    it('a cost function sees the arguments', async () => {
      const { meter, service } = await setup()
      expect(await service.priced(7)).toBe(7)
      expect(await balanceOf(meter)).toEqual({ total: 93, held: 0 })
    })

    it('nested metered calls each see and settle their own credits', async () => {
      const { meter, service } = await setup()
      expect(await service.outer()).toEqual([3, 10])
      expect(await balanceOf(meter)).toEqual({ total: 87, held: 0 })
      expect(await service.plain()).toBeNull()
      expect(currentCredits()).toBeNull()
    })

    it('static methods are metered too, with their own account', async () => {
      const { meter, Service } = await setup()
      await meter.grant('Service', 5)
      expect(await Service.census()).toBe(1)
      expect(await balanceOf(meter, 'Service')).toEqual({ total: 4, held: 0 })
    })

    it('keeps the method name', async () => {
      const { Service } = await setup()
      expect(Service.prototype.ok.name).toBe('ok')
      expect(Service.prototype.stream.name).toBe('stream')
    })

    it.each([
      ['above', 'meteredAbove'],
      ['below', 'meteredBelow'],
    ] as const)('written %s a route decorator, keeps its metadata and meters', async (_, name) => {
      const { meter, Service, service } = await setup()
      const path = name === 'meteredAbove' ? '/metered-above' : '/metered-below'
      expect(Reflect.getMetadata('route:path', Service.prototype[name])).toBe(path)
      expect(await service[name]()).toBe(1)
      expect(await balanceOf(meter)).toEqual({ total: 99, held: 0 })
    })
  })

  describe('refusals', () => {
    it('throws InsufficientCreditsError with account, required and available', async () => {
      const { meter, service } = await setup({}, { grant: 30 })
      const err = await service.expensive().catch((e: unknown) => e)
      expect(err).toBeInstanceOf(InsufficientCreditsError)
      expect(err).toMatchObject({ status: 402, account: 'u', required: 100, available: 30 })
      expect(await balanceOf(meter)).toEqual({ total: 30, held: 0 })
    })

    it('onInsufficient is called with the call and may throw its own error', async () => {
      const onInsufficient = vi.fn((error: InsufficientCreditsError) => {
        if (error.available === 0) throw new Error('top up first')
      })
      const a = await setup({ onInsufficient }, { grant: 30 })
      await expect(a.service.expensive()).rejects.toBeInstanceOf(InsufficientCreditsError)
      expect(onInsufficient).toHaveBeenCalledWith(
        expect.objectContaining({ required: 100 }),
        [],
        a.service,
      )
      const b = await setup({ onInsufficient }, { grant: 0 })
      await expect(b.service.expensive()).rejects.toThrow('top up first')
    })

    it('an invalid cost from the arguments is InvalidInputError, and nothing is reserved', async () => {
      const { meter, service } = await setup()
      await expect(service.priced(-1)).rejects.toBeInstanceOf(InvalidInputError)
      expect(await entryTypes(meter)).toEqual(['grant'])
    })
  })

  describe('async generator methods', () => {
    async function drain(stream: AsyncIterable<number>, stopAfter = Number.POSITIVE_INFINITY) {
      const got: number[] = []
      for await (const n of stream) {
        got.push(n)
        if (got.length === stopAfter) break
      }
      return got
    }

    it('reserve nothing until iterated', async () => {
      const { meter, service } = await setup()
      service.stream(3, 5)
      expect(await entryTypes(meter)).toEqual(['grant'])
    })

    it('release when the consumer stops early', async () => {
      const { meter, service } = await setup()
      expect(await drain(service.stream(5, 5), 2)).toEqual([1, 2])
      expect(await balanceOf(meter)).toEqual({ total: 100, held: 0 })
      expect((await entryTypes(meter))[0]).toBe('release')
    })

    it("commit what was produced when stopped early under onAbort: 'commit'", async () => {
      const { meter, service } = await setup({ onAbort: 'commit' })
      await drain(service.stream(5, 5), 2)
      expect(await balanceOf(meter)).toEqual({ total: 80, held: 0 })
    })

    it('release when the method throws', async () => {
      const { meter, service } = await setup()
      const got: number[] = []
      await expect(
        (async () => {
          for await (const n of service.stream(5, 5, 3)) got.push(n)
        })(),
      ).rejects.toThrow('stream broke')
      expect(got).toEqual([1, 2])
      expect(await balanceOf(meter)).toEqual({ total: 100, held: 0 })
    })

    it('refuse on the first next() when the account cannot pay', async () => {
      const { meter, service } = await setup({}, { grant: 20 })
      await expect(drain(service.stream(3, 1))).rejects.toBeInstanceOf(InsufficientCreditsError)
      expect(await balanceOf(meter)).toEqual({ total: 20, held: 0 })
    })
  })

  describe('store failure', () => {
    it('closed: throws StoreUnavailableError and the method does not run', async () => {
      const { service } = await setup({}, { meter: createMeter({ store: downStore() }) })
      await expect(service.actual(1)).rejects.toBeInstanceOf(StoreUnavailableError)
    })

    it('open: the method runs unmetered and onError is called', async () => {
      const onError = vi.fn()
      const { service } = await setup(
        { failMode: 'open', onError },
        { meter: createMeter({ store: downStore() }) },
      )
      expect(await service.priced(2)).toBeUndefined()
      expect(onError).toHaveBeenCalledWith(
        expect.any(StoreUnavailableError),
        expect.objectContaining({ method: 'priced', args: [2] }),
      )
    })
  })
})

describe('createMetered options', () => {
  const meter = createMeter({ store: memoryStore() })
  const account = () => 'u'

  it.each([
    ['account missing', {}, 'account'],
    ['ttlMs too short', { account, ttlMs: 10 }, 'ttlMs'],
    ['fractional cost', { account, cost: 1.5 }, 'cost'],
    ['unknown onAbort', { account, onAbort: 'keep' }, 'onAbort'],
    ['signal not a function', { account, signal: true }, 'signal'],
  ])('%s fails at creation, naming the field', (_name, options, field) => {
    expect(() => createMetered(meter, options as never)).toThrow(InvalidInputError)
    expect(() => createMetered(meter, options as never)).toThrow(new RegExp(`^${field}`))
  })

  it('validates per-method options when the decorator is made', () => {
    const Metered = createMetered(meter, { account })
    expect(() => Metered({ cost: -1 })).toThrow(/^cost/)
  })

  it('warns that headers do not apply, and about unknown keys once', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    const Metered = createMetered(meter, { account, headers: true, costs: 2 } as never)
    Metered({ cost: 1 })
    expect(warn).toHaveBeenCalledWith(expect.stringContaining('"headers"'), 'TollgateWarning')
    expect(warn).toHaveBeenCalledWith(
      expect.stringContaining('"costs"'),
      'TollgateWarning',
      'TOLLGATE_UNKNOWN_OPTION',
    )
    expect(warn).toHaveBeenCalledTimes(2)
    warn.mockRestore()
  })

  it('refuses to decorate anything but a method', () => {
    const Metered = createMetered(meter, { account })
    const decorate = Metered() as unknown as (...args: unknown[]) => unknown
    expect(() => decorate(undefined, { kind: 'field', name: 'x' })).toThrow(/methods, not fields/)
    expect(() => decorate({}, 'x', { get: () => 1 })).toThrow(/decorates methods/)
  })
})
