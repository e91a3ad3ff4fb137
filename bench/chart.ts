/**
 * The chart of `RESULTS.md`: HTTP throughput by scenario as horizontal bars, one panel per
 * framework (each on its own scale), bare highlighted and marked by a dashed line through the
 * panel, every bar labelled with its req/s and its ratio to bare. Plain SVG text: no
 * dependency, and it diffs.
 */
import { FRAMEWORKS, type Framework, frameworkName, type HttpData } from './http-scenarios.js'

const WIDTH = 960
const LABEL_W = 360
const VALUE_W = 140
const BAR_H = 14
const ROW_H = 19
const PANEL_GAP = 26
const TOP = 76
const BAR_X = LABEL_W + 10
const BAR_W = WIDTH - BAR_X - VALUE_W

const COLOR = {
  bare: '#111827',
  tollgate: '#2563eb',
  tollgateLease: '#1e3a8a',
  peer: '#9ca3af',
  grid: '#e5e7eb',
  text: '#111827',
  muted: '#6b7280',
}

const esc = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

const fmt = (x: number) => Math.round(x).toLocaleString('en-US')

/** A "nice" axis maximum and tick step for values up to `max`. */
function axis(max: number): { top: number; step: number } {
  const raw = max / 5
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag
  return { top: Math.ceil(max / step) * step, step }
}

export function throughputChart(data: HttpData, subtitle: string): string {
  const panels = FRAMEWORKS.map((f: Framework) => f)
    .map((f) => ({ f, rows: data.scenarios.filter((s) => s.framework === f) }))
    .filter((p) => p.rows.length > 0)
  // per panel: title 26, rows, 4 below them, axis labels 14, the gap
  const height =
    TOP + panels.reduce((h, p) => h + 44 + p.rows.length * ROW_H + PANEL_GAP, 0) - PANEL_GAP + 10
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="12" role="img" aria-labelledby="chart-title">`,
    `<title id="chart-title">HTTP throughput by scenario, req/s (median) and ratio to the bare framework</title>`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    `<text x="12" y="22" font-size="16" font-weight="600" fill="${COLOR.text}">HTTP throughput by scenario (req/s, median; ratio to bare)</text>`,
    `<text x="12" y="40" fill="${COLOR.muted}">${esc(subtitle)}</text>`,
  ]
  // legend
  const legend: [string, string][] = [
    [COLOR.bare, 'bare framework'],
    [COLOR.peer, 'rate limiters'],
    [COLOR.tollgate, 'Tollgate'],
    [COLOR.tollgateLease, 'Tollgate with lease'],
  ]
  let lx = 12
  for (const [color, name] of legend) {
    out.push(`<rect x="${lx}" y="50" width="12" height="12" fill="${color}"/>`)
    out.push(`<text x="${lx + 17}" y="60" fill="${COLOR.text}">${esc(name)}</text>`)
    lx += 150
  }
  out.push(
    `<line x1="${lx}" y1="56" x2="${lx + 18}" y2="56" stroke="${COLOR.bare}" stroke-dasharray="4 3"/>`,
    `<text x="${lx + 23}" y="60" fill="${COLOR.text}">bare's throughput</text>`,
  )

  let y = TOP
  for (const { f, rows } of panels) {
    const bare = rows.find((r) => r.middleware === 'bare')?.median?.rps ?? null
    const max = Math.max(1, ...rows.map((r) => r.median?.rps ?? 0))
    const { top, step } = axis(max)
    const x = (v: number) => BAR_X + (v / top) * BAR_W
    out.push(
      `<text x="12" y="${y + 16}" font-size="14" font-weight="600" fill="${COLOR.text}">${esc(frameworkName(f))}</text>`,
    )
    const gridTop = y + 26
    const gridBottom = gridTop + rows.length * ROW_H + 4
    for (let v = 0; v <= top + step / 2; v += step) {
      out.push(
        `<line x1="${x(v).toFixed(1)}" y1="${gridTop}" x2="${x(v).toFixed(1)}" y2="${gridBottom}" stroke="${COLOR.grid}"/>`,
        `<text x="${x(v).toFixed(1)}" y="${gridBottom + 12}" text-anchor="middle" font-size="10" fill="${COLOR.muted}">${fmt(v)}</text>`,
      )
    }
    if (bare) {
      // under the bars and their labels
      out.push(
        `<line x1="${x(bare).toFixed(1)}" y1="${gridTop}" x2="${x(bare).toFixed(1)}" y2="${gridBottom}" stroke="${COLOR.bare}" stroke-dasharray="4 3"/>`,
      )
    }
    let ry = gridTop + 4
    for (const r of rows) {
      const isBare = r.middleware === 'bare'
      const color = isBare
        ? COLOR.bare
        : r.middleware === 'tollgate'
          ? r.lease
            ? COLOR.tollgateLease
            : COLOR.tollgate
          : COLOR.peer
      const weight = isBare ? ' font-weight="700"' : ''
      out.push(
        `<text x="${LABEL_W}" y="${ry + BAR_H - 3}" text-anchor="end" fill="${COLOR.text}"${weight}>${esc(r.label)}</text>`,
      )
      if (r.median) {
        const w = Math.max(1, x(r.median.rps) - BAR_X)
        const ratio = bare ? ` · ${(r.median.rps / bare).toFixed(2)}×` : ''
        out.push(
          `<rect x="${BAR_X}" y="${ry}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${color}"><title>${esc(r.id)}: ${fmt(r.median.rps)} req/s</title></rect>`,
          `<text x="${(BAR_X + w + 5).toFixed(1)}" y="${ry + BAR_H - 3}" fill="${COLOR.text}" stroke="#ffffff" stroke-width="3" paint-order="stroke"${weight}>${fmt(r.median.rps)}${ratio}</text>`,
        )
      } else {
        out.push(
          `<text x="${BAR_X + 4}" y="${ry + BAR_H - 3}" font-style="italic" fill="${COLOR.muted}">${esc(r.status)}</text>`,
        )
      }
      ry += ROW_H
    }
    y = gridBottom + 14 + PANEL_GAP
  }
  out.push('</svg>')
  return `${out.join('\n')}\n`
}
