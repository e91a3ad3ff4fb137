/**
 * The Tollgate dashboard: a sign-in form, then pages chosen by the URL's hash (`#/accounts`,
 * `#/accounts/<id>`, `#/codes`, `#/webhooks`, `#/keys`), kept live by the change feed.
 */
import { accountPage } from './account-page.js'
import { accountsPage } from './accounts-page.js'
import {
  ApiError,
  api,
  clearSession,
  describeError,
  loadSession,
  onUnauthorized,
  type Session,
  saveSession,
} from './api.js'
import { codesPage } from './codes-page.js'
import type { Ctx, Page } from './context.js'
import { h, replace, uid } from './dom.js'
import { followChanges } from './feed.js'
import { keysPage } from './keys-page.js'
import { webhooksPage } from './webhooks-page.js'

const root = document.getElementById('app')!
/** Changes are gathered this long before a page refetches, so a burst costs one refetch. */
const CHANGE_COALESCE_MS = 150

/** Checks a key: any answer but 401 means it is valid; `/v1/keys` answers 200 to admin keys. */
async function verify(key: string, tenant: string): Promise<Session> {
  const probe = { key, tenant }
  try {
    await api(probe, 'GET', '/v1/settings')
  } catch (err) {
    if (!(err instanceof ApiError) || err.status === 401 || err.status === 0) throw err
  }
  let admin = false
  try {
    await api(probe, 'GET', '/v1/keys')
    admin = true
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) throw err
  }
  return { key, tenant, admin }
}

function signIn(message = ''): void {
  document.title = 'Sign in · Tollgate'
  const keyId = uid('key')
  const tenantId = uid('tenant')
  const error = h('p', { class: 'status error', role: 'alert' }, message)
  const button = h('button', { type: 'submit' }, 'Sign in')
  const keyInput = h('input', {
    id: keyId,
    name: 'key',
    type: 'password',
    required: true,
    autocomplete: 'current-password',
    spellcheck: 'false',
  })
  const form = h(
    'form',
    { class: 'card signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Tollgate'),
    h('p', {}, 'Sign in with an API key. It is kept in this tab only (sessionStorage).'),
    h(
      'div',
      { class: 'field' },
      h('label', { for: keyId }, 'API key'),
      keyInput,
      h('small', {}, 'tg_sk_…'),
    ),
    h(
      'div',
      { class: 'field' },
      h('label', { for: tenantId }, 'Tenant (admin keys, optional)'),
      h('input', { id: tenantId, name: 'tenant', type: 'text', autocomplete: 'off' }),
    ),
    h('div', { class: 'actions' }, button),
    error,
  )
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    const key = keyInput.value.trim()
    const tenant = (form.elements.namedItem('tenant') as HTMLInputElement).value.trim()
    if (key === '') {
      error.textContent = 'Enter an API key.'
      keyInput.focus()
      return
    }
    button.disabled = true
    error.textContent = ''
    verify(key, tenant)
      .then((session) => {
        saveSession(key, tenant)
        start(session)
      })
      .catch((err: unknown) => {
        error.textContent =
          err instanceof ApiError && err.status === 401
            ? 'That key was refused: check it and try again.'
            : describeError(err)
        keyInput.setAttribute('aria-invalid', 'true')
        keyInput.focus()
      })
      .finally(() => {
        button.disabled = false
      })
  })
  replace(root, h('main', { id: 'main', class: 'center' }, form))
  keyInput.focus()
}

