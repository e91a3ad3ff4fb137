/**
 * The options kit every factory resolves its options with (`createMeter`, the stores, the
 * server, the middleware): one defaults literal per factory spread under what the caller gave
 * (`undefined` counts as absent), unknown keys warned once per call with a stable warning code,
 * and one checker per kind of value, each throwing an {@link InvalidInputError} that names the
 * field (`cache.max`). Factories run it once, at creation, and keep the resolved values: nothing
 * here runs on the hot path.
 */
import { InvalidInputError } from './errors.js'
import type { Store } from './store/store.js'

/** The `name` (Node's warning type) of every warning Tollgate emits. */
export const WARNING_TYPE = 'TollgateWarning'

/**
 * The `code` of the warning an unknown option key raises: `process.on('warning', (w) => …)`
 * can tell it apart from others by `w.code`.
 */
export const UNKNOWN_OPTION_WARNING = 'TOLLGATE_UNKNOWN_OPTION'

/**
 * Every option of `O`, each with its default, or `undefined` where there is none (required, or
 * off unless given). Declare a factory's defaults with `satisfies OptionDefaults<XOptions>`: an
 * option missing from the literal, or one `XOptions` does not have, is then a type error, so
 * the keys the kit knows cannot drift from the options type.
 * @example
 * const DEFAULTS = { url: undefined, retries: 3 } satisfies OptionDefaults<HttpStoreOptions>
 */
export type OptionDefaults<O> = { readonly [K in keyof Required<O>]: O[K] | undefined }

/** The options `O` after {@link readOptions}: a key with a default is never `undefined`. */
export type ResolvedOptions<O, D> = {
  [K in keyof Required<O>]: K extends keyof D
    ? D[K] extends undefined
      ? O[K]
      : Exclude<O[K], undefined>
    : O[K]
}

/** How {@link readOptions} reads one options object. */
export interface OptionsSpec<D extends object> {
  /** Who takes the options, as warnings name it: `'createMeter'`, `'httpStore'`. */
  readonly owner: string
  /** Every known option with its default (see {@link OptionDefaults}). */
  readonly defaults: D
  /** Known keys that are not in `defaults` (an adapter's own options). @default [] */
  readonly extraKeys?: readonly string[]
  /**
   * Where the object sits, for nested options: `'lease'` makes its keys `lease.size`. Errors
   * about the object itself name this field. @default 'options'
   */
  readonly field?: string
  /**
   * What a value that is not an object is told.
   * @default `${owner} needs an options object` at the top, 'must be an object' when nested
   */
  readonly expected?: string
  /**
   * What an unknown key does: `'warn'` (a typo costs a default), or `'throw'` where a typo
   * would silently change how credits are served. @default 'warn'
   */
  readonly unknown?: 'warn' | 'throw'
}

/**
 * Checks that `options` is an object, reports its unknown keys (once each, per call), and
 * spreads what it gives over `spec.defaults`; a key given as `undefined` keeps its default.
 * Unknown keys are left out of the result. Values are not checked: run the checkers below on
 * the ones the factory uses.
 * @example
 * const o = readOptions(options, { owner: 'httpStore', defaults: HTTP_STORE_DEFAULTS })
 * const retries = checkInt(o.retries, 'retries', 0, 100)
 */
export function readOptions<O extends object, D extends object>(
  options: O | undefined,
  spec: OptionsSpec<D>,
): ResolvedOptions<O, D> {
  const field = spec.field ?? 'options'
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    const nested = field !== 'options'
    throw new InvalidInputError(
      field,
      spec.expected ?? (nested ? 'must be an object' : `${spec.owner} needs an options object`),
    )
  }
  const given = options as Record<string, unknown>
  for (const key of Object.keys(given)) {
    if (!Object.hasOwn(spec.defaults, key) && !spec.extraKeys?.includes(key)) {
      unknownOption(spec, field === 'options' ? key : `${field}.${key}`)
    }
  }
  const out: Record<string, unknown> = { ...(spec.defaults as Record<string, unknown>) }
  // Read through the object (not its own entries only), as a factory reading `options.x` would.
  for (const key of Object.keys(spec.defaults)) {
    const value = given[key]
    if (value !== undefined) out[key] = value
  }
  for (const key of spec.extraKeys ?? []) {
    if (given[key] !== undefined) out[key] = given[key]
  }
  return out as ResolvedOptions<O, D>
}

function unknownOption(spec: OptionsSpec<object>, path: string): void {
  if (spec.unknown === 'throw') throw new InvalidInputError(path, 'is not a known option')
  warn(`${spec.owner}: unknown option "${path}" is ignored`, UNKNOWN_OPTION_WARNING)
}

/** Emits a process warning of type {@link WARNING_TYPE} with a stable `code`. */
export function warn(message: string, code: string): void {
  process.emitWarning(message, WARNING_TYPE, code)
}

/**
 * A safe integer from `min` to `max`; the message says the range (or "non-negative" /
 * "≥ min" when there is no upper bound).
 * @default min 0, max Number.MAX_SAFE_INTEGER
 * @example checkInt(o.connections, 'connections', 1, 10_000)
 */
export function checkInt(
  value: unknown,
  field: string,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidInputError(field, intRange(min, max))
  }
  return value
}

function intRange(min: number, max: number): string {
  if (max < Number.MAX_SAFE_INTEGER) return `must be an integer from ${min} to ${max}`
  return min === 0 ? 'must be a non-negative safe integer' : `must be a safe integer ≥ ${min}`
}

/** `true` or `false`. @example checkBoolean(o.migrate, 'migrate') */
export function checkBoolean(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') throw new InvalidInputError(field, 'must be a boolean')
  return value
}

/** A function. @example const clock = checkFunction<() => number>(o.clock, 'clock') */
export function checkFunction<F>(value: unknown, field: string): F {
  if (typeof value !== 'function') throw new InvalidInputError(field, 'must be a function')
  return value as F
}

/**
 * One of `allowed`; the message lists them.
 * @example checkOneOf(o.overage, 'overage', ['reject', 'clamp', 'overdraft'])
 */
export function checkOneOf<const T extends string>(
  value: unknown,
  field: string,
  allowed: readonly T[],
): T {
  if (!allowed.includes(value as T)) {
    const quoted = allowed.map((a) => `'${a}'`)
    const last = quoted.pop()
    const list = quoted.length === 0 ? last : `${quoted.join(', ')} or ${last}`
    throw new InvalidInputError(field, `must be ${list}`)
  }
  return value as T
}

/**
 * A Tollgate store, as `createMeter` and `createServer` take one; `example` names a store the
 * message suggests.
 * @example checkStore(o.store, 'memoryStore()')
 */
export function checkStore(value: unknown, example: string): Store {
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof (value as Store).execute !== 'function'
  ) {
    throw new InvalidInputError('store', `must be a Tollgate store, e.g. ${example}`)
  }
  return value as Store
}
