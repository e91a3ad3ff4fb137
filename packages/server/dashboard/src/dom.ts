/** A few DOM helpers: the dashboard builds its pages with these, no framework. */

type Child = Node | string | number | null | undefined | false | readonly Child[]
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>

/** Appends children, skipping `null`, `undefined` and `false`; strings become text nodes. */
export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue
    if (Array.isArray(child)) append(parent, ...(child as Child[]))
    else if (child instanceof Node) parent.appendChild(child)
    else parent.appendChild(document.createTextNode(String(child)))
  }
}

/**
 * An element: `on*` attributes become listeners, `true` a bare attribute, `false`/`null` none.
 * Text is always a text node, never HTML, so nothing from the API is ever parsed as markup.
 * @example h('button', { type: 'button', onclick: () => save() }, 'Save')
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  setAttrs(el, attrs)
  append(el, ...children)
  return el
}

const SVG_NS = 'http://www.w3.org/2000/svg'

/** An SVG element (charts). */
export function s(tag: string, attrs: Attrs = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag) as SVGElement
  setAttrs(el, attrs)
  append(el, ...children)
  return el
}

function setAttrs(el: Element, attrs: Attrs): void {
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value === 'function') {
      el.addEventListener(name.slice(2), value)
    } else if (value === true) {
      el.setAttribute(name, '')
    } else if (value !== false && value !== null && value !== undefined) {
      el.setAttribute(name, String(value))
    }
  }
}

/** Replaces every child of `el`. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren()
  append(el, ...children)
}

const numbers = new Intl.NumberFormat('en-US')
/** An amount with thousands separators. */
export function num(n: number): string {
  return numbers.format(n)
}

/** A timestamp (ms) as local date and time, or a dash. */
export function when(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—'
  const d = new Date(ms)
  const pad = (x: number) => String(x).padStart(2, '0')
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`
}

/** A labelled input (every input has a visible label). */
export function field(
  label: string,
  input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement,
  hint?: string,
): HTMLElement {
  const hintEl = hint === undefined ? null : h('small', { id: `${input.id}-hint` }, hint)
  if (hintEl !== null) input.setAttribute('aria-describedby', hintEl.id)
  return h('div', { class: 'field' }, h('label', { for: input.id }, label), input, hintEl)
}

let ids = 0
/** A document-unique id for a label's `for`. */
export function uid(prefix: string): string {
  ids += 1
  return `${prefix}-${ids}`
}

/** A table in a scrolling wrapper (so a wide table never widens the page on a phone). */
export function table(caption: string, head: string[], rows: HTMLTableRowElement[]): HTMLElement {
  return h(
    'div',
    { class: 'table-wrap', role: 'region', 'aria-label': caption, tabindex: 0 },
    h(
      'table',
      {},
      h('caption', { class: 'sr-only' }, caption),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          head.map((c) => h('th', { scope: 'col' }, c)),
        ),
      ),
      h('tbody', {}, rows),
    ),
  )
}
