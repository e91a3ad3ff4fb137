/** Accounts: search by prefix, filters, sorting, "load more" paging; rows kept live. */
import { ApiError, api, describeError, seg } from './api.js'
import type { Ctx, Page } from './context.js'
import { h, num, replace, table, uid, when } from './dom.js'
import { select } from './forms.js'
import type { AccountList, AccountRow, Balance } from './types.js'

const PAGE_SIZE = 50
/** Rows refetched per burst of changes; beyond it the list is read again. */
const MAX_ROW_REFETCH = 20

export function accountsPage(ctx: Ctx): Page {
  const searchId = uid('search')
  const search = h('input', {
    id: searchId,
    name: 'prefix',
    type: 'search',
    autocomplete: 'off',
    placeholder: 'account id prefix',
  })
  const filters = (['low', 'inDebt', 'hasHolds'] as const).map((name) => {
    const id = uid(name)
    const box = h('input', { id, name, type: 'checkbox' })
    const label = { low: 'Low balance', inDebt: 'In debt', hasHolds: 'Has holds' }[name]
    return { name, box, el: h('div', { class: 'check' }, box, h('label', { for: id }, label)) }
  })
  const sort = select('sort', 'Sort by', [
    ['account', 'Account'],
    ['balance', 'Balance'],
    ['activity', 'Last activity'],
  ])
  const order = select('order', 'Order', [
    // The server's default: ascending ids, the largest balance or the latest activity first.
    ['', 'Default'],
    ['asc', 'Ascending'],
    ['desc', 'Descending'],
  ])
  const form = h(
    'form',
    { class: 'card toolbar', role: 'search', 'aria-label': 'Find accounts' },
    h('div', { class: 'field grow' }, h('label', { for: searchId }, 'Search accounts'), search),
    sort,
    order,
    h(
      'fieldset',
      { class: 'filters' },
      h('legend', {}, 'Only'),
      filters.map((f) => f.el),
    ),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Search')),
  )
  const openId = uid('open')
  const openInput = h('input', { id: openId, name: 'account', type: 'text', autocomplete: 'off' })
  const openForm = h(
    'form',
    { class: 'card toolbar', 'aria-label': 'Open an account' },
    h('div', { class: 'field grow' }, h('label', { for: openId }, 'Open account by id'), openInput),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'secondary' }, 'Open')),
  )
  openForm.addEventListener('submit', (event) => {
    event.preventDefault()
    const id = openInput.value.trim()
    if (id !== '') location.hash = `#/accounts/${seg(id)}`
  })

  const status = h('p', { class: 'status', role: 'status' })
  const results = h('div', {})
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Load more')
  const rows = new Map<string, HTMLTableRowElement>()
  let cursor: string | null = null
  let generation = 0

  const sel = (el: HTMLElement) => el.querySelector('select')!.value
  const query = () => ({
    limit: PAGE_SIZE,
    prefix: search.value.trim(),
    sort: sel(sort),
    order: sel(order),
    ...Object.fromEntries(filters.map((f) => [f.name, f.box.checked])),
  })

  const cells = (a: AccountRow): HTMLTableCellElement[] => [
    h('td', {}, h('a', { href: `#/accounts/${seg(a.account)}` }, a.account)),
    h('td', { class: 'n' }, num(a.total)),
    h('td', { class: 'n' }, num(a.held)),
    h('td', { class: 'n' }, num(a.available)),
    h('td', { class: 'n' }, num(a.debt)),
    h('td', {}, a.low ? h('span', { class: 'badge warn' }, 'low') : ''),
    h('td', {}, when(a.updatedAt)),
  ]

  const load = async (append: boolean) => {
    const mine = ++generation
    status.textContent = 'Loading…'
    try {
      const page = await api<AccountList>(ctx.session, 'GET', '/v1/accounts', {
        query: { ...query(), cursor: append ? cursor : null },
      })
      if (mine !== generation) return
      if (!append) {
        rows.clear()
        replace(
          results,
          table(
            'Accounts',
            ['Account', 'Total', 'Held', 'Available', 'Debt', 'Low', 'Updated'],
            [],
          ),
        )
      }
      const body = results.querySelector('tbody')!
      for (const a of page.accounts) {
        const tr = h('tr', {}, cells(a))
        rows.set(a.account, tr)
        body.append(tr)
      }
      cursor = page.nextCursor
      more.hidden = cursor === null
      status.textContent =
        rows.size === 0
          ? 'No accounts match.'
          : `${rows.size} account${rows.size === 1 ? '' : 's'} shown.`
    } catch (err) {
      if (mine !== generation) return
      more.hidden = true
      if (err instanceof ApiError && err.status === 404) {
        status.textContent =
          'This server does not list accounts (GET /v1/accounts is missing): open one by id below.'
      } else {
        status.textContent = describeError(err)
      }
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault()
    void load(false)
  })
  for (const el of [sort, order, ...filters.map((f) => f.el)]) {
    el.addEventListener('change', () => void load(false))
  }
  more.addEventListener('click', () => void load(true))
  void load(false)

  return {
    title: 'Accounts',
    el: h(
      'section',
      { 'aria-labelledby': 'accounts-title' },
      h('h1', { id: 'accounts-title' }, 'Accounts'),
      form,
      openForm,
      status,
      results,
      h('div', { class: 'actions' }, more),
    ),
    onChanges(accounts) {
      const listed = [...accounts].filter((a) => rows.has(a))
      if (listed.length > MAX_ROW_REFETCH) {
        void load(false)
        return
      }
      for (const account of listed) {
        api<Balance>(ctx.session, 'GET', `/v1/accounts/${seg(account)}/balance`)
          .then((b) => {
            const tr = rows.get(account)
            if (tr === undefined) return
            replace(tr, cells({ ...b, updatedAt: b.asOf }))
            tr.classList.add('flash')
          })
          .catch(() => {
            // The next change or search shows it.
          })
      }
      if (listed.length > 0) ctx.announce(`${listed.length} listed account(s) updated`)
    },
    refresh: () => void load(false),
  }
}
