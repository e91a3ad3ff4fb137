/**
 * Helpers for this package's tests (excluded from the build): a real standalone tRPC server on
 * port 0 with `@trpc/client` in front of it.
 */
import type { AddressInfo } from 'node:net'
import {
  createTRPCClient,
  httpBatchLink,
  httpBatchStreamLink,
  httpLink,
  httpSubscriptionLink,
  splitLink,
  type TRPCLink,
} from '@trpc/client'
import type { AnyTRPCRouter } from '@trpc/server'
import { type CreateHTTPContextOptions, createHTTPServer } from '@trpc/server/adapters/standalone'
import { EventSource } from 'undici'

/** The context of the test routers: the caller's account, from a header or SSE params. */
export interface TestContext {
  account: string | null
}

export function createContext({ req, info }: CreateHTTPContextOptions): TestContext {
  const header = req.headers['x-account']
  if (typeof header === 'string') return { account: header }
  const param = info.connectionParams?.account
  return { account: typeof param === 'string' ? param : null }
}

/** How the client sends queries and mutations. */
export type LinkKind = 'batch' | 'single' | 'stream'

/** Serves `router` with the standalone adapter on an ephemeral port. */
export async function serve<TRouter extends AnyTRPCRouter>(
  router: TRouter,
  options: { onError?: (error: unknown) => void } = {},
) {
  const server = createHTTPServer({
    router,
    createContext,
    onError: ({ error }) => options.onError?.(error),
  })
  let requests = 0
  server.on('request', () => {
    requests++
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url,
    /** HTTP requests the server received so far. */
    get requests() {
      return requests
    },
    /** A client calling as `account` (none: null): subscriptions over SSE, the rest over `link`. */
    client(account: string | null, link: LinkKind = 'batch') {
      return createTRPCClient<TRouter>({ links: links(url, account, link) as TRPCLink<TRouter>[] })
    },
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

function links(url: string, account: string | null, link: LinkKind): TRPCLink<AnyTRPCRouter>[] {
  const headers: Record<string, string> = account === null ? {} : { 'x-account': account }
  return [
    splitLink({
      condition: (op) => op.type === 'subscription',
      true: httpSubscriptionLink({
        url,
        EventSource,
        connectionParams: account === null ? {} : { account },
      }),
      false:
        link === 'batch'
          ? httpBatchLink({ url, headers })
          : link === 'single'
            ? httpLink({ url, headers })
            : httpBatchStreamLink({ url, headers }),
    }),
  ]
}
