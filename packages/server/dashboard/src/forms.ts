/** Forms that change something: one idempotency key per intent, errors shown beside the form. */
import { ApiError, describeError } from './api.js'
import { field, h, uid } from './dom.js'

export interface ActionFormOptions {
  /** The form's accessible name (a heading inside it). */
  title: string
  submit: string
  /** Labelled fields ({@link input}, {@link select}). */
  fields: HTMLElement[]
  /**
   * Runs the action with the intent's idempotency key; resolves a success message (or null).
   * A double click or a retry of the same input sends the same key, so it applies once.
   */
  run(form: HTMLFormElement, idempotencyKey: string): Promise<string | null>
  /** Extra content after the status line (results shown once). */
  after?: HTMLElement
}

/**
 * A `<form>` whose submit (button or Enter) runs `run` once at a time. The idempotency key is
 * made when the form is shown and made again after a success or any edit: a new intent.
 */
export function actionForm(o: ActionFormOptions): HTMLFormElement {
  let key = crypto.randomUUID()
  let busy = false
  const headingId = uid('form')
  const status = h('p', { class: 'status', role: 'status', 'aria-live': 'polite' })
  const button = h('button', { type: 'submit' }, o.submit)
  const form = h(
    'form',
    { class: 'card', 'aria-labelledby': headingId, novalidate: true },
    h('h3', { id: headingId }, o.title),
    h('div', { class: 'fields' }, o.fields),
    h('div', { class: 'actions' }, button),
    status,
    o.after,
  )
  form.addEventListener('input', () => {
    key = crypto.randomUUID()
  })
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    if (busy) return
    busy = true
    button.disabled = true
    form.setAttribute('aria-busy', 'true')
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid')
    status.className = 'status'
    status.textContent = 'Working…'
    o.run(form, key)
      .then((message) => {
        key = crypto.randomUUID()
        status.textContent = message ?? 'Done.'
      })
      .catch((err: unknown) => {
        status.className = 'status error'
        status.setAttribute('role', 'alert')
        status.textContent = describeError(err)
        const name = err instanceof ApiError ? err.problem.field?.split('.')[0] : undefined
        const bad = name === undefined ? null : form.querySelector(`[name="${CSS.escape(name)}"]`)
        if (bad instanceof HTMLElement) {
          bad.setAttribute('aria-invalid', 'true')
          bad.focus()
        }
      })
      .finally(() => {
        busy = false
        button.disabled = false
        form.removeAttribute('aria-busy')
      })
  })
  return form
}

export interface InputOptions {
  type?: string
  required?: boolean
  value?: string
  placeholder?: string
  min?: number
  max?: number
  hint?: string
  autocomplete?: string
}

/** A labelled input named `name`. */
export function input(name: string, label: string, o: InputOptions = {}): HTMLElement {
  const el = h('input', {
    id: uid(name),
    name,
    type: o.type ?? 'text',
    required: o.required === true,
    value: o.value,
    placeholder: o.placeholder,
    min: o.min,
    max: o.max,
    autocomplete: o.autocomplete ?? 'off',
    inputmode: o.type === 'number' ? 'numeric' : undefined,
  })
  return field(label, el, o.hint)
}

/** A labelled select named `name`. */
export function select(name: string, label: string, options: [string, string][]): HTMLElement {
  const el = h(
    'select',
    { id: uid(name), name },
    options.map(([value, text]) => h('option', { value }, text)),
  )
  return field(label, el)
}

/** The text of the form's field `name` ('' when absent). */
export function text(form: HTMLFormElement, name: string): string {
  const el = form.elements.namedItem(name)
  return el instanceof HTMLInputElement || el instanceof HTMLSelectElement ? el.value.trim() : ''
}

/**
 * The field as a number, or undefined when empty. A non-number goes to the server as it is
 * typed, so the server's 400 names the field (the dashboard does not duplicate its rules).
 */
export function numberOf(form: HTMLFormElement, name: string): number | string | undefined {
  const v = text(form, name)
  if (v === '') return undefined
  const n = Number(v)
  return Number.isFinite(n) ? n : v
}
