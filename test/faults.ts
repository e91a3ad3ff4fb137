/**
 * What the fault tests share: a REST client that times every request, percentiles, a TCP proxy
 * that can freeze the way to the database, and the check that the ledger holds exactly the
 * operations whose clients were told they succeeded.
 */
import { connect, createServer, type Server, type Socket } from 'node:net'
import type { Meter } from '@tollgate/core'
import { Pool } from 'undici'
import { expect } from 'vitest'
import { ledgerOf } from './processes.js'

/** One answered request. */
export interface Sample {
  tenant: string
  account: string
  /** The request's Idempotency-Key: how its operation is found in the ledger. */
  key: string
  status: number
  code: string | undefined
  retryAfter: string | undefined
  /** From sending to the whole answer, in ms. */
  ms: number
  /** When it was sent, in ms since the load started. */
  at: number
}

/** REST debits over keep-alive connections, each timed and recorded. */
export class DebitClient {
  readonly samples: Sample[] = []
  readonly #pool: Pool
  readonly #key: string
  readonly #tenant: string
  readonly #origin: number
  readonly #headers: Record<string, string>

  constructor(
    url: string,
    apiKey: string,
    tenant: string,
    origin: number,
    headers: Record<string, string> = {},
  ) {
    this.#pool = new Pool(url, { connections: 16 })
    this.#key = apiKey
    this.#tenant = tenant
    this.#origin = origin
    this.#headers = headers
  }

  /** Debits 1 credit under `key`; a failure to connect is recorded as status 0. */
  async debit(account: string, key: string): Promise<Sample> {
    const at = performance.now()
    let status = 0
    let code: string | undefined
    let retryAfter: string | undefined
    try {
      const res = await this.#pool.request({
        path: `/v1/accounts/${encodeURIComponent(account)}/debits`,
        method: 'POST',
        headers: {
          authorization: `Bearer ${this.#key}`,
          'content-type': 'application/json',
          'idempotency-key': key,
          ...this.#headers,
        },
        body: JSON.stringify({ amount: 1 }),
        headersTimeout: 60_000,
        bodyTimeout: 60_000,
      })
      status = res.statusCode
      const text = await res.body.text()
      const header = res.headers['retry-after']
      retryAfter = typeof header === 'string' ? header : undefined
      if (status >= 400) {
        try {
          code = (JSON.parse(text) as { code?: string }).code
        } catch {
          code = 'not-json'
        }
      }
    } catch (err) {
      code = (err as { code?: string }).code ?? 'network'
    }
    const sample: Sample = {
      tenant: this.#tenant,
      account,
      key,
      status,
      code,
      retryAfter,
      ms: performance.now() - at,
      at: at - this.#origin,
    }
    this.samples.push(sample)
    return sample
  }

  close(): Promise<void> {
    return this.#pool.close()
  }
}

/** Runs `loops` concurrent loops of debits over `accounts` until `until()` says stop. */
export async function debitLoops(
  client: DebitClient,
  accounts: string[],
  loops: number,
  tag: string,
  until: () => boolean,
): Promise<void> {
  let n = 0
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (!until()) {
        const i = n++
        await client.debit(accounts[i % accounts.length]!, `${tag}-${i}`)
      }
    }),
  )
}

/** The `p`-th percentile (0–100) of `values`, nearest rank. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[rank - 1]!
}

/** `{ n, p50, p95, max }` of some latencies, rounded, for the test's log. */
export function summary(ms: number[]): { n: number; p50: number; p95: number; max: number } {
  return {
    n: ms.length,
    p50: Math.round(percentile(ms, 50)),
    p95: Math.round(percentile(ms, 95)),
    max: Math.round(Math.max(...ms)),
  }
}

/**
 * A TCP proxy in front of the database that can freeze: paused, it forwards nothing either way
 * (what arrives waits in the proxy), as a database that stopped answering, or a network that
 * stopped carrying, would look to the server. A side that closes takes its peer with it, what
 * waited included.
 */
export async function freezableProxy(
  targetPort: number,
): Promise<{ port: number; pause(): void; resume(): void; close(): Promise<void> }> {
  let paused = false
  const links = new Set<{ flush(): void; end(): void }>()
  const proxy: Server = createServer((client: Socket) => {
    const upstream = connect(targetPort, '127.0.0.1')
    const held: [Socket, Buffer][] = []
    const end = () => {
      held.length = 0
      client.destroy()
      upstream.destroy()
      links.delete(link)
    }
    const link = {
      flush() {
        for (const [to, chunk] of held.splice(0)) to.write(chunk)
      },
      end,
    }
    links.add(link)
    const forward = (to: Socket) => (chunk: Buffer) => {
      if (paused) held.push([to, chunk])
      else to.write(chunk)
    }
    client.on('data', forward(upstream))
    upstream.on('data', forward(client))
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
  })
  proxy.listen(0, '127.0.0.1')
  await new Promise((resolve) => proxy.once('listening', resolve))
  return {
    port: (proxy.address() as { port: number }).port,
    pause() {
      paused = true
    },
    resume() {
      paused = false
      for (const link of links) link.flush()
    },
    close: () =>
      new Promise((resolve) => {
        for (const link of links) link.end()
        proxy.close(() => resolve())
      }),
  }
}

/**
 * The ledger holds exactly the debits whose client got a 200, each once, and none whose client
 * got an error: nothing lost, nothing applied twice, nothing applied after its client was told
 * it failed. Returns how many debits the ledgers hold.
 */
export async function expectLedgerMatchesAnswers(meter: Meter, samples: Sample[]): Promise<number> {
  const byAccount = new Map<string, Sample[]>()
  for (const s of samples) {
    let list = byAccount.get(s.account)
    if (!list) {
      list = []
      byAccount.set(s.account, list)
    }
    list.push(s)
  }
  let debits = 0
  for (const [account, list] of byAccount) {
    const entries = (await ledgerOf(meter, account)).filter((e) => e.type === 'debit')
    const applied = entries.map((e) => e.idempotencyKey)
    expect(new Set(applied).size, `no debit applied twice on ${account}`).toBe(applied.length)
    const ok = list.filter((s) => s.status === 200).map((s) => s.key)
    expect(new Set(applied), `the debits of ${account} are those answered 200`).toEqual(new Set(ok))
    debits += entries.length
  }
  return debits
}
