/**
 * The Tollgate quickstart: one account's life on the memory store, step by step.
 * `runQuickstart(print)` returns what it did so the smoke test can check it.
 */
import {
  type Balance,
  createMeter,
  InsufficientCreditsError,
  isTollgateError,
  type LedgerEntry,
  memoryStore,
} from '@tollgate/core'

const DAY = 86_400_000

export interface QuickstartResult {
  afterCommit: Balance
  refused: { required: number; available: number }
  redeemed: number
  final: Balance
  ledger: LedgerEntry[]
}

export async function runQuickstart(print: (line: string) => void): Promise<QuickstartResult> {
  // A clock we move by hand, so the demo can show expiry and a new cycle period at once.
  let now = Date.UTC(2026, 0, 31, 9)
  const meter = createMeter({ store: memoryStore(), clock: () => now, lowBalanceThreshold: 20 })
  meter.on('low', (e) => print(`  ⚑ event low: ${e.account} has ${e.available} available`))
  meter.on('recovered', (e) => print(`  ⚑ event recovered: ${e.available} available`))
  const show = (b: Balance) =>
    `total ${b.total}, held ${b.held}, available ${b.available}${b.low ? ' (low)' : ''}`

  print('1. Grant 100 credits to alice that expire in 30 days, and 25 promotional ones.')
  await meter.grant('alice', 100, { validityDays: 30, metadata: { plan: 'starter' } })
  const promo = await meter.grant('alice', 25, { category: 'promotional', priority: 10 })
  print(`   ${show(promo.balance)}`)

  print('2. Reserve 40 before some work; the work used 32, so commit 32.')
  const hold = await meter.reserve('alice', 40, { ttlMs: 30_000 })
  print(
    `   hold ${hold.id} takes ${hold.allocations.map((a) => a.amount).join(' + ')} (promotional first)`,
  )
  const committed = await hold.commit(32)
  print(`   charged ${committed.charged}, freed ${committed.freed}: ${show(committed.balance)}`)

  print('3. Try to reserve 500: refused, all or nothing, with the numbers in the error.')
  let refused = { required: 0, available: 0 }
  try {
    await meter.reserve('alice', 500)
  } catch (err) {
    if (!(isTollgateError(err, 'insufficient_credits') && err instanceof InsufficientCreditsError))
      throw err
    refused = { required: err.required, available: err.available }
    print(
      `   ${err.code} (HTTP ${err.status}): required ${err.required}, available ${err.available}`,
    )
  }

  print('4. Spend 80 with a debit: alice drops under the low-balance threshold of 20.')
  await meter.debit('alice', 80)

  print('5. Create a redeem code worth 50 credits and redeem it (typed in lower case).')
  const { codes } = await meter.createCodes({ credits: 50, count: 1, prefix: 'DEMO' })
  const code = codes[0]!
  print(`   code ${code} (only its hash is stored)`)
  const redeemed = await meter.redeem('alice', code.toLowerCase())
  print(`   +${redeemed.creditsGranted}, available now ${redeemed.newBalance}`)

  print('6. Start a monthly cycle of 30 credits with rollover up to 10, then let 40 days pass.')
  await meter.startCycle('alice', { amount: 30, every: 'month', rollover: { max: 10 } })
  now += 40 * DAY
  const final = await meter.balance('alice', { fresh: true })
  print(`   ${show(final)}`)

  print('7. The ledger, oldest first: every change, and the balance after it.')
  const { entries } = await meter.ledger('alice', { limit: 100 })
  const ledger = [...entries].reverse()
  print(table(ledger))
  await meter.close()
  return {
    afterCommit: committed.balance,
    refused,
    redeemed: redeemed.creditsGranted,
    final,
    ledger,
  }
}

function table(entries: LedgerEntry[]): string {
  const rows = entries.map((e) => [
    new Date(e.at).toISOString().slice(0, 10),
    e.type,
    e.delta > 0 ? `+${e.delta}` : String(e.delta),
    e.heldDelta === 0 ? '' : e.heldDelta > 0 ? `+${e.heldDelta}` : String(e.heldDelta),
    String(e.balanceAfter),
    e.reason ?? '',
  ])
  const head = ['date', 'type', 'delta', 'held', 'balance', 'reason']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: string[]) => `   ${cells.map((c, i) => c.padEnd(widths[i]!)).join('  ')}`
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')
}
