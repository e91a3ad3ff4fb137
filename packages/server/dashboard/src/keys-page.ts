/** API keys (admin keys only): list, create (the key is shown once), revoke. */
import { api, describeError, seg } from './api.js'
import type { Ctx, Page } from './context.js'
import { h, replace, table, when } from './dom.js'
import { actionForm, input, select, text } from './forms.js'

interface KeyInfo {
  id: string
  tenant: string
  role: 'admin' | 'tenant'
  name: string
  createdAt: number
  revokedAt: number | null
}

export function keysPage(ctx: Ctx): Page {
  const list = h('div', {}, 'Loading…')
  const shown = h('div', { class: 'once' })

  const load = async () => {
    try {
      const { keys } = await api<{ keys: KeyInfo[] }>(ctx.session, 'GET', '/v1/keys')
      const rows = keys.map((k) => {
        const revoke = h('button', { type: 'button', class: 'small danger' }, 'Revoke')
        revoke.addEventListener('click', () => {
          if (revoke.dataset.confirm !== 'yes') {
            revoke.dataset.confirm = 'yes'
            revoke.textContent = 'Confirm revoke'
            return
          }
          revoke.disabled = true
          api(ctx.session, 'DELETE', `/v1/keys/${seg(k.id)}`)
            .then(() => {
              ctx.announce(`Key ${k.id} revoked`)
              return load()
            })
            .catch((err: unknown) => ctx.announce(describeError(err)))
        })
        return h(
          'tr',
          {},
          h('td', { class: 'mono' }, k.id),
          h('td', {}, k.tenant),
          h('td', {}, k.role),
          h('td', {}, k.name),
          h('td', {}, when(k.createdAt)),
          h('td', {}, k.revokedAt === null ? revoke : `revoked ${when(k.revokedAt)}`),
        )
      })
      replace(list, table('API keys', ['Id', 'Tenant', 'Role', 'Name', 'Created', ''], rows))
    } catch (err) {
      replace(list, h('p', { class: 'status error' }, describeError(err)))
    }
  }

  const create = actionForm({
    title: 'Create a key',
    submit: 'Create key',
    fields: [
      input('tenant', 'Tenant', { required: true, value: 'default' }),
      input('name', 'Name'),
      select('role', 'Role', [
        ['tenant', 'tenant'],
        ['admin', 'admin'],
      ]),
    ],
    after: shown,
    async run(form) {
      // Key creation takes no idempotency key: each submit is a new key (the button is disabled
      // while one is in flight).
      const created = await api<KeyInfo & { key: string }>(ctx.session, 'POST', '/v1/keys', {
        body: { tenant: text(form, 'tenant'), name: text(form, 'name'), role: text(form, 'role') },
      })
      replace(
        shown,
        h('p', { class: 'warn-text' }, 'The key is shown this once:'),
        h('output', { class: 'mono secret' }, created.key),
      )
      await load()
      return `Key ${created.id} created.`
    },
  })

  void load()
  return {
    title: 'API keys',
    el: h(
      'section',
      { 'aria-labelledby': 'keys-title' },
      h('h1', { id: 'keys-title' }, 'API keys'),
      list,
      create,
    ),
  }
}
