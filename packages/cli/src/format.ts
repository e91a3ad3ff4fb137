/**
 * Human output: aligned tables and the few value formats the commands share. Machine output is
 * `--json`; nothing here is meant to be parsed.
 */

/** How a column is aligned: numbers read best right-aligned. */
export type Align = 'left' | 'right'

/** A column of {@link formatTable}. */
export interface Column {
  header: string
  /** @default 'left' */
  align?: Align
}

/**
 * Lays rows out as a plain-text table: a header line, then one line per row, columns separated
 * by two spaces and padded to the widest cell. Trailing spaces are trimmed so the output diffs
 * cleanly.
 * @example
 * formatTable([{ header: 'TYPE' }, { header: 'DELTA', align: 'right' }], [['grant', '+1,000']])
 * // TYPE    DELTA
 * // grant  +1,000
 */
export function formatTable(
  columns: readonly Column[],
  rows: readonly (readonly string[])[],
): string {
  const widths = columns.map((c, i) =>
    Math.max(width(c.header), ...rows.map((r) => width(r[i] ?? ''))),
  )
  const line = (cells: readonly string[]) =>
    columns
      .map((c, i) => {
        const cell = cells[i] ?? ''
        const pad = ' '.repeat(widths[i]! - width(cell))
        return c.align === 'right' ? pad + cell : cell + pad
      })
      .join('  ')
      .trimEnd()
  return [line(columns.map((c) => c.header)), ...rows.map(line)].join('\n')
}

/** Display width: code points, so an account id with emoji or accents does not skew columns. */
function width(text: string): number {
  return [...text].length
}

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 })

/** `1234567` → `1,234,567`. */
export function formatCredits(amount: number): string {
  return integer.format(amount)
}

/** A signed change: `+1,000`, `-50`, `0`. */
export function formatDelta(delta: number): string {
  return delta > 0 ? `+${integer.format(delta)}` : integer.format(delta)
}

/**
 * A timestamp as ISO 8601 UTC without milliseconds when they are zero; `never`/`-` for null.
 * The server sends ms since epoch; an ISO string is passed through as it is.
 */
export function formatTime(at: number | string | null | undefined, none = '-'): string {
  if (at === null || at === undefined) return none
  if (typeof at === 'string') return at
  return new Date(at).toISOString().replace('.000Z', 'Z')
}

/** Pretty JSON for `--json`: stable, one document per command, newline-terminated. */
export function formatJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`
}
