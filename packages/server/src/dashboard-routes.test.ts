import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DASHBOARD_CSP, dashboardRoutes } from './dashboard-routes.js'

/** A server on port 0 serving the dashboard files of `dir`. */
async function serve(dir: string) {
  const app = Fastify({ logger: false }).withTypeProvider<ZodTypeProvider>()
  dashboardRoutes(app, dir)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return { app, url: `http://127.0.0.1:${port}` }
}

describe('dashboard routes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-dashboard-'))
  let built: Awaited<ReturnType<typeof serve>>
  let unbuilt: Awaited<ReturnType<typeof serve>>

  beforeAll(async () => {
    mkdirSync(join(dir, 'assets'))
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>t</title>')
    writeFileSync(join(dir, 'assets', 'index-abc123.js'), 'export {}')
    writeFileSync(join(dir, 'assets', 'index-abc123.css'), 'body{}')
    writeFileSync(join(dir, 'assets', 'notes.unknown'), 'not served')
    built = await serve(dir)
    unbuilt = await serve(join(dir, 'missing'))
  })

  afterAll(async () => {
    await built.app.close()
    await unbuilt.app.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('serves index.html at /dashboard and /dashboard/, never cached stale, under the CSP', async () => {
    for (const path of ['/dashboard', '/dashboard/']) {
      const res = await fetch(built.url + path)
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8')
      expect(res.headers.get('cache-control')).toBe('no-cache')
      expect(res.headers.get('content-security-policy')).toBe(DASHBOARD_CSP)
      expect(res.headers.get('x-content-type-options')).toBe('nosniff')
      expect(await res.text()).toContain('<title>t</title>')
    }
    expect(DASHBOARD_CSP).not.toMatch(/unsafe|\*|data:|https?:/)
  })

  it('serves hashed assets with their type, cached for a year', async () => {
    const js = await fetch(`${built.url}/dashboard/assets/index-abc123.js`)
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable')
    const css = await fetch(`${built.url}/dashboard/assets/index-abc123.css`)
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8')
  })

  it('answers anything else, traversal included, with a 404 problem', async () => {
    for (const path of [
      '/dashboard/nope.js',
      '/dashboard/assets/notes.unknown',
      '/dashboard/..%2F..%2Fpackage.json',
      '/dashboard/assets/..%2Findex.html',
    ]) {
      const res = await fetch(built.url + path)
      expect(res.status, path).toBe(404)
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/)
    }
  })

  it('says the dashboard is not built when there are no files', async () => {
    const res = await fetch(`${unbuilt.url}/dashboard`)
    expect(res.status).toBe(404)
    expect(((await res.json()) as { detail: string }).detail).toContain('not built')
  })
})
