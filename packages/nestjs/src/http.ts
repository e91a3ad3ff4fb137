/**
 * What the adapter needs of the platform's request and response, for both HTTP platforms:
 * `@nestjs/platform-express` hands handlers Express's response (a Node `ServerResponse`),
 * `@nestjs/platform-fastify` a Fastify reply whose `raw` is one. Settlement watches the Node
 * response, so it does not depend on which platform, or which Nest version, wrote it.
 */
import type { ServerResponse } from 'node:http'
import { PROBLEM_CONTENT_TYPE, type ProblemDetails, writeProblem } from '@tollgate/core/metering'

/** What the module's callbacks see of a request unless you name your platform's type. */
export interface HttpRequest {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly method?: string
  readonly url?: string
}

/** The part of a Fastify reply used here (no dependency on Fastify's types). */
interface FastifyReplyLike {
  readonly raw: ServerResponse
  readonly sent: boolean
  code(status: number): FastifyReplyLike
  header(name: string, value: string): FastifyReplyLike
  send(payload: Buffer): unknown
}

function isNodeResponse(value: unknown): value is ServerResponse {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as ServerResponse).setHeader === 'function' &&
    typeof (value as ServerResponse).once === 'function'
  )
}

function isFastifyReply(value: unknown): value is FastifyReplyLike {
  const reply = value as Partial<FastifyReplyLike> | null
  return (
    typeof reply === 'object' &&
    reply !== null &&
    isNodeResponse(reply.raw) &&
    typeof reply.code === 'function' &&
    typeof reply.header === 'function' &&
    typeof reply.send === 'function'
  )
}

/** The Node response under the platform's: Fastify's `reply.raw`, or Express's response itself. */
export function nodeResponse(response: unknown): ServerResponse | null {
  const raw = (response as { raw?: unknown } | null)?.raw
  if (isNodeResponse(raw)) return raw
  return isNodeResponse(response) ? response : null
}

/** The status the response was (or is being) sent with. */
export function statusOf(response: unknown): number {
  return nodeResponse(response)?.statusCode ?? 500
}

/**
 * Answers with a problem+json body through the platform: Fastify's reply (so its hooks run and
 * it knows the reply was sent) or the Node response under Express's. Never through Nest's
 * `HttpAdapter.reply()`, which rewrites a non-JSON content type of an error body to
 * `application/json`.
 */
export function sendProblem(response: unknown, problem: ProblemDetails): void {
  if (isFastifyReply(response)) {
    if (response.sent) return
    // A Buffer, so that Fastify sends the media type as set (it adds a charset to a string's).
    response
      .code(problem.status)
      .header('Content-Type', PROBLEM_CONTENT_TYPE)
      .send(Buffer.from(JSON.stringify(problem)))
    return
  }
  const raw = nodeResponse(response)
  if (raw === null) return
  if (!raw.headersSent) writeProblem(raw, problem)
  // Too late for a status: end what was started, as Nest's own filter does.
  else if (!raw.writableEnded) raw.end()
}
