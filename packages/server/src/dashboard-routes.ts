/**
 * The web dashboard (`/dashboard`): static files built by Vite from `dashboard/` into
 * `dist/dashboard/` and shipped in the package. Loading the page needs no key (it holds no
 * data); every API call it makes carries the key the user typed in. See docs/dashboard.md.
 */
import { readdir, readFile } from 'node:fs/promises'
import { extname, join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NotFoundError, problemDetails } from '@tollgate/core'
import type { FastifyReply } from 'fastify'
import type { App } from './context.js'
import { sendProblem } from './problems.js'

/**
 * Where the build puts the dashboard: `<package>/dist/dashboard`. This module runs from `src/`
 * (tests) or `dist/` (the package), both one level below the package root.
 */
export const DASHBOARD_DIR = fileURLToPath(new URL('../dist/dashboard/', import.meta.url))

/** The files the dashboard may hold: a bound on what is read into memory at the first request. */
const MAX_FILES = 200
const MAX_BYTES = 16 << 20

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json',
  '.woff2': 'font/woff2',
}

/**
 * Only this origin: no inline script or style, no framing, no plugin, no foreign connection.
 * `img-src data:` is absent on purpose: the charts are inline SVG elements, not images.
 */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ')

interface Asset {
  body: Buffer
  type: string
  /** Vite names files under `assets/` by content hash: cached for a year. */
  immutable: boolean
}

/** Every file under `dir` by its `/`-separated relative path, or null when there is no build. */
async function loadAssets(dir: string): Promise<Map<string, Asset> | null> {
  let names: string[]
  try {
    names = (await readdir(dir, { recursive: true, withFileTypes: true }))
      .filter((e) => e.isFile())
      .map((e) => relative(dir, join(e.parentPath, e.name)).split(sep).join('/'))
  } catch {
    return null
  }
  if (!names.includes('index.html')) return null
  const assets = new Map<string, Asset>()
  let bytes = 0
  for (const name of names.slice(0, MAX_FILES)) {
    const type = CONTENT_TYPES[extname(name)]
    if (type === undefined) continue
    const body = await readFile(join(dir, name))
    bytes += body.length
    if (bytes > MAX_BYTES) break
    assets.set(name, { body, type, immutable: name.startsWith('assets/') })
  }
  return assets
}

/** Registers `GET /dashboard`, `/dashboard/` and `/dashboard/*`. */
export function dashboardRoutes(app: App, dir: string = DASHBOARD_DIR): void {
  /** Read once, at the first request; a failed read is tried again by the next one. */
  let loading: Promise<Map<string, Asset> | null> | null = null

  async function serve(name: string, reply: FastifyReply): Promise<FastifyReply> {
    loading ??= loadAssets(dir)
    const assets = await loading
    if (assets === null) loading = null
    const asset = assets?.get(name)
    if (asset === undefined) {
      const what = assets === null ? 'dashboard (not built: run the package build)' : 'file'
      return sendProblem(reply, problemDetails(new NotFoundError(what, `/dashboard/${name}`)))
    }
    return reply
      .header('content-type', asset.type)
      .header('cache-control', asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
      .header('content-security-policy', DASHBOARD_CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('x-frame-options', 'DENY')
      .send(asset.body)
  }

  const hide = { schema: { hide: true } }
  app.get('/dashboard', hide, (_request, reply) => serve('index.html', reply))
  app.get('/dashboard/', hide, (_request, reply) => serve('index.html', reply))
  app.get<{ Params: { '*': string } }>('/dashboard/*', hide, (request, reply) =>
    // The map's keys are the only names served: `..` or an absolute path matches none.
    serve(request.params['*'], reply),
  )
}
