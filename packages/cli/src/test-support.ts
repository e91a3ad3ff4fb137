/**
 * Test helpers: a real server on a free port, and the CLI run in process (buffers for stdout
 * and stderr) or as the built binary in a child process.
 */
import { spawn } from 'node:child_process'
import { memoryStore } from '@tollgate/core'
import { createServer } from '@tollgate/server'
import { createClient } from './client.js'
import type { OutputStream } from './io.js'
import { CLI_BIN } from './paths.js'
import { runCli } from './program.js'

/** What one CLI run left behind. */
export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

/** A stream that remembers what was written. */
export function buffer(isTTY = false): OutputStream & { text: () => string } {
  let text = ''
  return {
    isTTY,
    write(chunk: string) {
      text += chunk
      return true
    },
    text: () => text,
  }
}

/** Runs the CLI in process with `env` as its whole environment. */
export async function runIn(
  args: readonly string[],
  env: Record<string, string | undefined> = {},
): Promise<RunResult> {
  const stdout = buffer()
  const stderr = buffer()
  const code = await runCli(args, { stdout, stderr, env })
  return { code, stdout: stdout.text(), stderr: stderr.text() }
}

/** Runs `node dist/bin.js …` and waits for it to exit. */
export function runBin(
  args: readonly string[],
  env: Record<string, string | undefined> = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_BIN, ...args], {
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d
    })
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d
    })
    child.once('error', reject)
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}

/** A server on the memory store with its admin key and one key of tenant `acme`. */
export async function startTestServer() {
  const server = createServer({ store: memoryStore(), logger: false, sweepIntervalMs: 0 })
  const { url, adminKey } = await server.listen({ port: 0 })
  if (!adminKey) throw new Error('a fresh server returns its admin key')
  const admin = createClient({ url, apiKey: adminKey })
  const { key: tenantKey } = await admin.createKey({ tenant: 'acme', name: 'test' })
  await admin.close()
  return {
    url,
    adminKey,
    tenantKey,
    /** The environment a tenant-key CLI run gets. */
    env: { TOLLGATE_URL: url, TOLLGATE_API_KEY: tenantKey },
    adminEnv: { TOLLGATE_URL: url, TOLLGATE_API_KEY: adminKey },
    close: () => server.close(),
  }
}
