/**
 * The middleware's own CPU cost, in process, for profiling (not a test, and not one of the
 * suite's benchmarks): N reserve+commit pairs on the memory store through the meter, or N
 * request cycles through the Koa or Express `metered()` middleware with minimal stand-ins for
 * the framework's request and response (no sockets, no framework), so that what is counted is
 * Tollgate's own work per request. Prints the CPU time per iteration (`process.cpuUsage()`);
 * under `valgrind --tool=callgrind`, run it at two `--n` and divide the difference of the
 * instruction counts by the difference of `n` to cancel start-up.
 *
 *   tsx middleware-loop.ts [--mode pairs|koa|express|fake] [--n 200000] [--accounts 100]
 *     [--cache off]
 *
 * `fake` runs the stand-ins alone (what the koa/express figures include besides Tollgate).
 */
import { EventEmitter } from 'node:events'
import { parseArgs } from 'node:util'
import { createMeter, memoryStore } from '@tollgate/core'
import { metered as expressMetered } from '@tollgate/express'
import { metered as koaMetered } from '@tollgate/koa'

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'pairs' },
    n: { type: 'string', default: '200000' },
    accounts: { type: 'string', default: '100' },
    warmup: { type: 'string', default: '20000' },
    cache: { type: 'string', default: 'on' },
  },
})
const N = Number(values.n)
const WARMUP = Number(values.warmup)
const ACCOUNTS = Number(values.accounts)
const names = Array.from({ length: ACCOUNTS }, (_, i) => `acct_${i}`)

/** The part of Node's ServerResponse the middleware touches. */
class FakeResponse extends EventEmitter {
  headersSent = false
  writableFinished = false
  statusCode = 200
  readonly headers: Record<string, string | number> = {}
  setHeader(name: string, value: string | number): this {
    this.headers[name] = value
    return this
  }
  end(): void {
    this.writableFinished = true
    this.emit('close')
  }
}

const meter = createMeter({
  store: memoryStore(),
  ...(values.cache === 'off' ? { cache: false } : {}),
})
for (const name of names) await meter.grant(name, 2 ** 50)

const noop = async () => {}

type Step = (i: number) => Promise<unknown> | undefined

function koaStep(): Step {
  const mw = koaMetered(meter, {
    account: (ctx) => (ctx.headers['x-account'] as string | undefined) ?? '',
    cost: 1,
  })
  return async (i) => {
    const res = new FakeResponse()
    const ctx = { res, state: {}, status: 200, headers: { 'x-account': names[i % ACCOUNTS] } }
    await mw(ctx as never, noop)
    res.end()
  }
}

function expressStep(): Step {
  const mw = expressMetered(meter, {
    account: (req) => (req.headers['x-account'] as string | undefined) ?? '',
    cost: 1,
  })
  return (i) => {
    const res = new FakeResponse()
    const req = { headers: { 'x-account': names[i % ACCOUNTS] } }
    let nexted = false
    mw(req as never, res as never, () => {
      nexted = true
    })
    if (!nexted) throw new Error('not admitted at once')
    res.end()
    return undefined
  }
}

function pairStep(): Step {
  return async (i) => {
    const hold = await meter.reserve(names[i % ACCOUNTS]!, 1)
    await hold.commit()
  }
}

function fakeStep(): Step {
  return async (i) => {
    const res = new FakeResponse()
    const ctx = { res, state: {}, status: 200, headers: { 'x-account': names[i % ACCOUNTS] } }
    await noop()
    res.on('close', noop)
    ctx.state = {}
    res.end()
  }
}

const steps: Record<string, () => Step> = {
  pairs: pairStep,
  koa: koaStep,
  express: expressStep,
  fake: fakeStep,
}
const make = steps[values.mode]
if (!make) throw new Error(`unknown --mode ${values.mode}`)
const step = make()

async function run(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const p = step(i)
    if (p !== undefined) await p
    // Let settlements started by 'close' finish (they run on promises) before going on.
    if ((i & 1023) === 1023) await new Promise((r) => setImmediate(r))
  }
  await new Promise((r) => setImmediate(r))
}

await run(WARMUP)
const before = process.cpuUsage()
await run(N)
const used = process.cpuUsage(before)
const us = (used.user + used.system) / N
const b = await meter.balance(names[0]!, { fresh: true })
console.log(
  `${values.mode}: ${us.toFixed(3)} µs CPU per iteration (n=${N}, ${ACCOUNTS} accounts; held ${b.held})`,
)
await meter.close()
