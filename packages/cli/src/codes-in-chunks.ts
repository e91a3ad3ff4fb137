/**
 * `codes create` in chunks: one `POST /v1/codes` per chunk under an idempotency key derived from
 * one run id, retried on transient failures, codes printed as their chunk arrives.
 */
import type { CreateCodesResult } from '@tollgate/core'
import { type CodesBody, ConnectionError, ServerError, type TollgateClient } from './client.js'
import { formatCredits, formatJson } from './format.js'
import type { CliIo } from './io.js'

/** What {@link createCodesInChunks} creates, and how. */
export interface ChunkPlan {
  base: Omit<CodesBody, 'count'>
  count: number
  chunkSize: number
  /** Chunk `i` is sent with `Idempotency-Key: <runId>:<i>`, so a retried chunk is created once. */
  runId: string
  json: boolean
}

/**
 * `codes create` in chunks: one `POST /v1/codes` per chunk, each under its own idempotency key
 * derived from the run id, retried on connection errors and 5xx. Codes are printed as their
 * chunk arrives (a failure later loses nothing already shown); progress goes to stderr.
 * @example
 * await createCodesInChunks(client, io, { base: { credits: 5 }, count: 1000, chunkSize: 100, runId, json: false })
 */
export async function createCodesInChunks(
  client: TollgateClient,
  io: CliIo,
  plan: ChunkPlan,
): Promise<void> {
  const chunks = Math.ceil(plan.count / plan.chunkSize)
  const showProgress = chunks > 1
  const all: string[] = []
  const batchIds: string[] = []
  let created = 0
  let lost = 0
  let first: CreateCodesResult | undefined
  const progress = (done: boolean) => {
    if (!showProgress) return
    const text = `codes: ${formatCredits(created)}/${formatCredits(plan.count)}`
    if (io.stderr.isTTY) io.stderr.write(`\r${text}${done ? '\n' : ''}`)
    else io.stderr.write(`${text}\n`)
  }
  progress(false)
  for (let i = 0; i < chunks; i++) {
    const count = Math.min(plan.chunkSize, plan.count - i * plan.chunkSize)
    let answer: { body: CreateCodesResult; replayed: boolean }
    try {
      answer = await withRetries(() =>
        client.createCodes({ ...plan.base, count }, { idempotencyKey: `${plan.runId}:${i}` }),
      )
    } catch (err) {
      if (showProgress && io.stderr.isTTY) io.stderr.write('\n')
      if (created > 0) {
        const where = plan.json ? 'are lost (no JSON was printed)' : 'were printed above'
        io.stderr.write(
          `${formatCredits(created)} of ${formatCredits(plan.count)} codes were created and ${where}; rerun with --idempotency-key ${plan.runId} to retry the rest without duplicates\n`,
        )
      }
      throw err
    }
    const r = answer.body
    first ??= r
    batchIds.push(r.batchId)
    if (r.codes.length < count) lost += count - r.codes.length
    created += count
    if (plan.json) all.push(...r.codes)
    else if (r.codes.length > 0) io.stdout.write(`${r.codes.join('\n')}\n`)
    progress(i === chunks - 1)
  }
  if (plan.json) {
    io.stdout.write(
      formatJson({
        count: plan.count,
        credits: plan.base.credits,
        codeExpiresAt: first?.codeExpiresAt ?? null,
        batchIds,
        codes: all,
      }),
    )
  }
  io.stderr.write(
    `created ${formatCredits(plan.count)} codes of ${formatCredits(plan.base.credits)} credits each (${batchIds.length} ${batchIds.length === 1 ? 'batch' : 'batches'})\n`,
  )
  if (lost > 0) {
    io.stderr.write(
      `warning: ${formatCredits(lost)} of them were created by an earlier run with the same idempotency key; their codes were shown then and cannot be shown again\n`,
    )
  }
}

/** Retries `fn` on connection errors and 5xx answers: 3 tries, 200 ms then 400 ms apart. */
async function withRetries<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn()
    } catch (err) {
      const transient =
        err instanceof ConnectionError || (err instanceof ServerError && err.status >= 500)
      if (!transient || attempt >= 3) throw err
      // Not unref'd: this wait is the command's work, and nothing else keeps the process alive.
      await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** (attempt - 1)))
    }
  }
}
