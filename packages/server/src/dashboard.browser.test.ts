/**
 * The dashboard in a real browser: Debian's Chromium (never a downloaded one) driven by
 * playwright-core against a real server on port 0 over the memory store. Waits are Playwright's
 * own (locator.waitFor, waitForFunction) with generous timeouts: no sleeps.
 *
 * With TOLLGATE_SCREENSHOTS=1 the same walk also writes docs/dashboard/*.png.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DASHBOARD_CSP, DASHBOARD_DIR } from './dashboard-routes.js'
import { startServer, type TestServer } from './test-support.js'

const CHROMIUM = '/usr/bin/chromium'
const hasChromium = existsSync(CHROMIUM)
const inCi = process.env.CI === 'true' || process.env.CI === '1'
const screenshots = process.env.TOLLGATE_SCREENSHOTS === '1'
const packageDir = fileURLToPath(new URL('..', import.meta.url))
const shotsDir = fileURLToPath(new URL('../../../docs/dashboard/', import.meta.url))
/** Every wait of the browser: generous, for a loaded 2-core machine. */
const WAIT = { timeout: 20_000 }

/** The newest modification time under `dir` (ms), 0 when it does not exist. */
function newest(dir: string): number {
  if (!existsSync(dir)) return 0
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .reduce((t, e) => Math.max(t, statSync(join(e.parentPath, e.name)).mtimeMs), 0)
}

/** Builds the dashboard when there is no build or its sources are newer than it. */
async function ensureBuilt(): Promise<void> {
  const index = join(DASHBOARD_DIR, 'index.html')
  const sources = Math.max(
    newest(join(packageDir, 'dashboard', 'src')),
    statSync(join(packageDir, 'dashboard', 'index.html')).mtimeMs,
  )
  if (existsSync(index) && statSync(index).mtimeMs >= sources) return
  const { build } = await import('vite')
  await build({ configFile: join(packageDir, 'dashboard', 'vite.config.ts'), logLevel: 'error' })
}

/**
 * Evaluates `expression` in the page. Written as text: this package is type-checked without the
 * DOM library, which the page's globals would need.
 */
function js(page: Page, expression: string): Promise<unknown> {
  return page.evaluate(expression)
}

async function shot(page: Page, name: string): Promise<void> {
  if (!screenshots) return
  mkdirSync(shotsDir, { recursive: true })
  await page.screenshot({ path: join(shotsDir, `${name}.png`), fullPage: true })
}

