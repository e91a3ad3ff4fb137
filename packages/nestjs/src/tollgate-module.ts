/**
 * `TollgateModule`: registers the metering interceptor and the problem+json filter globally and
 * makes the options and the meter injectable.
 */
import { type DynamicModule, Module, type Provider } from '@nestjs/common'
import { APP_FILTER, APP_INTERCEPTOR, Reflector } from '@nestjs/core'
import { InvalidInputError } from '@tollgate/core'
import { CreditsExceptionFilter } from './credits-exception.js'
import { CreditsInterceptor } from './credits-interceptor.js'
import type { HttpRequest } from './http.js'
import { CreditsMetering, warnUnknownOption } from './metering.js'
import {
  TOLLGATE_METER,
  TOLLGATE_OPTIONS,
  type TollgateModuleAsyncOptions,
  type TollgateModuleOptions,
} from './options.js'

type AnyModuleOptions = TollgateModuleOptions<unknown, unknown>

/**
 * Meters the app's `@Credits` routes. Import it once, in the root module: it is global, and
 * registers a global interceptor (reserve before the handler, settle when the response has
 * been sent) and, unless `exceptionFilter: false`, the {@link CreditsExceptionFilter} that
 * answers refusals as `application/problem+json`. Inject the meter with `TOLLGATE_METER`.
 * Options are checked when the module is created: a mistake fails at startup, naming the field.
 *
 * @example
 * \@Module({
 *   imports: [
 *     TollgateModule.forRoot({
 *       meter: createMeter({ store: memoryStore() }),
 *       account: (req: Request) => req.user.id,
 *     }),
 *   ],
 *   controllers: [CompletionsController],
 * })
 * export class AppModule {}
 */
@Module({})
// biome-ignore lint/complexity/noStaticOnlyClass: a Nest module is a class; forRoot and forRootAsync are its dynamic-module factories, as in @nestjs/throttler
export class TollgateModule {
  /**
   * The module with options known now.
   * @example TollgateModule.forRoot({ meter, account: (req: Request) => req.user.id, cost: 1 })
   */
  static forRoot<Req = HttpRequest, Res = unknown>(
    options: TollgateModuleOptions<Req, Res>,
  ): DynamicModule {
    const metering = new CreditsMetering(options as unknown as AnyModuleOptions)
    return moduleWith(
      [
        { provide: TOLLGATE_OPTIONS, useValue: options },
        { provide: CreditsMetering, useValue: metering },
      ],
      metering.exceptionFilter,
    )
  }

  /**
   * The module with options from a factory that Nest's injector runs (a meter built from
   * `ConfigService`, say). `exceptionFilter` is given here, not by the factory.
   * @example
   * TollgateModule.forRootAsync({
   *   imports: [ConfigModule],
   *   inject: [ConfigService],
   *   useFactory: (config: ConfigService) => ({
   *     meter: createMeter({ store: httpStore({ url: config.getOrThrow('TOLLGATE_URL') }) }),
   *     account: (req: Request) => req.user.id,
   *   }),
   * })
   */
  static forRootAsync<Req = HttpRequest, Res = unknown>(
    options: TollgateModuleAsyncOptions<Req, Res>,
  ): DynamicModule {
    if (typeof options !== 'object' || options === null) {
      throw new InvalidInputError('options', 'TollgateModule.forRootAsync() needs { useFactory }')
    }
    if (typeof options.useFactory !== 'function') {
      throw new InvalidInputError('useFactory', 'must be a function returning the options')
    }
    if (options.inject !== undefined && !Array.isArray(options.inject)) {
      throw new InvalidInputError('inject', 'must be an array of providers')
    }
    const filter = options.exceptionFilter ?? true
    if (typeof filter !== 'boolean') {
      throw new InvalidInputError('exceptionFilter', 'must be a boolean')
    }
    return moduleWith(
      [
        {
          provide: TOLLGATE_OPTIONS,
          useFactory: options.useFactory as (...args: unknown[]) => unknown,
          inject: options.inject ?? [],
        },
        {
          provide: CreditsMetering,
          useFactory: (resolved: AnyModuleOptions) => {
            if (
              typeof resolved === 'object' &&
              resolved !== null &&
              'exceptionFilter' in resolved
            ) {
              warnUnknownOption(
                '@tollgate/nestjs TollgateModule.forRootAsync(): exceptionFilter from the factory is ignored; give it to forRootAsync() itself',
              )
              const { exceptionFilter: _, ...rest } = resolved
              return new CreditsMetering(rest as AnyModuleOptions)
            }
            return new CreditsMetering(resolved)
          },
          inject: [TOLLGATE_OPTIONS],
        },
      ],
      filter,
      options.imports ?? [],
    )
  }
}

function moduleWith(
  providers: Provider[],
  exceptionFilter: boolean,
  imports: NonNullable<DynamicModule['imports']> = [],
): DynamicModule {
  return {
    module: TollgateModule,
    global: true,
    imports,
    providers: [
      ...providers,
      {
        provide: TOLLGATE_METER,
        useFactory: (metering: CreditsMetering) => metering.meter,
        inject: [CreditsMetering],
      },
      {
        provide: APP_INTERCEPTOR,
        useFactory: (reflector: Reflector, metering: CreditsMetering) =>
          new CreditsInterceptor(reflector, metering),
        inject: [Reflector, CreditsMetering],
      },
      ...(exceptionFilter ? [{ provide: APP_FILTER, useValue: new CreditsExceptionFilter() }] : []),
    ],
    exports: [TOLLGATE_OPTIONS, TOLLGATE_METER],
  }
}
