/** What every page gets from the shell. */
import type { Session } from './api.js'

export interface Ctx {
  session: Session
  /** Says `message` to screen readers (a polite live region) and shows it briefly. */
  announce(message: string): void
}

/** A page of the dashboard. */
export interface Page {
  title: string
  el: HTMLElement
  /** Accounts of the session's tenant that changed (from the change feed). */
  onChanges?(accounts: ReadonlySet<string>): void
  /** Everything may have changed (the feed reconnected after a gap). */
  refresh?(): void
  /** Stops observers and timers when the page is left. */
  dispose?(): void
}
