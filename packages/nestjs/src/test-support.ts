/**
 * Real Nest apps over real HTTP for the tests: one per test, on an ephemeral port, on either
 * platform, closed (connections included) after the test.
 */
import 'reflect-metadata'
import { type INestApplication, Module, type ModuleMetadata, type Type } from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { ExpressAdapter } from '@nestjs/platform-express'
import { FastifyAdapter } from '@nestjs/platform-fastify'
import type { Listening } from '@tollgate/conformance/testing'
import { request } from 'undici'
import { afterEach } from 'vitest'
import type { HttpRequest } from './http.js'
import { TollgateModule, type TollgateModuleOptions } from './index.js'

export type Platform = 'express' | 'fastify'
export const PLATFORMS: Platform[] = ['express', 'fastify']

const closers: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const close of closers.splice(0)) await close()
})

/** The account of a test request: its `x-account` header. */
export const byHeader = (req: HttpRequest): string => String(req.headers['x-account'] ?? '')

/** A root module importing `TollgateModule.forRoot(options)` and serving `controllers`. */
export function rootModule(
  options: TollgateModuleOptions,
  controllers: Type<unknown>[],
  extra: ModuleMetadata = {},
): Type<unknown> {
  class RootModule {}
  Module({
    ...extra,
    imports: [TollgateModule.forRoot(options), ...(extra.imports ?? [])],
    controllers,
  })(RootModule)
  return RootModule
}

/** Starts `module` on `platform` on 127.0.0.1, port 0. */
export async function start(
  platform: Platform,
  module: Type<unknown>,
  setup?: (app: INestApplication) => void,
): Promise<Listening> {
  const adapter = platform === 'express' ? new ExpressAdapter() : new FastifyAdapter()
  const app = await NestFactory.create(module, adapter, {
    logger: process.env.TOLLGATE_TEST_NEST_LOGS ? ['error', 'warn'] : false,
    // SSE and streaming tests leave connections open; close() must not wait for them.
    forceCloseConnections: true,
  })
  setup?.(app)
  await app.listen(0, '127.0.0.1')
  return { url: await app.getUrl(), close: () => app.close() }
}

/** {@link start}, closed after the test; returns the base URL. */
export async function serve(
  platform: Platform,
  module: Type<unknown>,
  setup?: (app: INestApplication) => void,
): Promise<string> {
  const app = await start(platform, module, setup)
  closers.push(app.close)
  return app.url
}

export interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  json(): unknown
}

/** One request; the body read whole. */
export async function call(
  url: string,
  {
    method = 'GET',
    account = 'u',
    headers = {},
    body,
  }: {
    method?: 'GET' | 'POST'
    account?: string
    headers?: Record<string, string>
    body?: unknown
  } = {},
): Promise<Reply> {
  const res = await request(url, {
    method,
    headers: {
      'x-account': account,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) }
}
