/** Webhooks: endpoints (add — the secret is shown once —, delete) and their deliveries (retry). */
import { api, describeError, seg } from './api.js'
import type { Ctx, Page } from './context.js'
import { h, replace, table, when } from './dom.js'
import { actionForm, input, text } from './forms.js'

interface Webhook {
  id: string
  url: string
  events: string[]
  createdAt: number
}
interface Delivery {
  id: string
  eventId: string
  account: string
  type: string
  at: number
  status: 'pending' | 'delivered' | 'failed'
  attempts: number
  lastStatus: number | null
  lastError: string | null
}

const DELIVERY_PAGE = 50

export function webhooksPage(ctx: Ctx): Page {
  const list = h('div', {}, 'Loading…')
  const deliveries = h('section', { 'aria-live': 'polite' })
  const secret = h('div', { class: 'once' })

  const showDeliveries = async (hook: Webhook) => {
    replace(deliveries, h('h2', {}, 'Deliveries'), h('p', {}, 'Loading…'))
    try {
      const page = await api<{ deliveries: Delivery[] }>(
        ctx.session,
        'GET',
        `/v1/webhooks/${seg(hook.id)}/deliveries`,
        { query: { limit: DELIVERY_PAGE } },
      )
      const rows = page.deliveries.map((d) => {
        const retry = h('button', { type: 'button', class: 'small' }, 'Retry')
        retry.addEventListener('click', () => {
          retry.disabled = true
          api(ctx.session, 'POST', `/v1/webhooks/${seg(hook.id)}/deliveries/${seg(d.id)}/retry`)
            .then(() => {
              ctx.announce('Delivery queued again')
              return showDeliveries(hook)
            })
            .catch((err: unknown) => ctx.announce(describeError(err)))
        })
        return h(
          'tr',
          {},
          h('td', {}, when(d.at)),
          h('td', {}, d.type),
          h('td', { class: 'mono' }, d.account),
          h('td', {}, h('span', { class: `badge s-${d.status}` }, d.status)),
          h('td', { class: 'n' }, d.attempts),
          h('td', {}, d.lastStatus === null ? (d.lastError ?? '') : String(d.lastStatus)),
          h('td', {}, d.status === 'delivered' ? '' : retry),
        )
      })
      replace(
        deliveries,
        h('h2', {}, 'Deliveries to ', h('span', { class: 'mono' }, hook.url)),
        rows.length === 0
          ? h('p', {}, 'No deliveries yet.')
          : table(
              'Deliveries',
              ['When', 'Event', 'Account', 'Status', 'Attempts', 'Last answer', ''],
              rows,
            ),
      )
    } catch (err) {
      replace(deliveries, h('p', { class: 'status error' }, describeError(err)))
    }
  }

  const load = async () => {
    try {
      const { webhooks } = await api<{ webhooks: Webhook[] }>(ctx.session, 'GET', '/v1/webhooks')
      const rows = webhooks.map((w) => {
        const show = h('button', { type: 'button', class: 'small secondary' }, 'Deliveries')
        show.addEventListener('click', () => void showDeliveries(w))
        const del = h('button', { type: 'button', class: 'small danger' }, 'Delete')
        del.addEventListener('click', () => {
          if (del.dataset.confirm !== 'yes') {
            del.dataset.confirm = 'yes'
            del.textContent = 'Confirm delete'
            return
          }
          del.disabled = true
          api(ctx.session, 'DELETE', `/v1/webhooks/${seg(w.id)}`)
            .then(() => {
              ctx.announce('Webhook deleted')
              return load()
            })
            .catch((err: unknown) => ctx.announce(describeError(err)))
        })
        return h(
          'tr',
          {},
          h('td', { class: 'mono' }, w.url),
          h('td', {}, w.events.join(', ')),
          h('td', {}, when(w.createdAt)),
          h('td', { class: 'row-actions' }, show, del),
        )
      })
      replace(
        list,
        rows.length === 0
          ? h('p', {}, 'No endpoints.')
          : table('Webhook endpoints', ['URL', 'Events', 'Created', ''], rows),
      )
    } catch (err) {
      replace(list, h('p', { class: 'status error' }, describeError(err)))
    }
  }

  const add = actionForm({
    title: 'Add an endpoint',
    submit: 'Add endpoint',
    fields: [
      input('url', 'URL', {
        type: 'url',
        required: true,
        placeholder: 'https://example.com/hooks',
      }),
      input('events', 'Events', { value: '*', hint: 'comma-separated, * for all' }),
    ],
    after: secret,
    async run(form, idempotencyKey) {
      const events = text(form, 'events')
        .split(',')
        .map((e) => e.trim())
        .filter((e) => e !== '')
      const created = await api<Webhook & { secret: string }>(ctx.session, 'POST', '/v1/webhooks', {
        body: { url: text(form, 'url'), events: events.length === 0 ? undefined : events },
        idempotencyKey,
      })
      replace(
        secret,
        h('p', { class: 'warn-text' }, 'The signing secret is shown this once:'),
        h('output', { class: 'mono secret' }, created.secret),
      )
      form.reset()
      await load()
      return 'Endpoint added.'
    },
  })

  void load()
  return {
    title: 'Webhooks',
    el: h(
      'section',
      { 'aria-labelledby': 'webhooks-title' },
      h('h1', { id: 'webhooks-title' }, 'Webhooks'),
      list,
      add,
      deliveries,
    ),
  }
}
