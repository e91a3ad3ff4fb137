/** A real HTTP server for tests: adapters and the server are tested over sockets, not mocks. */
import { once } from 'node:events'
import { createServer, type RequestListener } from 'node:http'
import type { AddressInfo } from 'node:net'

/** A listening server, from {@link listen}. */
export interface Listening {
  /** `http://127.0.0.1:<port>`, no trailing slash. */
  url: string
  /** Closes the server, dropping the connections still open. */
  close: () => Promise<void>
}

/**
 * A real HTTP server for `handler` on 127.0.0.1 and an ephemeral port.
 * @example
 * const server = await listen(app) // an Express app, Koa's app.callback(), any listener
 * const res = await fetch(`${server.url}/`)
 * await server.close()
 */
export async function listen(handler: RequestListener): Promise<Listening> {
  const server = createServer(handler)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections()
      server.close()
      await once(server, 'close')
    },
  }
}
