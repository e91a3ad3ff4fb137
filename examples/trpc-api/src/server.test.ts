import type { AddressInfo } from 'node:net'
import { createMeter, type Meter, memoryStore } from '@tollgate/core'
import {
  createTRPCClient,
  httpBatchLink,
  httpSubscriptionLink,
  splitLink,
  TRPCClientError,
} from '@trpc/client'
import { EventSource } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AppRouter } from './router.js'
import { createServer } from './server.js'

let meter: Meter
let server: ReturnType<typeof createServer>
let url: string

beforeAll(async () => {
  meter = createMeter({ store: memoryStore(), cache: false })
  await meter.grant('demo', 100)
  server = createServer(meter)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(async () => {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
})

function client(account: string) {
  return createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === 'subscription',
        true: httpSubscriptionLink({ url, EventSource, connectionParams: { account } }),
        false: httpBatchLink({ url, headers: { 'x-account': account } }),
      }),
    ],
  })
}

function complete(
  api: ReturnType<typeof client>,
  input: { prompt: string; maxTokens: number; delayMs?: number },
  stopAfter = Number.POSITIVE_INFINITY,
) {
  const tokens: string[] = []
  return new Promise<{ tokens: string[]; error?: unknown }>((resolve) => {
    const sub = api.complete.subscribe(input, {
      onData: (token) => {
        tokens.push(token)
        if (tokens.length === stopAfter) {
          sub.unsubscribe()
          resolve({ tokens })
        }
      },
      onComplete: () => resolve({ tokens }),
      onError: (error) => resolve({ tokens, error }),
    })
  })
}

describe('trpc-api example, over HTTP', () => {
  const demo = () => client('demo')

  it('serves the balance for free', async () => {
    expect(await demo().balance.query()).toEqual({ total: 100, held: 0, available: 100 })
    expect(await demo().balance.query()).toMatchObject({ total: 100 })
  })

  it('charges 2 credits for a summary', async () => {
    const { summary } = await demo().summarize.mutate({ text: 'First sentence. Second one.' })
    expect(summary).toBe('First sentence.')
    expect(await demo().balance.query()).toMatchObject({ total: 98, held: 0 })
  })

  it('streams a completion over SSE and charges the tokens it sent', async () => {
    const { tokens, error } = await complete(demo(), { prompt: 'Hi', maxTokens: 5, delayMs: 1 })
    expect(error).toBeUndefined()
    expect(tokens).toHaveLength(5)
    expect(await demo().balance.query()).toMatchObject({ total: 93, held: 0 })
  })

  it('releases a completion the client stops half way', async () => {
    const { tokens } = await complete(demo(), { prompt: 'Hi', maxTokens: 20, delayMs: 100 }, 2)
    expect(tokens).toHaveLength(2)
    await expect.poll(async () => (await demo().balance.query()).held, { timeout: 2_000 }).toBe(0)
    expect(await demo().balance.query()).toMatchObject({ total: 93 })
  })

  it('refuses a completion the account cannot pay for with PAYMENT_REQUIRED', async () => {
    const { error } = await complete(demo(), { prompt: 'Hi', maxTokens: 500 })
    expect(error).toBeInstanceOf(TRPCClientError)
    expect((error as TRPCClientError<AppRouter>).data).toMatchObject({
      code: 'PAYMENT_REQUIRED',
      credits: { account: 'demo', required: 500, available: 93 },
    })
  })

  it('wants an account', async () => {
    await expect(client('').balance.query()).rejects.toMatchObject({
      data: { code: 'UNAUTHORIZED' },
    })
  })

  it('left a ledger that adds up', async () => {
    const { entries } = await meter.ledger('demo')
    const net = entries.reduce((sum, e) => sum + e.delta, 0)
    expect(net).toBe(93)
    expect(entries[0]?.balanceAfter).toBe(93)
  })
})