function start(session: Session): void {
  const live = h('div', { class: 'sr-only', 'aria-live': 'polite', role: 'status' })
  const toast = h('p', { class: 'toast', 'aria-hidden': 'true' })
  const feedState = h('span', { class: 'feed', title: 'Live updates' }, 'connecting…')
  let toastTimer: ReturnType<typeof setTimeout> | undefined
  const ctx: Ctx = {
    session,
    announce(message) {
      live.textContent = message
      toast.textContent = message
      toast.classList.add('shown')
      clearTimeout(toastTimer)
      toastTimer = setTimeout(() => toast.classList.remove('shown'), 3_000)
    },
  }
  const links: [string, string][] = [
    ['#/accounts', 'Accounts'],
    ['#/codes', 'Codes'],
    ['#/webhooks', 'Webhooks'],
  ]
  if (session.admin) links.push(['#/keys', 'API keys'])
  const nav = h(
    'nav',
    { 'aria-label': 'Sections' },
    h(
      'ul',
      {},
      links.map(([href, label]) => h('li', {}, h('a', { href }, label))),
    ),
  )
  const signOut = h('button', { type: 'button', class: 'secondary' }, 'Sign out')
  const main = h('main', { id: 'main', tabindex: -1 })
  replace(
    root,
    h(
      'header',
      { class: 'top' },
      h('a', { class: 'brand', href: '#/accounts' }, 'Tollgate'),
      nav,
      h(
        'div',
        { class: 'who' },
        feedState,
        h(
          'span',
          {},
          session.admin ? 'admin' : 'tenant',
          session.tenant ? ` · ${session.tenant}` : '',
        ),
        signOut,
      ),
    ),
    main,
    live,
    toast,
  )

  let page: Page | null = null
  let pending = new Set<string>()
  let flush: ReturnType<typeof setTimeout> | undefined
  let wasLive: boolean | null = null
  const stopFeed = followChanges(session, {
    onChanges(changes) {
      for (const c of changes) pending.add(c.account)
      if (flush !== undefined) return
      flush = setTimeout(() => {
        flush = undefined
        const accounts = pending
        pending = new Set()
        page?.onChanges?.(accounts)
      }, CHANGE_COALESCE_MS)
    },
    onStatus(up) {
      feedState.textContent = up ? '● live' : '○ reconnecting…'
      feedState.className = up ? 'feed up' : 'feed'
      // Changes during the gap were not seen: the page reads everything again.
      if (up && wasLive === false) page?.refresh?.()
      wasLive = up
    },
  })

  const route = () => {
    page?.dispose?.()
    toast.classList.remove('shown')
    const hash = location.hash.replace(/^#\/?/, '')
    const [section = 'accounts', ...rest] = hash.split('/')
    if (section === 'accounts' && rest.length > 0) {
      page = accountPage(ctx, decodeURIComponent(rest.join('/')))
    } else if (section === 'codes') page = codesPage(ctx)
    else if (section === 'webhooks') page = webhooksPage(ctx)
    else if (section === 'keys' && session.admin) page = keysPage(ctx)
    else page = accountsPage(ctx)
    for (const a of nav.querySelectorAll('a')) {
      const current = a.getAttribute('href') === `#/${section}`
      if (current) a.setAttribute('aria-current', 'page')
      else a.removeAttribute('aria-current')
    }
    document.title = `${page.title} · Tollgate`
    replace(main, page.el)
  }
  const onHash = () => {
    // The skip link's `#main` is not a page.
    if (location.hash !== '' && !location.hash.startsWith('#/')) return
    route()
    main.focus()
  }
  window.addEventListener('hashchange', onHash)
  const leave = (message: string) => {
    onUnauthorized(null)
    stopFeed()
    clearTimeout(flush)
    page?.dispose?.()
    window.removeEventListener('hashchange', onHash)
    clearSession()
    history.replaceState(null, '', location.pathname)
    signIn(message)
  }
  signOut.addEventListener('click', () => leave(''))
  onUnauthorized(() => leave('Your key was refused (revoked?): sign in again.'))
  route()
}

const saved = loadSession()
if (saved === null) {
  signIn()
} else {
  verify(saved.key, saved.tenant)
    .then(start)
    .catch((err: unknown) => {
      clearSession()
      signIn(
        err instanceof ApiError && err.status === 401
          ? 'Your key was refused.'
          : describeError(err),
      )
    })
}
