/**
 * DESIGN section 3 checked by the shared adapter suite, in full, on both of Nest's HTTP
 * platforms: the suite's routes are `@Credits()` routes of a Nest controller, priced by the
 * module's options, and `/stream` a `StreamableFile`.
 */
import { Readable } from 'node:stream'
import { Controller, Get, Res, StreamableFile, type Type } from '@nestjs/common'
import {
  type AdapterMountContext,
  describeAdapterConformance,
  type MountedAdapter,
} from '@tollgate/conformance'
import { Credits, CurrentCredits, type HttpRequest, type RequestCredits } from './index.js'
import { PLATFORMS, type Platform, rootModule, start } from './test-support.js'

/** A response of either platform, as far as the routes answer with it. */
interface AnyResponse {
  /** Fastify's reply. */
  code?: (status: number) => AnyResponse
  /** Express's response. */
  status?: (status: number) => AnyResponse
  header(name: string, value: string): AnyResponse
  send(body: string): unknown
}

function answer(res: AnyResponse, status: number, body: string): void {
  const withStatus = typeof res.code === 'function' ? res.code(status) : res.status!(status)
  withStatus.header('Content-Type', 'text/plain').send(body)
}

/** A controller serving the suite's routes of one test. */
function suiteController({ routes, stream }: AdapterMountContext): Type<unknown> {
  @Controller()
  class SuiteController {
    @Get('ok')
    @Credits()
    async ok(@CurrentCredits() credits: RequestCredits | null, @Res() res: AnyResponse) {
      const reply = await routes['/ok'](credits)
      answer(res, reply.status, reply.body)
    }

    @Get('actual')
    @Credits()
    async actual(@CurrentCredits() credits: RequestCredits | null, @Res() res: AnyResponse) {
      const reply = await routes['/actual'](credits)
      answer(res, reply.status, reply.body)
    }

    @Get('fail')
    @Credits()
    async fail(@CurrentCredits() credits: RequestCredits | null, @Res() res: AnyResponse) {
      const reply = await routes['/fail'](credits)
      answer(res, reply.status, reply.body)
    }

    @Get('throw')
    @Credits()
    async throws(@CurrentCredits() credits: RequestCredits | null, @Res() res: AnyResponse) {
      // It throws: Nest's exception filters answer.
      const reply = await routes['/throw'](credits)
      answer(res, reply.status, reply.body)
    }

    @Get('slow')
    @Credits()
    async slow(@CurrentCredits() credits: RequestCredits | null, @Res() res: AnyResponse) {
      const reply = await routes['/slow'](credits)
      answer(res, reply.status, reply.body)
    }

    @Get('stream')
    @Credits()
    stream(@CurrentCredits() credits: RequestCredits | null): StreamableFile {
      // Nest destroys the stream when the client goes away, which ends the iterable.
      return new StreamableFile(Readable.from(stream(credits)), { type: 'text/plain' })
    }
  }
  return SuiteController
}

function mountOn(platform: Platform) {
  return async (context: AdapterMountContext): Promise<MountedAdapter> => {
    const options = context.options((req: HttpRequest) => ({
      header: (name) => {
        const value = req.headers[name.toLowerCase()]
        return Array.isArray(value) ? value[0] : value
      },
    }))
    const app = await start(
      platform,
      rootModule({ meter: context.meter, ...options }, [suiteController(context)]),
    )
    return { url: app.url, close: app.close }
  }
}

for (const platform of PLATFORMS) {
  describeAdapterConformance({ name: `@tollgate/nestjs on ${platform}`, mount: mountOn(platform) })
}
