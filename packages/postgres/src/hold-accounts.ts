/**
 * Which account a hold belongs to, for holds this process created recently. commit/release/
 * extend carry only the hold id; knowing the account lets the scheduler put the operation in the
 * account's batch (instead of a parallel one that would wait on the account's row lock) and lets
 * the lock statement skip the id lookup. A hold's account never changes, so a remembered
 * answer is never wrong; a forgotten one only costs the lookup.
 */
export class HoldAccounts {
  readonly #max: number
  /** `tenant\0holdId` → account, oldest first (Map keeps insertion order). */
  readonly #map = new Map<string, string>()

  constructor(max: number) {
    this.#max = max
  }

  get(tenant: string, holdId: string): string | undefined {
    return this.#max === 0 ? undefined : this.#map.get(`${tenant}\u0000${holdId}`)
  }

  set(tenant: string, holdId: string, account: string): void {
    if (this.#max === 0) return
    const map = this.#map
    map.set(`${tenant}\u0000${holdId}`, account)
    if (map.size > this.#max) map.delete(map.keys().next().value as string)
  }

  delete(tenant: string, holdId: string): void {
    this.#map.delete(`${tenant}\u0000${holdId}`)
  }

  clear(): void {
    this.#map.clear()
  }
}
