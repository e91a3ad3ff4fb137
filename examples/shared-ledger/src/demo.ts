/**
 * `startDemo()`: the whole shared-ledger demo in one process, as `main.ts` runs it and the smoke
 * test starts it (on temporary directories and free ports):
 *
 * 1. a Tollgate server on PGlite in `dataDir`, as `tollgate serve` runs one;
 * 2. the demo tenant seeded by `seedDemo()` from `@tollgate/cli` (what `serve --demo` does);
 * 3. the Express app, whose meter reaches that server through `httpStore()` with the tenant key.
 */
import { mkdir } from 'node:fs/promises'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type DemoSeed, seedDemo } from '@tollgate/cli'
import { createMeter, httpStore, type Meter } from '@tollgate/core'
import { pgliteStore } from '@tollgate/postgres'
import { createServer } from '@tollgate/server'
import { createApp } from './app.js'

/** Options of {@link startDemo}. */
export interface DemoOptions {
  /** The Tollgate server's port; 0 picks a free one. @default 7070 */
  port?: number
  /** The app's port; 0 picks a free one. @default 3000 */
  appPort?: number
  /** @default '127.0.0.1' */
  host?: string
  /** Where PGlite keeps the ledger. @default './.tollgate' */
  dataDir?: string
}

/** A running demo. */
export interface Demo {
  /** The Tollgate server. */
  serverUrl: string
  /** The Express app. */
  appUrl: string
  /** The bootstrap admin key on the first start on `dataDir`, else null. */
  adminKey: string | null
  /** The demo tenant: its fresh key, the account and its balance. */
  seed: DemoSeed
  /** The app's meter (on `httpStore()`). */
  meter: Meter
  /** Stops the app, then the server (in-flight requests finish), then closes the ledger. */
  close(): Promise<void>
}

/**
 * Starts the server, seeds the demo tenant and starts the app.
 * @example
 * const demo = await startDemo({ port: 0, appPort: 0, dataDir: tmp })
 * await fetch(`${demo.appUrl}/balance/alice`)
 * await demo.close()
 */
export async function startDemo(options: DemoOptions = {}): Promise<Demo> {
  const host = options.host ?? '127.0.0.1'
  const dataDir = options.dataDir ?? './.tollgate'
  await mkdir(dataDir, { recursive: true })
  const store = pgliteStore({ dataDir })
  // The demo prints its own lines; the server's request log would drown them.
  const server = createServer({ store, logger: false })
  let meter: Meter | undefined
  let app: Server | undefined
  const close = async () => {
    if (app) {
      const closed = new Promise((resolve) => app?.close(resolve))
      app.closeAllConnections()
      await closed
    }
    await meter?.close()
    await server.close()
  }
  try {
    const { url: serverUrl, adminKey } = await server.listen({ port: options.port ?? 7070, host })
    const seed = await seedDemo({ store, url: serverUrl })
    meter = createMeter({ store: httpStore({ url: serverUrl, apiKey: seed.apiKey }) })
    const listening = createApp(meter).listen(options.appPort ?? 3000, host)
    app = listening
    await new Promise<void>((resolve, reject) => {
      listening.once('listening', resolve).once('error', reject)
    })
    const { port } = listening.address() as AddressInfo
    const appUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
    return { serverUrl, appUrl, adminKey, seed, meter, close }
  } catch (err) {
    // Leave nothing running (PGlite's directory especially) when a port is taken.
    await close().catch(() => {})
    throw err
  }
}
