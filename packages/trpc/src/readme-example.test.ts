/**
 * The README's example, as written there: it must compile under the repository's strict
 * TypeScript with no annotation on any option callback (`pnpm typecheck` checks this file), and
 * it must meter what it says when called. `summarize` and `model` stand in for the app's own.
 */
import { createMeter, memoryStore } from '@tollgate/core'
import type { RequestCredits } from '@tollgate/core/metering'
import { initTRPC } from '@trpc/server'
import { describe, expect, expectTypeOf, it } from 'vitest'
import { z } from 'zod'
import { createMetered, creditsErrorData, type MeteredMeta } from './index.js'

function summarize(text: string): string {
  return text.split(' ').slice(0, 2).join(' ')
}

const model = {
  async *stream(input: { prompt: string; maxTokens: number }, _opts: { signal?: AbortSignal }) {
    for (const word of input.prompt.split(' ').slice(0, input.maxTokens)) yield word
  },
}

// ---- the README example, from here (only `export` dropped before `const router`) ----
const meter = createMeter({ store: memoryStore() })

const t = initTRPC
  .context<{ user: { id: string } }>()
  .meta<MeteredMeta>() // adds `credits?: number` to procedure meta
  .create({
    // Optional: hand { account, required, available } of a refusal to the client.
    errorFormatter: ({ shape, error }) => ({
      ...shape,
      data: { ...shape.data, credits: creditsErrorData(error) },
    }),
  })

// `metered` bound to t's context and meta: `ctx` and `meta` are typed in every option.
const metered = createMetered(t)
const billed = t.procedure.use(metered(meter, { account: ({ ctx }) => ctx.user.id }))

const router = t.router({
  // 5 credits a call, from the procedure's meta.
  summarize: billed
    .meta({ credits: 5 })
    .input(z.object({ text: z.string() }))
    .mutation(({ input }) => summarize(input.text)),

  // Priced by the input: reserve maxTokens, charge the tokens really sent.
  complete: t.procedure
    .input(z.object({ prompt: z.string(), maxTokens: z.number().int() }))
    .use(
      metered(meter, {
        account: ({ ctx }) => ctx.user.id,
        cost: ({ input }) => input.maxTokens,
      }),
    )
    .subscription(async function* ({ ctx, input, signal }) {
      let sent = 0
      for await (const token of model.stream(input, { signal })) {
        if (ctx.credits) ctx.credits.actual = ++sent
        yield token
      }
    }),
})
// ---- to here ----

describe('the README example', () => {
  it('meters as it says: 5 from meta, a stream charged the tokens it sent', async () => {
    await meter.grant('u', 100)
    const caller = router.createCaller({ user: { id: 'u' } })
    expect(await caller.summarize({ text: 'one two three' })).toBe('one two')
    expect((await meter.balance('u', { fresh: true })).total).toBe(95)
    const tokens: string[] = []
    const stream = await caller.complete({ prompt: 'a b c', maxTokens: 50 })
    for await (const token of stream) tokens.push(token)
    expect(tokens).toEqual(['a', 'b', 'c'])
    await expect
      .poll(async () => meter.balance('u', { fresh: true }))
      .toMatchObject({ total: 92, held: 0 })
  })

  it('types every option callback from t, without annotations', () => {
    const authed = t.procedure.use(({ ctx, next }) => next({ ctx: { account: ctx.user.id } }))
    authed
      .input(z.object({ tokens: z.number() }))
      .use(
        metered(meter, {
          account: ({ ctx }) => {
            expectTypeOf(ctx.user).toEqualTypeOf<{ id: string }>()
            expectTypeOf(ctx.account).toEqualTypeOf<string>()
            return ctx.account
          },
          cost: ({ input, meta }) => {
            expectTypeOf(input).toEqualTypeOf<{ tokens: number }>()
            expectTypeOf(meta).toEqualTypeOf<MeteredMeta | undefined>()
            return input.tokens
          },
          shouldCharge: ({ ctx }, result) => {
            expectTypeOf(ctx.user.id).toEqualTypeOf<string>()
            return result.ok
          },
        }),
      )
      .query(({ ctx }) => {
        expectTypeOf(ctx.credits).toEqualTypeOf<RequestCredits | null>()
      })
    // The type argument form binds the same types as the value form.
    expectTypeOf(createMetered<typeof t>()).toEqualTypeOf(metered)
  })
})
