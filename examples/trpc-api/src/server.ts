import type { Meter } from '@tollgate/core'
import { createHTTPServer } from '@trpc/server/adapters/standalone'
import { createAppRouter, createContext } from './router.js'

/** The API as a Node HTTP server (tRPC's standalone adapter); call `.listen()` on it. */
export function createServer(meter: Meter) {
  return createHTTPServer({ router: createAppRouter(meter), createContext })
}
