/**
 * The meter's events: alerts (`low`, `depleted`, `recovered`, once per crossing) and changes
 * (`granted`, `committed`, `released`, `expired`) that the engine reports in an operation's
 * outcome, handed to the listeners `meter.on()` subscribed, stamped with the meter's tenant.
 */
import type { EngineEvent } from '../engine/state.js'
import { warn } from '../options-kit.js'

type AlertEventType = 'low' | 'depleted' | 'recovered'

/** Payloads of {@link Meter.on}, by event name. */
export type MeterEvents = {
  [K in EngineEvent['type']]: (K extends AlertEventType
    ? Omit<Extract<EngineEvent, { type: AlertEventType }>, 'type'> & { type: K }
    : Extract<EngineEvent, { type: K }>) & { tenant: string }
}
export type MeterEventName = keyof MeterEvents

/** A listener of event `K`. */
export type MeterListener<K extends MeterEventName> = (event: MeterEvents[K]) => void

/** Code of the warning a listener that throws raises. */
const LISTENER_ERROR_WARNING = 'TOLLGATE_LISTENER_ERROR'

/** One meter's listeners, by event name. */
export class MeterEmitter {
  readonly #tenant: string
  readonly #listeners = new Map<string, Set<(event: never) => void>>()

  constructor(tenant: string) {
    this.#tenant = tenant
  }

  /** True when someone listens: the hot path skips {@link emit} otherwise. */
  get listening(): boolean {
    return this.#listeners.size > 0
  }

  on<K extends MeterEventName>(event: K, listener: MeterListener<K>): void {
    let set = this.#listeners.get(event)
    if (!set) {
      set = new Set()
      this.#listeners.set(event, set)
    }
    set.add(listener as (event: never) => void)
  }

  off<K extends MeterEventName>(event: K, listener: MeterListener<K>): void {
    const set = this.#listeners.get(event)
    if (!set) return
    set.delete(listener as (event: never) => void)
    if (set.size === 0) this.#listeners.delete(event)
  }

  /**
   * Calls the listeners of each event. A listener that throws is reported as a warning: the
   * operation already happened, and its caller must get its result (or its own error).
   */
  emit(events: readonly EngineEvent[]): void {
    for (const event of events) {
      const set = this.#listeners.get(event.type)
      if (!set) continue
      const payload = { ...event, tenant: this.#tenant } as never
      for (const fn of set) {
        try {
          fn(payload)
        } catch (err) {
          warn(`Tollgate ${event.type} listener threw: ${String(err)}`, LISTENER_ERROR_WARNING)
        }
      }
    }
  }

  clear(): void {
    this.#listeners.clear()
  }
}
