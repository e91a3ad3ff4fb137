/**
 * Classes decorated with `@Metered`, compiled by the tests twice (standard decorators and
 * `experimentalDecorators`) and type-checked in both modes. The decorator comes in as an
 * argument: the compiled copy runs from a temporary directory, where imports would not resolve.
 */
import type { currentCredits as CurrentCredits, MeteredFactory } from '../index.js'

/** What a test controls from outside the class. */
export interface Hooks {
  /** Called when `slow()` has started. */
  started(): void
}

export interface Caller {
  user: string
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** A method decorator in both modes, as {@link Route} returns it. */
interface RouteDecorator {
  (value: (...args: never[]) => unknown, context: ClassMethodDecoratorContext): void
  (target: object, key: string | symbol, descriptor: PropertyDescriptor): void
}

/**
 * A route decorator as web frameworks write them: Reflect metadata keyed by the method's
 * function (NestJS's `@Get`, `@Post`, `@Sse` do this). The test loads `reflect-metadata`.
 */
function Route(path: string): RouteDecorator {
  const reflect = Reflect as unknown as {
    defineMetadata(key: string, value: unknown, target: object): void
  }
  return ((...params: unknown[]) => {
    const method = params.length === 2 ? params[0] : (params[2] as PropertyDescriptor).value
    reflect.defineMetadata('route:path', path, method as object)
  }) as RouteDecorator
}

export function defineService(
  Metered: MeteredFactory,
  currentCredits: typeof CurrentCredits,
  hooks: Hooks,
) {
  class Service implements Caller {
    constructor(readonly user: string) {}

    @Metered({ cost: 10 })
    async ok(): Promise<string> {
      await sleep(1) // so that concurrent calls overlap
      return 'ok'
    }

    @Metered({ cost: ([n]) => n })
    async priced(_n: number): Promise<number | undefined> {
      return currentCredits()?.cost
    }

    @Metered({ cost: 10 })
    async actual(n: number): Promise<number> {
      const credits = currentCredits()
      if (credits) credits.actual = n
      return n
    }

    @Metered({ cost: 10 })
    async fail(): Promise<never> {
      await sleep(1)
      throw new Error('boom')
    }

    @Metered({ cost: 100 })
    async expensive(): Promise<string> {
      return 'rich'
    }

    @Metered({ cost: 0 })
    async free(): Promise<{ cost: number; hold: unknown } | null> {
      const credits = currentCredits()
      return credits && { cost: credits.cost, hold: credits.hold }
    }

    @Metered({ cost: 10, signal: ([signal]) => signal })
    async slow(signal: AbortSignal): Promise<string> {
      hooks.started()
      await new Promise<void>((resolve) => {
        signal.addEventListener('abort', () => resolve(), { once: true })
      })
      return 'late'
    }

    @Metered({ cost: ([chunks]) => chunks * 10 + 5 })
    async *stream(chunks: number, delayMs: number, failAt?: number): AsyncGenerator<number> {
      // Read before the first await too: each resumption runs with the call's credits.
      const credits = currentCredits()
      for (let i = 1; i <= chunks; i++) {
        await sleep(delayMs)
        if (failAt === i) throw new Error('stream broke')
        if (credits) credits.actual = i * 10
        if (currentCredits() !== credits) throw new Error('lost the credits across an await')
        yield i
      }
    }

    /** Calls another metered method: each sees its own credits. */
    @Metered({ cost: 10 })
    async outer(): Promise<[number | undefined, number | undefined]> {
      const inner = await this.priced(3)
      return [inner, currentCredits()?.cost]
    }

    /** `self` of a static method is the class: the account here is its name. */
    @Metered({ cost: 1, account: (_args, self) => (self as { name: string }).name })
    static async census(): Promise<number | undefined> {
      return currentCredits()?.cost
    }

    /** The route decorator runs first and @Metered wraps the method it marked. */
    @Metered({ cost: 1 })
    @Route('/metered-above')
    async meteredAbove(): Promise<number | undefined> {
      return currentCredits()?.cost
    }

    /** @Metered runs first and the route decorator marks the wrapper. */
    @Route('/metered-below')
    @Metered({ cost: 1 })
    async meteredBelow(): Promise<number | undefined> {
      return currentCredits()?.cost
    }

    /** Not decorated: no credits here. */
    async plain(): Promise<unknown> {
      return currentCredits()
    }
  }
  return Service
}

/** Misuses the type checker must reject, in both decorator modes. */
export function defineInvalid(Metered: MeteredFactory) {
  class Invalid {
    user = 'u'

    // @ts-expect-error A metered method must be async: the reserve is.
    @Metered({ cost: 1 })
    sync(n: number): number {
      return n
    }

    // @ts-expect-error The cost function's arguments are the method's.
    @Metered({ cost: ([s]: [string]) => s.length })
    async wrongArgs(n: number): Promise<number> {
      return n
    }
  }
  return Invalid
}
