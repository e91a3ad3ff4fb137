/**
 * The redeem throttle's options (`createMeter({ redeemAttempts })`), resolved in one place:
 * each meter runs the engine with them, and the server holds store-protocol clients to the
 * throttle its own meters run with, so both must read the same defaults.
 */
import { checkInt, type OptionDefaults, readOptions } from '../options-kit.js'

/** Failed redeem attempts allowed per account and window. */
export interface RedeemAttemptsOptions {
  /** @default 10 */
  max?: number
  /** @default 3_600_000 */
  windowMs?: number
}

const DEFAULTS = { max: 10, windowMs: 3_600_000 } satisfies OptionDefaults<RedeemAttemptsOptions>

/**
 * `redeemAttempts` of `owner`, found at `field`, checked with their defaults, as the engine
 * config takes them.
 * @example resolveRedeemAttempts(options.meter?.redeemAttempts, 'createServer', 'meter.redeemAttempts')
 */
export function resolveRedeemAttempts(
  value: RedeemAttemptsOptions | undefined,
  owner: string,
  field: string,
): { redeemMaxFailures: number; redeemWindowMs: number } {
  const o = readOptions(value ?? {}, { owner, field, defaults: DEFAULTS })
  return {
    redeemMaxFailures: checkInt(o.max, `${field}.max`, 1),
    redeemWindowMs: checkInt(o.windowMs, `${field}.windowMs`, 1),
  }
}
