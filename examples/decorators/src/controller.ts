/**
 * The app's handlers as a class, metered with `@Metered`: an AI-style completion priced by the
 * tokens it may produce (an async generator that streams them), a cheap summary, and a free
 * balance. The class is defined inside a factory because `createMetered` needs the meter.
 */
import type { Meter } from '@tollgate/core'
import { createMetered, currentCredits } from '@tollgate/decorators'
import { generate, summarize } from './model.js'

/** What the HTTP layer hands a handler. */
export interface ApiRequest {
  /** The caller's account. */
  account: string
  body: unknown
  /** Aborts when the client goes away. */
  signal: AbortSignal
}

export interface CompletionBody {
  prompt: string
  maxTokens: number
  delayMs?: number
}

/** Thrown for a body the handler cannot use; the server answers 400. */
export class BadRequestError extends Error {}

function field<T>(body: unknown, key: string, check: (v: unknown) => v is T): T {
  const value = (body as Record<string, unknown> | null)?.[key]
  if (!check(value)) throw new BadRequestError(`body.${key} is missing or invalid`)
  return value
}
const isText = (v: unknown): v is string => typeof v === 'string' && v.length > 0
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0

export function createController(meter: Meter) {
  // Every handler takes the request first: the account and abort signal come from it.
  const Metered = createMetered<[ApiRequest]>(meter, {
    account: ([req]) => req.account,
    signal: ([req]) => req.signal,
  })

  class Controller {
    /**
     * Streams a completion. Reserves `maxTokens` credits before the first token, keeps the
     * hold alive while streaming, commits one credit per token sent when the generator ends,
     * and releases everything if the client goes away first.
     */
    @Metered({ cost: ([req]) => field(req.body, 'maxTokens', isCount) })
    async *complete(req: ApiRequest): AsyncGenerator<string> {
      const prompt = field(req.body, 'prompt', isText)
      const { maxTokens, delayMs } = req.body as CompletionBody
      const credits = currentCredits()
      let sent = 0
      for await (const token of generate(prompt, { maxTokens, delayMs, signal: req.signal })) {
        sent++
        if (credits) credits.actual = sent
        yield token
      }
    }

    /** Cheap: 2 credits a call. */
    @Metered({ cost: 2 })
    async summarize(req: ApiRequest): Promise<{ summary: string }> {
      return { summary: summarize(field(req.body, 'text', isText)) }
    }

    /** Free: not decorated. */
    async balance(req: ApiRequest): Promise<{ total: number; held: number; available: number }> {
      const b = await meter.balance(req.account)
      return { total: b.total, held: b.held, available: b.available }
    }
  }

  return new Controller()
}

export type Controller = ReturnType<typeof createController>
