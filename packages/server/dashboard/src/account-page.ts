/**
 * One account: balance, buckets in burn order, pending holds, usage by day (30 days, SVG bars),
 * the ledger with infinite scroll, and forms to grant, adjust and debit. Live: a change of this
 * account refetches it.
 */
import { ApiError, api, describeError, seg } from './api.js'
import { usageChart } from './chart.js'
import type { Ctx, Page } from './context.js'
import { h, num, replace, table, when } from './dom.js'
import { actionForm, input, numberOf, select, text } from './forms.js'
import type { Balance, Bucket, LedgerEntry, LedgerPage, Usage } from './types.js'

const LEDGER_PAGE = 50
/** Hold entries read to find the pending holds (the API has no list of holds). */
const HOLD_SCAN = 200
const DAY_MS = 86_400_000

/** The engine's burn order: priority, expiry (none last), promotional first; stable otherwise. */
export function burnOrder(buckets: readonly Bucket[]): Bucket[] {
  const expiry = (b: Bucket) => b.expiresAt ?? Number.POSITIVE_INFINITY
  return [...buckets].sort(
    (a, b) =>
      a.priority - b.priority ||
      expiry(a) - expiry(b) ||
      (a.category === b.category ? 0 : a.category === 'promotional' ? -1 : 1),
  )
}

interface PendingHold {
  id: string
  amount: number
  at: number
}

/** Holds with a `hold` entry and no commit or release among `entries` (newest first). */
export function pendingHolds(entries: readonly LedgerEntry[]): PendingHold[] {
  const resolved = new Set<string>()
  const holds = new Map<string, PendingHold>()
  for (const e of entries) {
    if (e.holdId === undefined) continue
    if (e.type === 'commit' || e.type === 'release') resolved.add(e.holdId)
    else if (e.type === 'hold' && !resolved.has(e.holdId)) {
      const h0 = holds.get(e.holdId)
      if (h0 === undefined) holds.set(e.holdId, { id: e.holdId, amount: e.heldDelta, at: e.at })
      else {
        h0.amount += e.heldDelta
        h0.at = e.at
      }
    }
  }
  return [...holds.values()]
}

