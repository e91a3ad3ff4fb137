/**
 * A webhook receiver for the cross-process tests: a node:http server on 127.0.0.1 that verifies
 * every message with the `standardwebhooks` package, records what it accepted, and notes any
 * message that arrives while another request with the same `webhook-id` is still open (a
 * delivery attempted twice at once).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Webhook } from 'standardwebhooks'

export interface Received {
  id: string
  type: string
  account: string
  data: Record<string, unknown>
}

export interface Receiver {
  url: string
  secret: string
  received: Received[]
  /** Requests seen, answered or not. */
  requests: number
  rejected: number
  /** `webhook-id`s that arrived while a request with the same id was open. */
  concurrent: string[]
  /** Decides how a request is answered; the default answers 204 at once. */
  handle: (message: Received, response: ServerResponse) => Promise<void> | void
  until(predicate: (received: Received[]) => boolean, timeoutMs: number): Promise<void>
  /** Closes the port (connections refused) until {@link Receiver.up}. */
  down(): Promise<void>
  /** Listens on the same port again. */
  up(): Promise<void>
  close(): Promise<void>
}

export async function startReceiver(): Promise<Receiver> {
  const open = new Set<string>()
  const r: Receiver = {
    url: '',
    secret: '',
    received: [],
    requests: 0,
    rejected: 0,
    concurrent: [],
    handle: (_message, response) => {
      response.statusCode = 204
      response.end()
    },
    async until(predicate, timeoutMs) {
      const end = Date.now() + timeoutMs
      while (!predicate(r.received)) {
        if (Date.now() > end) {
          throw new Error(
            `receiver: not done after ${timeoutMs} ms (${r.received.length} received)`,
          )
        }
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    },
    async down() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
    async up() {
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
    },
    async close() {
      if (server.listening) await r.down()
    },
  }
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    r.requests++
    const chunks: Buffer[] = []
    request.on('data', (c: Buffer) => chunks.push(c))
    request.on('end', () => {
      const id = String(request.headers['webhook-id'])
      let message: Received
      try {
        const payload = new Webhook(r.secret).verify(
          Buffer.concat(chunks).toString(),
          request.headers as Record<string, string>,
        ) as { type: string; data: Record<string, unknown> & { account: string } }
        message = { id, type: payload.type, account: payload.data.account, data: payload.data }
      } catch {
        r.rejected++
        response.statusCode = 400
        response.end()
        return
      }
      if (open.has(id)) r.concurrent.push(id)
      open.add(id)
      const done = () => open.delete(id)
      response.on('close', done)
      response.on('finish', () => {
        if (response.statusCode < 300) r.received.push(message)
      })
      void Promise.resolve(r.handle(message, response)).catch(() => response.destroy())
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  r.url = `http://127.0.0.1:${port}/hook`
  return r
}
