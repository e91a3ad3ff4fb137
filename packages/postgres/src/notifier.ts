/**
 * Change notifications, sent after commit. PostgreSQL serializes the commits of transactions
 * that sent a NOTIFY on one global lock, so a `pg_notify` inside every batch made each commit
 * wait for the others (measured: 7–16% of group-commit throughput). Instead, a batch that
 * committed hands the accounts it changed to the store's notifier, which gathers what arrives
 * meanwhile and sends it as one `pg_notify` statement on a pool connection of its own:
 * - at most one statement in flight; what arrives while it runs waits for the next;
 * - the first change waits at most {@link NOTIFY_DELAY_MS} (after the statement in flight)
 *   before it is sent, so that a busy store sends a few notices a second, not one per batch;
 * - at most {@link MAX_PENDING_ACCOUNTS} accounts are held: beyond that the notice says
 *   "everything changed" (change-feed.ts), and every watcher drops its whole cache.
 * A rolled-back batch hands nothing over. A notice that cannot be sent, or is lost because the
 * process stops between a commit and its notice, leaves watchers' caches on their TTL: it is
 * reported as a warning and never fails an operation, which had committed already.
 */
import { warn } from '@tollgate/core/store'
import { EVERYTHING, noticePayloads } from './change-feed.js'

/** The longest a change waits to be sent once nothing is in flight, in ms. */
export const NOTIFY_DELAY_MS = 5
/** Accounts held for the next notice; beyond it the notice says "everything changed". */
export const MAX_PENDING_ACCOUNTS = 10_000
/** Code of the warning raised when a notice could not be sent. */
export const NOTIFY_FAILED_WARNING = 'TOLLGATE_NOTIFY_FAILED'

/** Sends the payloads of one notice (one statement). */
export type SendNotice = (payloads: string[]) => Promise<unknown>

/** Gathers committed batches' changes and sends them as few notices as delivery allows. */
export class Notifier {
  readonly #pending = new Map<string, readonly [string, string]>()
  /** The pending set overflowed: the next notice says everything changed. */
  #everything = false
  /** The highest sequence number handed over: notices never go back in `seq`. */
  #seq = 0
  #timer: NodeJS.Timeout | null = null
  #flight: Promise<void> | null = null

  /**
   * @param send sends one notice's payloads
   * @param maxPending accounts held at most
   * @default maxPending MAX_PENDING_ACCOUNTS
   * @example new Notifier((p) => driver.query(st.notify, [channel, p]))
   */
  constructor(
    readonly send: SendNotice,
    readonly maxPending = MAX_PENDING_ACCOUNTS,
  ) {}

  /** Hands over what a committed batch changed: its accounts and highest sequence number. */
  add(seq: number, accounts: readonly (readonly [string, string])[]): void {
    if (accounts.length === 0) return
    if (seq > this.#seq) this.#seq = seq
    if (!this.#everything) {
      for (const pair of accounts) this.#pending.set(`${pair[0]}\u0000${pair[1]}`, pair)
      if (this.#pending.size > this.maxPending) {
        this.#everything = true
        this.#pending.clear()
      }
    }
    this.#schedule()
  }

  /** Sends what is pending now and waits until nothing is in flight (the store closes). */
  async flush(): Promise<void> {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    while (this.#flight !== null || this.#hasPending()) {
      if (this.#flight === null) this.#sendPending()
      await this.#flight
    }
  }

  #hasPending(): boolean {
    return this.#everything || this.#pending.size > 0
  }

  #schedule(): void {
    // The statement in flight schedules the next when it ends.
    if (this.#timer !== null || this.#flight !== null) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.#sendPending()
    }, NOTIFY_DELAY_MS)
    this.#timer.unref()
  }

  #sendPending(): void {
    if (this.#flight !== null || !this.#hasPending()) return
    const payloads = noticePayloads(
      this.#seq,
      this.#everything ? EVERYTHING : this.#pending.values(),
    )
    this.#pending.clear()
    this.#everything = false
    this.#flight = this.send(payloads).then(
      () => this.#landed(),
      (err: unknown) => {
        warn(
          `Tollgate: a change notification could not be sent (${err instanceof Error ? err.message : String(err)}); ` +
            'watching caches keep the accounts it named until their TTL',
          NOTIFY_FAILED_WARNING,
        )
        this.#landed()
      },
    )
  }

  #landed(): void {
    this.#flight = null
    if (this.#hasPending()) this.#schedule()
  }
}