export function accountPage(ctx: Ctx, account: string): Page {
  const base = `/v1/accounts/${seg(account)}`
  const balanceEl = h('div', { class: 'card', 'aria-live': 'polite' }, 'Loading…')
  const bucketsEl = h('div', {})
  const holdsEl = h('div', {})
  const usageEl = h('div', { class: 'card' }, 'Loading…')
  const ledgerBody = h('tbody', {})
  const ledgerStatus = h('p', { class: 'status', role: 'status' })
  const sentinel = h('div', { class: 'sentinel', 'aria-hidden': 'true' })
  const moreButton = h(
    'button',
    { type: 'button', class: 'secondary', hidden: true },
    'Older entries',
  )
  const seen = new Set<string>()
  let cursor: string | null = null
  let loadingLedger = false
  let disposed = false

  const showBalance = (b: Balance) => {
    replace(
      balanceEl,
      h(
        'dl',
        { class: 'stats' },
        stat('Available', num(b.available), 'big'),
        stat('Total', num(b.total)),
        stat('Held', num(b.held)),
        stat('Debt', num(b.debt), b.debt > 0 ? 'warn' : ''),
        stat('Low', b.low ? 'yes' : 'no', b.low ? 'warn' : ''),
      ),
    )
    const rows = burnOrder(b.buckets).map((k, i) =>
      h(
        'tr',
        {},
        h('td', { class: 'n' }, i + 1),
        h('td', { class: 'n' }, num(k.remaining)),
        h('td', { class: 'n' }, num(k.held)),
        h('td', {}, when(k.expiresAt)),
        h('td', { class: 'n' }, k.priority),
        h('td', {}, k.category),
      ),
    )
    replace(
      bucketsEl,
      rows.length === 0
        ? h('p', {}, 'No buckets.')
        : table(
            'Buckets in burn order',
            ['#', 'Remaining', 'Held', 'Expires', 'Priority', 'Category'],
            rows,
          ),
    )
  }

  const loadBalance = async () => {
    try {
      const b = await api<Balance>(ctx.session, 'GET', `${base}/balance`)
      if (!disposed) showBalance(b)
      return b
    } catch (err) {
      replace(balanceEl, h('p', { class: 'status error' }, describeError(err)))
      return null
    }
  }

  const loadHolds = async (held: number) => {
    try {
      const page = await api<LedgerPage>(ctx.session, 'GET', `${base}/ledger`, {
        query: { limit: HOLD_SCAN, types: 'hold,commit,release' },
      })
      const holds = pendingHolds(page.entries)
      const seenHeld = holds.reduce((sum, x) => sum + x.amount, 0)
      replace(
        holdsEl,
        holds.length === 0
          ? h('p', {}, held > 0 ? `${num(held)} held by older holds.` : 'No pending holds.')
          : [
              table(
                'Pending holds',
                ['Hold', 'Held', 'Since'],
                holds.map((x) =>
                  h(
                    'tr',
                    {},
                    h('td', { class: 'mono' }, x.id),
                    h('td', { class: 'n' }, num(x.amount)),
                    h('td', {}, when(x.at)),
                  ),
                ),
              ),
              seenHeld < held
                ? h('p', {}, `${num(held - seenHeld)} more held by older holds.`)
                : null,
            ],
      )
    } catch (err) {
      replace(holdsEl, h('p', { class: 'status error' }, describeError(err)))
    }
  }

  const loadUsage = async () => {
    const to = Math.ceil(Date.now() / DAY_MS) * DAY_MS
    const from = to - 30 * DAY_MS
    try {
      const usage = await api<Usage>(ctx.session, 'GET', `${base}/usage`, {
        query: { interval: 'day', from, to },
      })
      if (!disposed) replace(usageEl, usageChart(usage, from, to))
    } catch (err) {
      replace(
        usageEl,
        h(
          'p',
          { class: 'status' },
          err instanceof ApiError && err.status === 404
            ? 'Usage by day is not available on this server.'
            : describeError(err),
        ),
      )
    }
  }

  const entryRow = (e: LedgerEntry) =>
    h(
      'tr',
      { 'data-id': e.id },
      h('td', {}, when(e.at)),
      h('td', {}, h('span', { class: `badge t-${e.type}` }, e.type)),
      h('td', { class: 'n' }, e.delta > 0 ? `+${num(e.delta)}` : num(e.delta)),
      h('td', { class: 'n' }, e.heldDelta === 0 ? '' : num(e.heldDelta)),
      h('td', { class: 'n' }, num(e.balanceAfter)),
      h('td', {}, e.reason ?? ''),
    )

  const countEntries = () => {
    ledgerStatus.textContent =
      cursor === null ? `${seen.size} entries, the whole ledger.` : `${seen.size} entries loaded.`
  }

  /** Reads the next (older) page of the ledger. */
  const loadOlder = async () => {
    if (loadingLedger || disposed) return
    loadingLedger = true
    ledgerStatus.textContent = 'Loading entries…'
    try {
      const page = await api<LedgerPage>(ctx.session, 'GET', `${base}/ledger`, {
        query: { limit: LEDGER_PAGE, cursor },
      })
      for (const e of page.entries) {
        if (seen.has(e.id)) continue
        seen.add(e.id)
        ledgerBody.append(entryRow(e))
      }
      cursor = page.nextCursor
      moreButton.hidden = cursor === null
      countEntries()
    } catch (err) {
      ledgerStatus.textContent = describeError(err)
      return
    } finally {
      loadingLedger = false
    }
    // The observer fires on a change of visibility only: a page that left the sentinel in view
    // (a tall screen) would otherwise stop the scroll here.
    if (cursor !== null && !disposed && inView(sentinel)) void loadOlder()
  }

  /** Puts entries newer than those shown on top (a change came in). */
  const loadNewer = async () => {
    if (seen.size === 0) {
      if (cursor === null) await loadOlder()
      return
    }
    const page = await api<LedgerPage>(ctx.session, 'GET', `${base}/ledger`, {
      query: { limit: LEDGER_PAGE },
    })
    const fresh = page.entries.filter((e) => !seen.has(e.id))
    if (fresh.length === page.entries.length && page.nextCursor !== null) {
      // More new entries than one page: a gap would open; read the ledger from the top again.
      seen.clear()
      ledgerBody.replaceChildren()
      cursor = null
      await loadOlder()
      return
    }
    for (const e of fresh.reverse()) {
      seen.add(e.id)
      ledgerBody.prepend(entryRow(e))
    }
    countEntries()
  }

  const observer = new IntersectionObserver(
    (items) => {
      if (items.some((i) => i.isIntersecting) && cursor !== null) void loadOlder()
    },
    { rootMargin: '200px' },
  )
  observer.observe(sentinel)
  moreButton.addEventListener('click', () => void loadOlder())

  const reload = async () => {
    const b = await loadBalance()
    await Promise.all([loadHolds(b?.held ?? 0), loadUsage(), loadNewer().catch(() => undefined)])
  }

  const after = (message: string) => async () => {
    await reload()
    ctx.announce(message)
    return message
  }

  const grant = actionForm({
    title: 'Grant credits',
    submit: 'Grant',
    fields: [
      input('amount', 'Amount', { type: 'number', min: 1, required: true }),
      input('validityDays', 'Valid for (days)', {
        type: 'number',
        min: 1,
        hint: 'empty: no expiry',
      }),
      select('category', 'Category', [
        ['paid', 'paid'],
        ['promotional', 'promotional'],
      ]),
    ],
    async run(form, idempotencyKey) {
      const body: Record<string, unknown> = {
        amount: numberOf(form, 'amount') ?? 0,
        category: text(form, 'category'),
      }
      const days = numberOf(form, 'validityDays')
      if (days !== undefined) body.validityDays = days
      await api(ctx.session, 'POST', `${base}/grants`, { body, idempotencyKey })
      form.reset()
      return after(`Granted ${num(Number(body.amount))} credits.`)()
    },
  })
  const adjust = actionForm({
    title: 'Adjust',
    submit: 'Adjust',
    fields: [
      input('delta', 'Change (+/−)', { type: 'number', required: true }),
      input('reason', 'Reason', { required: true }),
    ],
    async run(form, idempotencyKey) {
      const body = { delta: numberOf(form, 'delta') ?? 0, reason: text(form, 'reason') }
      await api(ctx.session, 'POST', `${base}/adjustments`, { body, idempotencyKey })
      form.reset()
      return after(`Adjusted by ${body.delta}.`)()
    },
  })
  const debit = actionForm({
    title: 'Debit',
    submit: 'Debit',
    fields: [input('amount', 'Amount', { type: 'number', min: 1, required: true })],
    async run(form, idempotencyKey) {
      const body = { amount: numberOf(form, 'amount') ?? 0 }
      await api(ctx.session, 'POST', `${base}/debits`, { body, idempotencyKey })
      form.reset()
      return after(`Debited ${num(Number(body.amount))} credits.`)()
    },
  })

  void reload()
  void loadOlder()

  const titleId = 'account-title'
  return {
    title: account,
    el: h(
      'article',
      { 'aria-labelledby': titleId },
      h('p', {}, h('a', { href: '#/accounts' }, '← Accounts')),
      h('h1', { id: titleId, class: 'mono' }, account),
      h('section', { 'aria-label': 'Balance' }, h('h2', {}, 'Balance'), balanceEl),
      h('section', { 'aria-label': 'Change the balance', class: 'grid' }, grant, adjust, debit),
      h(
        'section',
        { 'aria-labelledby': 'buckets-title' },
        h('h2', { id: 'buckets-title' }, 'Buckets'),
        bucketsEl,
      ),
      h(
        'section',
        { 'aria-labelledby': 'holds-title' },
        h('h2', { id: 'holds-title' }, 'Pending holds'),
        holdsEl,
      ),
      h(
        'section',
        { 'aria-labelledby': 'usage-title' },
        h('h2', { id: 'usage-title' }, 'Usage, last 30 days'),
        usageEl,
      ),
      h(
        'section',
        { 'aria-labelledby': 'ledger-title' },
        h('h2', { id: 'ledger-title' }, 'Ledger'),
        h(
          'div',
          { class: 'table-wrap', role: 'region', 'aria-label': 'Ledger', tabindex: 0 },
          h(
            'table',
            {},
            h('caption', { class: 'sr-only' }, 'Ledger, newest first'),
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ['When', 'Type', 'Change', 'Held', 'Balance after', 'Reason'].map((c) =>
                  h('th', { scope: 'col' }, c),
                ),
              ),
            ),
            ledgerBody,
          ),
        ),
        sentinel,
        ledgerStatus,
        h('div', { class: 'actions' }, moreButton),
      ),
    ),
    onChanges(accounts) {
      if (!accounts.has(account)) return
      void reload().then(() => ctx.announce('Account updated'))
    },
    refresh: () => void reload(),
    dispose() {
      disposed = true
      observer.disconnect()
    },
  }
}

/** The element is within the viewport or just below it (the observer's margin). */
function inView(el: Element): boolean {
  const r = el.getBoundingClientRect()
  return r.bottom >= 0 && r.top <= window.innerHeight + 200
}

function stat(label: string, value: string, cls = ''): HTMLElement {
  return h('div', { class: `stat ${cls}` }, h('dt', {}, label), h('dd', {}, value))
}
