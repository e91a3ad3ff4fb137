/**
 * The OpenAPI document is generated from the zod schemas; this proves it is usable: valid 3.1
 * listing every route, and a client generated from it (openapi-typescript + openapi-fetch)
 * typechecks under strict TypeScript and round-trips against the live server.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import openapiTS, { astToString } from 'openapi-typescript'
import ts from 'typescript'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startServer, type TestServer } from './test-support.js'

interface OpenApiDoc {
  openapi: string
  servers?: { url: string }[]
  paths: Record<
    string,
    Record<string, { operationId?: string; responses?: Record<string, unknown> }>
  >
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> }
}

const ROUTES: [string, string][] = [
  ['post', '/v1/accounts/{account}/grants'],
  ['post', '/v1/accounts/{account}/debits'],
  ['post', '/v1/accounts/{account}/adjustments'],
  ['post', '/v1/accounts/{account}/holds'],
  ['post', '/v1/holds/{id}/commit'],
  ['post', '/v1/holds/{id}/release'],
  ['post', '/v1/holds/{id}/extend'],
  ['get', '/v1/accounts/{account}/balance'],
  ['get', '/v1/accounts'],
  ['get', '/v1/accounts/{account}/ledger'],
  ['get', '/v1/accounts/{account}/usage'],
  ['get', '/v1/usage'],
  ['put', '/v1/accounts/{account}/settings'],
  ['put', '/v1/accounts/{account}/cycle'],
  ['delete', '/v1/accounts/{account}/cycle'],
  ['post', '/v1/codes'],
  ['post', '/v1/accounts/{account}/redemptions'],
  ['post', '/v1/keys'],
  ['get', '/v1/keys'],
  ['delete', '/v1/keys/{id}'],
  ['post', '/v1/store/execute'],
  ['post', '/v1/store/ledger'],
  ['post', '/v1/store/usage'],
  ['post', '/v1/store/accounts'],
  ['post', '/v1/store/codes'],
  ['post', '/v1/store/due'],
  ['post', '/v1/store/prune'],
  ['get', '/healthz'],
  ['get', '/readyz'],
]

let t: TestServer
let doc: OpenApiDoc
// Inside the package, so that `openapi-fetch` resolves from the generated module.
const dir = join(fileURLToPath(new URL('..', import.meta.url)), `.openapi-test-${process.pid}`)

beforeAll(async () => {
  t = await startServer()
  const res = await t.call<OpenApiDoc>('GET', '/openapi.json', { key: null })
  expect(res.status).toBe(200)
  doc = res.body
})
afterAll(async () => {
  await t.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('/openapi.json', () => {
  it('is OpenAPI 3.1 and lists every route', () => {
    expect(doc.openapi).toBe('3.1.0')
    for (const [method, path] of ROUTES) {
      expect(doc.paths[path]?.[method], `${method.toUpperCase()} ${path}`).toBeDefined()
    }
    expect(doc.components.securitySchemes.apiKey).toMatchObject({ scheme: 'bearer' })
    const hold = doc.paths['/v1/accounts/{account}/holds']!.post!
    expect(hold.responses?.['402']).toMatchObject({
      content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
    })
  })

  it('gives every operation an operationId: camelCase and unique', () => {
    const seen = new Map<string, string>()
    const missing: string[] = []
    const badlyNamed: string[] = []
    const shared: string[] = []
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        const where = `${method.toUpperCase()} ${path}`
        const id = operation.operationId
        if (id === undefined) {
          missing.push(where)
          continue
        }
        if (!/^[a-z][A-Za-z0-9]*$/.test(id)) badlyNamed.push(`${where}: ${id}`)
        const first = seen.get(id)
        if (first !== undefined) shared.push(`${id}: ${first} and ${where}`)
        else seen.set(id, where)
      }
    }
    expect({ missing, badlyNamed, shared }).toEqual({ missing: [], badlyNamed: [], shared: [] })
    // Walked every route, not an empty document.
    expect(seen.size).toBeGreaterThanOrEqual(ROUTES.length)
    expect(doc.paths['/v1/accounts/{account}/grants']!.post!.operationId).toBe('grantCredits')
  })

  it("names this server in `servers`: the request's host, else the listening address", async () => {
    expect(doc.servers).toEqual([{ url: t.url }])
    const proxied = await t.call<OpenApiDoc>('GET', '/openapi.json', {
      key: null,
      headers: { host: 'credits.example.com:8443' },
    })
    expect(proxied.body.servers).toEqual([{ url: 'http://credits.example.com:8443' }])
    // A Host that is no host name falls back to where the server listens.
    const odd = await t.call<OpenApiDoc>('GET', '/openapi.json', {
      key: null,
      headers: { host: 'evil.example/<script>' },
    })
    expect(odd.body.servers).toEqual([{ url: t.url }])
  })

  it('documents the Bearer key scheme and marks /v1 operations as needing it', () => {
    expect(doc.components.securitySchemes.apiKey).toMatchObject({
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'tg_sk_<id>_<secret>',
    })
    const balance = doc.paths['/v1/accounts/{account}/balance']!.get as { security?: unknown }
    expect(balance.security).toEqual([{ apiKey: [] }])
  })

  it('generates a client that typechecks strictly and round-trips grant → hold → commit', async () => {
    // openapiTS validates the document (redocly) while it converts it.
    const types = astToString(await openapiTS(doc as never))
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'schema.ts'), types)
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }))
    writeFileSync(
      join(dir, 'client.ts'),
      `import createClient from 'openapi-fetch'
import type { paths } from './schema.js'

export async function roundTrip(baseUrl: string, apiKey: string) {
  const client = createClient<paths>({ baseUrl, headers: { authorization: \`Bearer \${apiKey}\` } })
  const account = 'typed-client'
  const grant = await client.POST('/v1/accounts/{account}/grants', {
    params: { path: { account } },
    body: { amount: 100, category: 'promotional' },
  })
  if (!grant.data) throw new Error('grant failed')
  const granted: number = grant.data.amount
  const hold = await client.POST('/v1/accounts/{account}/holds', {
    params: { path: { account }, header: { 'idempotency-key': 'typed-hold-1' } },
    body: { amount: 10, ttlMs: 60_000 },
  })
  if (!hold.data) throw new Error('hold failed')
  const holdId: string = hold.data.id
  const commit = await client.POST('/v1/holds/{id}/commit', {
    params: { path: { id: holdId } },
    body: { actual: 7 },
  })
  if (!commit.data) throw new Error('commit failed')
  const balance = await client.GET('/v1/accounts/{account}/balance', { params: { path: { account } } })
  const ledger = await client.GET('/v1/accounts/{account}/ledger', {
    params: { path: { account }, query: { limit: 10, types: 'commit' } },
  })
  const refused = await client.POST('/v1/accounts/{account}/debits', {
    params: { path: { account } },
    body: { amount: 1_000_000 },
  })
  const code: string | undefined = refused.error?.code
  return {
    granted,
    held: hold.data.amount,
    charged: commit.data.charged,
    available: balance.data?.available,
    ledgerTypes: ledger.data?.entries.map((e) => e.type),
    refusedStatus: refused.response.status,
    code,
  }
}
`,
    )
    const program = ts.createProgram([join(dir, 'client.ts')], {
      strict: true,
      noUncheckedIndexedAccess: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: ['lib.es2023.d.ts', 'lib.dom.d.ts'],
      types: [],
      noEmit: true,
      skipLibCheck: true,
    })
    const diagnostics = ts
      .getPreEmitDiagnostics(program)
      .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))
    expect(diagnostics).toEqual([])

    for (const file of ['schema', 'client']) {
      const source = ts.transpileModule(`${ts.sys.readFile(join(dir, `${file}.ts`))}`, {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      })
      writeFileSync(join(dir, `${file}.js`), source.outputText)
    }
    const mod = (await import(pathToFileURL(join(dir, 'client.js')).href)) as {
      roundTrip(url: string, key: string): Promise<Record<string, unknown>>
    }
    const result = await mod.roundTrip(t.url, t.adminKey)
    expect(result).toEqual({
      granted: 100,
      held: 10,
      charged: 7,
      available: 93,
      ledgerTypes: ['commit'],
      refusedStatus: 402,
      code: 'insufficient_credits',
    })
  }, 30_000)
})

describe('/docs', () => {
  it('serves the API reference without a key, every asset from this server', async () => {
    const page = await request(`${t.url}/docs`)
    expect(page.statusCode).toBe(200)
    expect(page.headers['content-type']).toMatch(/^text\/html/)
    const html = await page.body.text()
    expect(html).toContain('swagger-ui')
    // Everything the page loads is a path on this server: nothing from a CDN, so it renders
    // offline.
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)
    expect(refs.length).toBeGreaterThanOrEqual(4)
    for (const ref of refs) {
      expect(ref, ref).not.toMatch(/^(?:[a-z]+:)?\/\//i)
      const asset = await request(new URL(ref, `${t.url}/docs`).href)
      const body = await asset.body.text()
      expect(asset.statusCode, ref).toBe(200)
      expect(body.length, ref).toBeGreaterThan(0)
    }
    const init = await request(`${t.url}/docs/static/swagger-initializer.js`)
    const script = await init.body.text()
    expect(init.statusCode).toBe(200)
    // The UI reads the document from ./json and asks no online validator.
    expect(script).toContain("resolveUrl('./json')")
    expect(script).toContain('validatorUrl: null')

    const json = await request(`${t.url}/docs/json`)
    const served = (await json.body.json()) as OpenApiDoc
    expect(served.servers).toEqual([{ url: t.url }])
    expect(served.paths).toEqual(doc.paths)
  })

  it('is not itself in the OpenAPI document', () => {
    expect(Object.keys(doc.paths).filter((p) => p.startsWith('/docs'))).toEqual([])
  })
})
