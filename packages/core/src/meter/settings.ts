/**
 * One truth for settings (DESIGN §5): a tenant's defaults live in the store, and a meter's
 * `lowBalanceThreshold` / `overdraftLimit` options are only the fallback for what the tenant
 * has not stored. A meter whose options disagree with the stored defaults says so once, with a
 * warning of a stable code, rather than report other figures than the REST API and the CLI.
 * See docs/decisions.md, "Settings".
 */
import type { EngineConfig } from '../engine/state.js'
import { warn } from '../options-kit.js'
import type { Store } from '../store/store.js'
import type { TenantSettings } from '../types.js'

/** Code of the warning a meter option that disagrees with the stored tenant settings raises. */
export const SETTINGS_MISMATCH_WARNING = 'TOLLGATE_SETTINGS_MISMATCH'

const FIELDS = ['lowBalanceThreshold', 'overdraftLimit'] as const

/**
 * What is wrong with the meter's options given the stored settings, one sentence per field;
 * empty when they agree (or the meter has no option of its own). An option where the tenant
 * stored nothing is only mentioned for a `shared` store (other processes, the REST API).
 */
export function settingsDisagreements(
  config: EngineConfig,
  stored: TenantSettings,
  shared: boolean,
): string[] {
  const out: string[] = []
  for (const field of FIELDS) {
    const mine = config[field]
    const theirs = stored[field]
    if (mine === null || mine === theirs) continue
    // In one process's memory there is no other path to disagree with.
    if (theirs === null && !shared) continue
    out.push(
      theirs === null
        ? `${field}: ${mine} is this meter's alone (the tenant has none stored, so the REST API, the CLI and other meters report another figure); store it with PUT /v1/settings or \`tollgate settings set\``
        : `${field}: the stored tenant setting ${theirs} applies, not this meter's ${mine}`,
    )
  }
  return out
}

/** Reads the stored settings once and warns about options that disagree. Never throws. */
export async function checkSettings(
  store: Store,
  tenant: string,
  config: EngineConfig,
): Promise<void> {
  if (typeof store.tenantSettings !== 'function') return
  if (config.lowBalanceThreshold === null && config.overdraftLimit === null) return
  let stored: TenantSettings
  try {
    stored = await store.tenantSettings(tenant)
  } catch {
    // The first operation reports a store that does not answer.
    return
  }
  const problems = settingsDisagreements(config, stored, store.kind !== 'memory')
  if (problems.length > 0) {
    warn(
      `Tollgate: createMeter (tenant ${tenant}): ${problems.join('; ')}`,
      SETTINGS_MISMATCH_WARNING,
    )
  }
}
