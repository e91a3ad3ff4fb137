/**
 * A NestJS API metered by Tollgate:
 *
 * - `GET /v1/completions?maxTokens=64`: an `@Sse()` stream priced by the tokens asked for,
 *   charged for the tokens actually produced;
 * - `POST /v1/tokenize { text }`: a cheap endpoint at 1 credit;
 * - `GET /v1/balance`: free.
 *
 * Callers authenticate with `Authorization: Bearer <api key>`; a guard maps the key to its
 * account, and the metering (an interceptor, so after the guards) charges that account.
 */
import 'reflect-metadata'
import {
  BadRequestException,
  Body,
  type CanActivate,
  Controller,
  createParamDecorator,
  type ExecutionContext,
  Get,
  type INestApplication,
  Inject,
  Injectable,
  type MessageEvent,
  Module,
  Post,
  Query,
  Sse,
  UnauthorizedException,
  UseGuards,
} from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { ExpressAdapter } from '@nestjs/platform-express'
import { FastifyAdapter } from '@nestjs/platform-fastify'
import type { Meter } from '@tollgate/core'
import {
  Credits,
  CurrentCredits,
  type RequestCredits,
  TOLLGATE_METER,
  TollgateModule,
} from '@tollgate/nestjs'
import { concat, defer, from, map, type Observable, of } from 'rxjs'
import { complete } from './model.js'

/** The seeded account of the demo, and its API key. */
export const DEMO_ACCOUNT = 'acct_demo'
export const DEMO_KEY = 'demo-key'

/** The largest completion one request may ask for. */
export const MAX_TOKENS = 4_096

export interface AppOptions {
  /** API key → account. @default { 'demo-key': 'acct_demo' } */
  apiKeys?: Record<string, string>
  /** Pause between streamed tokens, as a model would take. @default 50 */
  tokenDelayMs?: number
  /** Nest's HTTP platform. @default 'express' */
  platform?: 'express' | 'fastify'
}

const API_KEYS = Symbol('api keys')
const TOKEN_DELAY_MS = Symbol('token delay')

/** A request once {@link ApiKeyGuard} let it through: Express's or Fastify's. */
interface AuthenticatedRequest {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly query: Readonly<Record<string, unknown>>
  account?: string
}

/** Lets a request through when its API key names an account, and records the account. */
@Injectable()
class ApiKeyGuard implements CanActivate {
  constructor(@Inject(API_KEYS) private readonly apiKeys: ReadonlyMap<string, string>) {}

  canActivate(context: ExecutionContext): boolean {
    const req = context.switchToHttp().getRequest<AuthenticatedRequest>()
    const key = String(req.headers.authorization ?? '').replace(/^Bearer /i, '')
    const account = this.apiKeys.get(key)
    if (account === undefined) {
      throw new UnauthorizedException('send Authorization: Bearer <api key>')
    }
    req.account = account
    return true
  }
}

/** The caller's account, as the guard found it. */
const Account = createParamDecorator(
  (_data: unknown, context: ExecutionContext): string =>
    context.switchToHttp().getRequest<AuthenticatedRequest>().account ?? '',
)

/**
 * A completion's price: one credit per token asked for. It runs before the handler (and its
 * pipes), so it is also where `maxTokens` is checked: a bad one is a 400, and nothing is reserved.
 */
function maxTokensOf(context: ExecutionContext): number {
  const maxTokens = Number(
    context.switchToHttp().getRequest<AuthenticatedRequest>().query.maxTokens,
  )
  if (!Number.isSafeInteger(maxTokens) || maxTokens < 1 || maxTokens > MAX_TOKENS) {
    throw new BadRequestException(`maxTokens must be an integer from 1 to ${MAX_TOKENS}`)
  }
  return maxTokens
}

@Controller('v1')
@UseGuards(ApiKeyGuard)
class ApiController {
  constructor(
    @Inject(TOLLGATE_METER) private readonly meter: Meter,
    @Inject(TOKEN_DELAY_MS) private readonly tokenDelayMs: number,
  ) {}

  @Get('balance')
  async balance(@Account() account: string) {
    const { available, held, total } = await this.meter.balance(account)
    return { account, available, held, total }
  }

  @Post('tokenize')
  @Credits(1)
  tokenize(@Body() body: { text?: unknown } | undefined) {
    const text = typeof body?.text === 'string' ? body.text : ''
    return { tokens: text.split(/\s+/).filter(Boolean).length }
  }

  // Reserve the most this completion may cost; charged, when the stream ends, what it produced.
  @Sse('completions')
  @Credits(maxTokensOf)
  completions(
    @Query('maxTokens') maxTokens: string,
    @CurrentCredits() credits: RequestCredits | null,
  ): Observable<MessageEvent> {
    let produced = 0
    return concat(
      from(complete(Number(maxTokens), this.tokenDelayMs)).pipe(
        map((token): MessageEvent => {
          produced++
          if (credits) credits.actual = produced
          return { data: { token } }
        }),
      ),
      defer(() => of<MessageEvent>({ type: 'done', data: { tokens: produced } })),
    )
  }
}

/** Builds the app over `meter`; the caller listens (and closes it). */
export async function createApp(meter: Meter, options: AppOptions = {}): Promise<INestApplication> {
  const apiKeys = new Map(Object.entries(options.apiKeys ?? { [DEMO_KEY]: DEMO_ACCOUNT }))

  @Module({
    imports: [
      TollgateModule.forRoot({
        meter,
        account: (req: AuthenticatedRequest) => req.account ?? '',
      }),
    ],
    controllers: [ApiController],
    providers: [
      ApiKeyGuard,
      { provide: API_KEYS, useValue: apiKeys },
      { provide: TOKEN_DELAY_MS, useValue: options.tokenDelayMs ?? 50 },
    ],
  })
  class AppModule {}

  const adapter = options.platform === 'fastify' ? new FastifyAdapter() : new ExpressAdapter()
  return NestFactory.create(AppModule, adapter, {
    logger: ['error', 'warn'],
    // A stream still open must not keep close() waiting.
    forceCloseConnections: true,
  })
}