/** The dashboard's first load, byte count and gzip, for docs/dashboard.md. */
describe.skipIf(!hasChromium && !inCi)(
  'dashboard in Chromium (skipped: no /usr/bin/chromium)',
  { timeout: 60_000 },
  () => {
    let t: TestServer
    let browser: Browser
    let page: Page
    const problems: string[] = []

    beforeAll(async () => {
      if (!hasChromium) throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium`)
      await ensureBuilt()
      t = await startServer({ webhooks: { deliver: false, allowPrivateTargets: true } })
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: [
          '--no-sandbox',
          '--disable-gpu',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          '--no-first-run',
        ],
      })
      const context = await browser.newContext({
        viewport: { width: 1280, height: 860 },
        acceptDownloads: true,
      })
      context.setDefaultTimeout(WAIT.timeout)
      page = await context.newPage()
      // An uncaught error or a CSP violation fails the walk (checked in the last test).
      page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
      page.on('console', (msg) => {
        if (msg.type() === 'error' && msg.text().includes('Content Security Policy')) {
          problems.push(`console: ${msg.text()}`)
        }
      })
    }, 120_000)

    afterAll(async () => {
      await browser?.close()
      await t?.close()
    })

    /**
     * Waits until the account page shows `text` as the available balance (a locator, not
     * waitForFunction: the page's CSP forbids the eval that a function given as text needs).
     */
    const availableIs = (text: string) =>
      page
        .locator('.stat.big dd')
        .filter({ hasText: new RegExp(`^${text}$`) })
        .waitFor(WAIT)

    const grant = (account: string, amount: number) =>
      t.call('POST', `/v1/accounts/${encodeURIComponent(account)}/grants`, { body: { amount } })

    it('serves the page without a key, with a self-only CSP and cached hashed assets', async () => {
      const res = await fetch(`${t.url}/dashboard`)
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8')
      expect(res.headers.get('content-security-policy')).toBe(DASHBOARD_CSP)
      expect(res.headers.get('cache-control')).toBe('no-cache')
      const html = await res.text()
      const script = /src="(\/dashboard\/assets\/[^"]+\.js)"/.exec(html)?.[1]
      expect(script).toBeDefined()
      const js = await fetch(t.url + script!)
      expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
      expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable')
      expect((await fetch(`${t.url}/dashboard/`)).status).toBe(200)
      const missing = await fetch(`${t.url}/dashboard/assets/..%2F..%2Fpackage.json`)
      expect(missing.status).toBe(404)
      expect(missing.headers.get('content-type')).toMatch(/^application\/problem\+json/)
    })

    it('refuses a wrong key with a visible error', async () => {
      await page.goto(`${t.url}/dashboard`)
      await page.getByLabel('API key').fill('tg_sk_wrong_wrongwrongwrong')
      await page.getByLabel('API key').press('Enter')
      await page.getByRole('alert').getByText('That key was refused').waitFor(WAIT)
      expect(await js(page, 'sessionStorage.length')).toBe(0)
      await shot(page, 'sign-in')
    })

    it('signs in with the keyboard alone and finds an account by search', async () => {
      for (const [account, amount] of [
        ['alice-1', 1_000],
        ['alice-2', 50],
        ['bob', 10],
      ] as const) {
        expect((await grant(account, amount)).status).toBe(201)
      }
      await page.goto(`${t.url}/dashboard`)
      // The key field has focus on load: type, then Enter submits the form.
      await page.getByLabel('API key').waitFor(WAIT)
      expect(await js(page, 'document.activeElement?.getAttribute("type")')).toBe('password')
      await page.keyboard.type(t.adminKey)
      // Focus is visible.
      expect(await js(page, 'getComputedStyle(document.activeElement).outlineStyle')).toBe('solid')
      await page.keyboard.press('Enter')
      await page.getByRole('heading', { name: 'Accounts', level: 1 }).waitFor(WAIT)
      expect(await js(page, 'sessionStorage.getItem("tollgate.key")')).toBe(t.adminKey)
      expect(await js(page, 'localStorage.length')).toBe(0)
      await page.locator('text=● live').waitFor(WAIT)

      await page.getByLabel('Search accounts').fill('alice')
      await page.getByLabel('Search accounts').press('Enter')
      await page.getByRole('link', { name: 'alice-2' }).waitFor(WAIT)
      await page.getByText('2 accounts shown.').waitFor(WAIT)
      expect(await page.getByRole('link', { name: 'bob' }).count()).toBe(0)
      await shot(page, 'accounts')
      await page.getByRole('link', { name: 'alice-1' }).click()
      await page.getByRole('heading', { name: 'alice-1', level: 1 }).waitFor(WAIT)
    })

    /** Opens an account by its id from the accounts page (what an operator with an id does). */
    async function openAccount(account: string): Promise<void> {
      await page.getByRole('link', { name: 'Accounts', exact: true }).click()
      await page.getByLabel('Open account by id').fill(account)
      await page.getByLabel('Open account by id').press('Enter')
      await page.getByRole('heading', { name: account, level: 1 }).waitFor(WAIT)
    }

    it('grants credits once per intent and shows the balance and the ledger change', async () => {
      await openAccount('alice-1')
      const available = page.locator('.stat.big dd')
      await availableIs('1,000')
      const grantForm = page.getByRole('form', { name: 'Grant credits' })
      await grantForm.getByLabel('Amount').fill('500')
      // A double click sends one request with one idempotency key.
      await grantForm.getByRole('button', { name: 'Grant' }).dblclick()
      await grantForm.getByText('Granted 500 credits.').waitFor(WAIT)
      await availableIs('1,500')
      await page.locator('tbody tr', { hasText: '+500' }).first().waitFor(WAIT)
      const ledger = await t.call<{ entries: { type: string }[] }>(
        'GET',
        '/v1/accounts/alice-1/ledger',
      )
      expect(ledger.body.entries.filter((e) => e.type === 'grant')).toHaveLength(2)
      expect(await available.textContent()).toBe('1,500')

      // Problems are shown: a 402 with the figures, a 400 naming the field.
      const debitForm = page.getByRole('form', { name: 'Debit' })
      await debitForm.getByLabel('Amount').fill('999999')
      await debitForm.getByRole('button', { name: 'Debit' }).click()
      await debitForm
        .getByText('Insufficient credits: 999999 required, 1500 available.')
        .waitFor(WAIT)
      await grantForm.getByLabel('Amount').fill('0')
      await grantForm.getByRole('button', { name: 'Grant' }).click()
      await grantForm
        .getByRole('alert')
        .getByText(/amount: must be/)
        .waitFor(WAIT)
      expect(await grantForm.getByLabel('Amount').getAttribute('aria-invalid')).toBe('true')
    })

    it('shows a change made through the API without reloading', async () => {
      await js(page, 'window.notReloaded = true')
      const res = await t.call('POST', '/v1/accounts/alice-1/debits', { body: { amount: 200 } })
      expect(res.status).toBe(200)
      await availableIs('1,300')
      await page.locator('tbody tr', { hasText: '-200' }).first().waitFor(WAIT)
      expect(await js(page, 'window.notReloaded')).toBe(true)
      // The usage chart (GET /v1/accounts/{account}/usage) counts today's debit.
      await page.getByRole('img', { name: /200 spent, 1,500 granted/ }).waitFor(WAIT)
      // A hold taken elsewhere shows as held and pending.
      const hold = await t.call<{ id: string }>('POST', '/v1/accounts/alice-1/holds', {
        body: { amount: 100, ttlMs: 3_600_000 },
      })
      expect(hold.status).toBe(201)
      await page.getByRole('cell', { name: hold.body.id }).waitFor(WAIT)
      await availableIs('1,200')
      await shot(page, 'account')
    })

    it('reads the ledger page by page as it scrolls (cursor paging)', async () => {
      expect((await grant('scroll', 1_000)).status).toBe(201)
      for (let i = 0; i < 59; i += 1) {
        const res = await t.call('POST', '/v1/accounts/scroll/debits', { body: { amount: 1 } })
        expect(res.status).toBe(200)
      }
      await openAccount('scroll')
      await page.getByText('50 entries loaded.').waitFor(WAIT)
      await page.locator('.sentinel').scrollIntoViewIfNeeded()
      await page.getByText('60 entries, the whole ledger.').waitFor(WAIT)
      expect(await page.locator('tbody tr[data-id]').count()).toBe(60)
    })

    it('creates redeem codes and downloads them as CSV', async () => {
      await page.getByRole('link', { name: 'Codes' }).click()
      const form = page.getByRole('form', { name: 'Create a batch' })
      await form.getByLabel('Credits per code').fill('25')
      await form.getByLabel('How many codes').fill('3')
      await form.getByLabel('Prefix').fill('PROMO')
      await form.getByRole('button', { name: 'Create codes' }).click()
      const link = page.getByRole('link', { name: /Download tollgate-codes-PROMO/ })
      await link.waitFor(WAIT)
      await shot(page, 'codes')
      const [download] = await Promise.all([page.waitForEvent('download', WAIT), link.click()])
      const path = await download.path()
      const lines = readFileSync(path, 'utf8').trim().split('\r\n')
      expect(lines[0]).toBe('code,credits')
      expect(lines.slice(1)).toHaveLength(3)
      for (const line of lines.slice(1)) expect(line).toMatch(/^PROMO-[0-9A-Z-]+,25$/)
      // The codes redeem.
      const code = lines[1]!.split(',')[0]!
      const redeemed = await t.call('POST', '/v1/accounts/carol/redemptions', { body: { code } })
      expect(redeemed.status).toBe(201)
    })

    it('adds a webhook (secret shown once) and manages keys as an admin', async () => {
      await page.getByRole('link', { name: 'Webhooks' }).click()
      const form = page.getByRole('form', { name: 'Add an endpoint' })
      await form.getByLabel('URL').fill('http://127.0.0.1:9/hooks')
      await form.getByRole('button', { name: 'Add endpoint' }).click()
      await page.locator('output.secret', { hasText: 'whsec_' }).waitFor(WAIT)
      await page.getByRole('cell', { name: 'http://127.0.0.1:9/hooks' }).waitFor(WAIT)
      await shot(page, 'webhooks')

      await page.getByRole('link', { name: 'API keys' }).click()
      const keyForm = page.getByRole('form', { name: 'Create a key' })
      await keyForm.getByLabel('Name').fill('billing job')
      await keyForm.getByRole('button', { name: 'Create key' }).click()
      await page.locator('output.secret', { hasText: 'tg_sk_' }).waitFor(WAIT)
      await page.getByRole('cell', { name: 'billing job' }).waitFor(WAIT)
      await shot(page, 'keys')
    })

    it('renders on a phone (390×844) without horizontal scrolling', async () => {
      await page.setViewportSize({ width: 390, height: 844 })
      await openAccount('alice-1')
      await page.locator('.stat.big dd').waitFor(WAIT)
      const overflow = await js(
        page,
        'document.documentElement.scrollWidth - document.documentElement.clientWidth',
      )
      expect(overflow).toBeLessThanOrEqual(0)
      await shot(page, 'phone')

      // Sign out forgets the key.
      await page.getByRole('button', { name: 'Sign out' }).click()
      await page.getByLabel('API key').waitFor(WAIT)
      expect(await js(page, 'sessionStorage.getItem("tollgate.key")')).toBeNull()
    })

    it('gives a tenant key no key management and signs it out once revoked', async () => {
      const { id, key } = await t.createKey('default')
      await page.setViewportSize({ width: 1280, height: 860 })
      await page.getByLabel('API key').fill(key)
      await page.getByLabel('API key').press('Enter')
      await page.getByRole('heading', { name: 'Accounts', level: 1 }).waitFor(WAIT)
      expect(await page.getByRole('link', { name: 'API keys' }).count()).toBe(0)
      expect((await t.call('DELETE', `/v1/keys/${id}`)).status).toBe(200)
      await page.getByRole('link', { name: 'Webhooks' }).click()
      await page.getByRole('alert').getByText('Your key was refused').waitFor(WAIT)
      expect(await js(page, 'sessionStorage.getItem("tollgate.key")')).toBeNull()
      expect(problems).toEqual([])
    })
  },
)
