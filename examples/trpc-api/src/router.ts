/**
 * The API: an AI-style completion priced by the tokens it may produce (a subscription that
 * streams over SSE), a cheap summary priced in the procedure's meta, and a free balance.
 */
import type { Meter } from '@tollgate/core'
import { creditsErrorData, type MeteredMeta, metered } from '@tollgate/trpc'
import { initTRPC, TRPCError } from '@trpc/server'
import type { CreateHTTPContextOptions } from '@trpc/server/adapters/standalone'
import { z } from 'zod'
import { generate, summarize } from './model.js'

/** Who is calling: from the `x-account` header, or the SSE connection params. */
export interface Context {
  account: string | null
}

export function createContext({ req, info }: CreateHTTPContextOptions): Context {
  const header = req.headers['x-account']
  if (typeof header === 'string' && header !== '') return { account: header }
  const param = info.connectionParams?.account
  return { account: typeof param === 'string' && param !== '' ? param : null }
}

const t = initTRPC
  .context<Context>()
  .meta<MeteredMeta>()
  .create({
    // Hands `{ account, required, available }` of a PAYMENT_REQUIRED error to the client.
    errorFormatter: ({ shape, error }) => ({
      ...shape,
      data: { ...shape.data, credits: creditsErrorData(error) },
    }),
  })

const authed = t.procedure.use(({ ctx, next }) => {
  if (ctx.account === null) {
    throw new TRPCError({ code: 'UNAUTHORIZED', message: 'send an x-account header' })
  }
  return next({ ctx: { account: ctx.account } })
})

export function createAppRouter(meter: Meter) {
  const account = ({ ctx }: { ctx: { account: string } }) => ctx.account
  // Priced by `.meta({ credits })` on each procedure.
  const billed = authed.use(metered(meter, { account }))

  return t.router({
    /** Free: what the caller has left. */
    balance: authed.query(async ({ ctx }) => {
      const b = await meter.balance(ctx.account)
      return { total: b.total, held: b.held, available: b.available }
    }),

    /** Cheap: 2 credits a call. */
    summarize: billed
      .meta({ credits: 2 })
      .input(z.object({ text: z.string().min(1) }))
      .mutation(({ input }) => ({ summary: summarize(input.text) })),

    /**
     * Streams a completion. Reserves `maxTokens` credits up front, keeps the hold alive while
     * it streams, and commits one credit per token actually sent when the stream ends (all of
     * it is released if the client goes away first).
     */
    complete: authed
      .input(
        z.object({
          prompt: z.string().min(1),
          maxTokens: z.number().int().min(1).max(4_000),
          delayMs: z.number().int().min(0).max(1_000).optional(),
        }),
      )
      .use(metered(meter, { account, cost: ({ input }) => input.maxTokens }))
      .subscription(async function* ({ ctx, input, signal }) {
        let sent = 0
        for await (const token of generate(input.prompt, { ...input, signal })) {
          sent++
          if (ctx.credits) ctx.credits.actual = sent
          yield token
        }
      }),
  })
}

export type AppRouter = ReturnType<typeof createAppRouter>
