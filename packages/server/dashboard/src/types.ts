/** The API's answers the dashboard reads (see `/openapi.json`). */

export interface AccountRow {
  account: string
  total: number
  held: number
  available: number
  debt: number
  low: boolean
  updatedAt: number | null
}

export interface AccountList {
  accounts: AccountRow[]
  nextCursor: string | null
}

export interface Bucket {
  id: string
  remaining: number
  held: number
  expiresAt: number | null
  priority: number
  category: 'paid' | 'promotional'
}

export interface Balance {
  account: string
  total: number
  held: number
  available: number
  debt: number
  low: boolean
  buckets: Bucket[]
  asOf: number
}

export interface LedgerEntry {
  id: string
  account: string
  type: string
  delta: number
  heldDelta: number
  debtDelta: number
  balanceAfter: number
  holdId?: string
  reason?: string
  metadata: Record<string, unknown>
  at: number
}

export interface LedgerPage {
  entries: LedgerEntry[]
  nextCursor: string | null
}

export interface UsagePeriod {
  start: number
  granted: number
  spent: number
  released: number
  expired: number
}

export interface Usage {
  account: string
  interval: string
  from: number
  to: number
  periods: UsagePeriod[]
}
