/**
 * The NestJS app of the HTTP benchmark's server (`http-server.ts` loads this module only for
 * NestJS scenarios, so decorators, reflect-metadata and Nest itself are not loaded by the
 * others).
 */
import 'reflect-metadata'
import type { IncomingHttpHeaders, RequestListener } from 'node:http'
import {
  Controller,
  type DynamicModule,
  Get,
  Module,
  type Provider,
  type Type,
} from '@nestjs/common'
import { APP_GUARD, NestFactory, Reflector } from '@nestjs/core'
import { ExpressAdapter } from '@nestjs/platform-express'
import {
  getOptionsToken,
  getStorageToken,
  ThrottlerGuard,
  ThrottlerModule,
  type ThrottlerModuleOptions,
  type ThrottlerStorage,
} from '@nestjs/throttler'
import type { Meter } from '@tollgate/core'
import { Credits, TollgateModule } from '@tollgate/nestjs'
import express from 'express'
import type { Scenario } from './http-scenarios.js'

/** What the server shares with this module. */
export interface NestParts {
  seededMeter: (s: Scenario) => Promise<Meter>
  account: (headers: IncomingHttpHeaders) => string
  cleanups: (() => Promise<unknown> | unknown)[]
  BODY: { hello: string }
  NEVER: number
}

let parts: NestParts

/** `@nestjs/throttler`'s guard, keyed on the account header as the other limiters are. */
class AccountThrottlerGuard extends ThrottlerGuard {
  protected override async getTracker(req: Record<string, unknown>): Promise<string> {
    return parts.account(req.headers as IncomingHttpHeaders)
  }
}

@Controller()
class HelloController {
  @Get()
  hello() {
    return parts.BODY
  }
}

@Controller()
class MeteredHelloController {
  @Get()
  @Credits(1)
  hello() {
    return parts.BODY
  }
}

/** A Nest app on its default platform (Express), whose Express instance serves the requests. */
export async function nestApp(s: Scenario, shared: NestParts): Promise<RequestListener> {
  parts = shared
  const { seededMeter, account, cleanups, NEVER } = shared
  const imports: DynamicModule[] = []
  const providers: Provider[] = []
  let controller: Type<unknown> = HelloController
  if (s.middleware === 'rate-limit') {
    imports.push(ThrottlerModule.forRoot([{ ttl: 60_000, limit: NEVER }]))
    providers.push({
      provide: APP_GUARD,
      // Built here rather than by class: under tsx, @nestjs/throttler's require() of the ES
      // module @nestjs/core loads a second copy, whose Reflector Nest does not provide.
      useFactory: (
        options: ThrottlerModuleOptions,
        storage: ThrottlerStorage,
        reflector: Reflector,
      ) => new AccountThrottlerGuard(options, storage, reflector),
      inject: [getOptionsToken(), getStorageToken(), Reflector],
    })
  } else if (s.middleware === 'tollgate') {
    const meter = await seededMeter(s)
    imports.push(TollgateModule.forRoot({ meter, account: (req) => account(req.headers) }))
    controller = MeteredHelloController
  } else if (s.middleware !== 'bare') {
    throw new Error(`no NestJS app for ${s.id}`)
  }
  class BenchModule {}
  Module({ imports, providers, controllers: [controller] })(BenchModule)
  const instance = express()
  const app = await NestFactory.create(BenchModule, new ExpressAdapter(instance), {
    logger: false,
    // Throw what failed (reported to the driver) rather than exit silently.
    abortOnError: false,
  })
  await app.init()
  cleanups.unshift(() => app.close())
  return instance
}
