/** Usage by day as inline SVG bars (no chart library): spent above, granted as a thin mark. */
import { h, num, s } from './dom.js'
import type { Usage } from './types.js'

const DAY_MS = 86_400_000
const W = 600
const H = 160
const PAD = 20

/** One bar per day of [from, to); days the answer lacks count as zero. */
export function usageChart(usage: Usage, from: number, to: number): HTMLElement {
  const days = Math.max(1, Math.round((to - from) / DAY_MS))
  const spent = new Array<number>(days).fill(0)
  const granted = new Array<number>(days).fill(0)
  for (const p of usage.periods) {
    const i = Math.floor((p.start - from) / DAY_MS)
    if (i < 0 || i >= days) continue
    // Magnitudes: a bar's height whatever sign the report gives an outflow.
    spent[i]! += Math.abs(p.spent)
    granted[i]! += Math.abs(p.granted)
  }
  const max = Math.max(1, ...spent, ...granted)
  const slot = (W - PAD) / days
  const totalSpent = spent.reduce((a, b) => a + b, 0)
  const totalGranted = granted.reduce((a, b) => a + b, 0)
  const label = `Usage over ${days} days: ${num(totalSpent)} spent, ${num(totalGranted)} granted.`
  const bars = spent.map((v, i) => {
    const day = new Date(from + i * DAY_MS).toISOString().slice(0, 10)
    const height = (v / max) * (H - PAD)
    const gh = (granted[i]! / max) * (H - PAD)
    return s(
      'g',
      {},
      s(
        'rect',
        {
          class: 'bar',
          x: PAD + i * slot + 1,
          y: H - PAD - height,
          width: Math.max(1, slot - 2),
          height,
        },
        s('title', {}, `${day}: ${num(v)} spent, ${num(granted[i]!)} granted`),
      ),
      gh > 0
        ? s('rect', {
            class: 'grant',
            x: PAD + i * slot + 1,
            y: H - PAD - gh,
            width: Math.max(1, slot - 2),
            height: 2,
          })
        : null,
    )
  })
  const svg = s(
    'svg',
    { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label, class: 'chart' },
    s('line', { class: 'axis', x1: PAD, y1: H - PAD, x2: W, y2: H - PAD }),
    s('text', { x: 0, y: 12, class: 'tick' }, num(max)),
    s('text', { x: PAD, y: H - 4, class: 'tick' }, new Date(from).toISOString().slice(5, 10)),
    s(
      'text',
      { x: W, y: H - 4, class: 'tick end' },
      new Date(to - DAY_MS).toISOString().slice(5, 10),
    ),
    bars,
  )
  return h(
    'figure',
    { class: 'usage' },
    svg,
    h(
      'figcaption',
      {},
      label,
      ' ',
      h('span', { class: 'legend spent' }, 'spent'),
      ' ',
      h('span', { class: 'legend granted' }, 'granted'),
    ),
  )
}
