/**
 * Smoke test of the demo as it runs: the server on PGlite in a temp directory, the app on a
 * free port, requests over real sockets until the credits run out.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { runCli } from '@tollgate/cli'
import type { Balance } from '@tollgate/core'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Demo, startDemo } from './demo.js'

// PGlite (WASM) takes seconds to start on a busy 2-core machine.
const SLOW = { timeout: 60_000 }

let dir = ''
let demo: Demo | undefined
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tollgate-shared-ledger-'))
  demo = await startDemo({ port: 0, appPort: 0, dataDir: path.join(dir, '.tollgate') })
}, 60_000)
afterAll(async () => {
  await demo?.close()
  await rm(dir, { recursive: true, force: true })
}, 60_000)

async function call(method: 'GET' | 'POST', url: string, body?: unknown, headers = {}) {
  const res = await request(url, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  return { status: res.statusCode, headers: res.headers, json: (await res.body.json()) as never }
}

/** 90 words: a completion of it produces 90 tokens, whatever maxTokens above that it asked for. */
const PROMPT = Array.from({ length: 90 }, (_, i) => `word${i}`).join(' ')

describe('shared-ledger demo', () => {
  it('the app meters through the server until the credits run out', SLOW, async () => {
    const d = demo!
    expect(d.seed).toMatchObject({ tenant: 'demo', account: 'alice', granted: true })
    expect(d.adminKey).toMatch(/^tg_sk_/)
    const start = await call('GET', `${d.appUrl}/balance/alice`)
    expect(start).toMatchObject({ status: 200, json: { available: 1000, held: 0 } })

    // Each completion reserves 100 and is charged the 90 words it produced.
    let ok = 0
    let refused: Awaited<ReturnType<typeof call>> | undefined
    while (ok < 20) {
      const res = await call(
        'POST',
        `${d.appUrl}/v1/completions`,
        { prompt: PROMPT, maxTokens: 100 },
        { 'x-account': 'alice' },
      )
      if (res.status !== 200) {
        refused = res
        break
      }
      expect(res.headers['x-credits-cost']).toBe('100')
      expect(res.json).toMatchObject({ tokens: 90 })
      ok++
    }
    expect(ok).toBe(11) // 11 × 90 = 990 spent
    expect(refused?.status).toBe(402)
    expect(refused?.headers['content-type']).toBe('application/problem+json')
    expect(refused?.json).toMatchObject({
      code: 'insufficient_credits',
      account: 'alice',
      required: 100,
      available: 10,
    })

    // The server's REST route agrees with the app, and so does the CLI.
    const auth = { authorization: `Bearer ${d.seed.apiKey}` }
    const rest = await call('GET', `${d.serverUrl}/v1/accounts/alice/balance`, undefined, auth)
    expect(rest.status).toBe(200)
    expect(rest.json).toMatchObject({ account: 'alice', total: 10, held: 0, available: 10 })
    const app = await call('GET', `${d.appUrl}/balance/alice`)
    expect(app.json).toMatchObject({ available: (rest.json as Balance).available })

    let out = ''
    const code = await runCli(['balance', 'alice', '--json'], {
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: () => true },
      env: { TOLLGATE_URL: d.serverUrl, TOLLGATE_API_KEY: d.seed.apiKey },
    })
    expect(code).toBe(0)
    expect(JSON.parse(out)).toMatchObject({ available: 10, total: 10 })

    const ledger = await call(
      'GET',
      `${d.serverUrl}/v1/accounts/alice/ledger?limit=100`,
      undefined,
      auth,
    )
    const types = (ledger.json as { entries: { type: string }[] }).entries.map((e) => e.type)
    expect(types.filter((t) => t === 'commit')).toHaveLength(11)
    expect(types.filter((t) => t === 'grant')).toHaveLength(1)
  })

  it('a bad request is refused before any credits are held', SLOW, async () => {
    const d = demo!
    const noAccount = await call('POST', `${d.appUrl}/v1/completions`, {
      prompt: 'x',
      maxTokens: 5,
    })
    expect(noAccount.status).toBe(400)
    const tooBig = await call(
      'POST',
      `${d.appUrl}/v1/completions`,
      { prompt: 'x', maxTokens: 100_000 },
      { 'x-account': 'alice' },
    )
    expect(tooBig.status).toBe(400)
  })

  it('a restart on the same data seeds a new key but does not grant again', SLOW, async () => {
    await demo!.close()
    demo = await startDemo({ port: 0, appPort: 0, dataDir: path.join(dir, '.tollgate') })
    expect(demo.adminKey).toBeNull()
    expect(demo.seed.granted).toBe(false)
    expect(demo.seed.balance).toMatchObject({ total: 10 })
    const res = await call('GET', `${demo.appUrl}/balance/alice`)
    expect(res.json).toMatchObject({ available: 10 })
  })
})
