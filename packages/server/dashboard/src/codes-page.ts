/** Redeem codes: create a batch and download its plaintext codes as CSV (shown this once). */
import { api } from './api.js'
import type { Ctx, Page } from './context.js'
import { h, num, replace } from './dom.js'
import { actionForm, input, numberOf, text } from './forms.js'

/** Codes previewed on the page; the CSV holds them all. */
const PREVIEW = 10

/** The CSV of a batch: a header, then one code per line (codes have no comma or quote). */
export function codesCsv(codes: readonly string[], credits: number): string {
  return `code,credits\r\n${codes.map((c) => `${c},${credits}`).join('\r\n')}\r\n`
}

export function codesPage(ctx: Ctx): Page {
  const result = h('div', { class: 'once' })
  let url: string | null = null
  const form = actionForm({
    title: 'Create a batch',
    submit: 'Create codes',
    fields: [
      input('credits', 'Credits per code', { type: 'number', min: 1, required: true }),
      input('count', 'How many codes', { type: 'number', min: 1, max: 10_000, required: true }),
      input('prefix', 'Prefix', { placeholder: 'TG', hint: 'letters and digits' }),
      input('codeExpiresAt', 'Codes expire on', { type: 'date', hint: 'empty: never' }),
      input('validityDays', 'Credits valid for (days)', {
        type: 'number',
        min: 1,
        hint: 'empty: no expiry',
      }),
    ],
    after: result,
    async run(f, idempotencyKey) {
      const body: Record<string, unknown> = {
        credits: numberOf(f, 'credits') ?? 0,
        count: numberOf(f, 'count') ?? 0,
      }
      const prefix = text(f, 'prefix')
      if (prefix !== '') body.prefix = prefix
      const expires = text(f, 'codeExpiresAt')
      // The end of the chosen day, local time.
      if (expires !== '') body.codeExpiresAt = new Date(`${expires}T23:59:59`).getTime()
      const days = numberOf(f, 'validityDays')
      if (days !== undefined) body.validityDays = days
      const { codes } = await api<{ codes: string[] }>(ctx.session, 'POST', '/v1/codes', {
        body,
        idempotencyKey,
      })
      if (url !== null) URL.revokeObjectURL(url)
      url = URL.createObjectURL(
        new Blob([codesCsv(codes, Number(body.credits))], { type: 'text/csv' }),
      )
      const name = `tollgate-codes-${prefix || 'TG'}-${new Date().toISOString().slice(0, 10)}.csv`
      replace(
        result,
        h('h4', {}, `${num(codes.length)} codes created`),
        h(
          'p',
          { class: 'warn-text' },
          'These codes are shown this once: the server keeps only their hashes. Download them now.',
        ),
        h('a', { class: 'button', href: url, download: name }, `Download ${name}`),
        h(
          'ul',
          { class: 'mono codes', 'aria-label': 'First codes' },
          codes.slice(0, PREVIEW).map((c) => h('li', {}, c)),
        ),
        codes.length > PREVIEW
          ? h('p', {}, `…and ${num(codes.length - PREVIEW)} more in the file.`)
          : null,
      )
      ctx.announce(`${codes.length} codes created`)
      return `${num(codes.length)} codes created.`
    },
  })
  return {
    title: 'Redeem codes',
    el: h(
      'section',
      { 'aria-labelledby': 'codes-title' },
      h('h1', { id: 'codes-title' }, 'Redeem codes'),
      form,
    ),
    dispose() {
      if (url !== null) URL.revokeObjectURL(url)
    },
  }
}
