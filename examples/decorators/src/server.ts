/**
 * A plain `node:http` server routing to the controller: JSON in and out, problem+json for
 * refusals, and the completion streamed as text chunks.
 */
import http from 'node:http'
import { isTollgateError, type Meter, PROBLEM_CONTENT_TYPE, problemDetails } from '@tollgate/core'
import { type ApiRequest, BadRequestError, createController } from './controller.js'

function sendJson(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  type = 'application/json',
) {
  res.writeHead(status, { 'content-type': type })
  res.end(JSON.stringify(body))
}

/** Refusals (402, 503, 400) as RFC 9457 problem details; anything else is a 500. */
function sendError(res: http.ServerResponse, err: unknown) {
  if (res.headersSent) {
    res.destroy(err instanceof Error ? err : undefined)
    return
  }
  if (err instanceof BadRequestError) {
    sendJson(
      res,
      400,
      { title: 'Bad request', status: 400, detail: err.message },
      PROBLEM_CONTENT_TYPE,
    )
    return
  }
  if (!isTollgateError(err)) console.error(err)
  const problem = problemDetails(err)
  sendJson(res, problem.status, problem, PROBLEM_CONTENT_TYPE)
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  let raw = ''
  for await (const chunk of req) raw += chunk
  if (raw === '') return null
  try {
    return JSON.parse(raw)
  } catch {
    throw new BadRequestError('the body is not JSON')
  }
}

/** Streams the completion. Its first token is awaited before the 200, so a refusal is a 402. */
async function stream(res: http.ServerResponse, tokens: AsyncGenerator<string>) {
  const first = await tokens.next()
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' })
  if (!first.done) {
    res.write(first.value)
    for await (const token of tokens) res.write(token)
  }
  res.end()
}

/** The API as a Node HTTP server; call `.listen()` on it. */
export function createServer(meter: Meter): http.Server {
  const controller = createController(meter)
  return http.createServer(async (req, res) => {
    // The signal the metered methods watch: aborted when the client leaves before the end.
    const abort = new AbortController()
    res.on('close', () => {
      if (!res.writableFinished) abort.abort()
    })
    try {
      const account = req.headers['x-account']
      if (typeof account !== 'string' || account === '') {
        sendJson(res, 401, { title: 'Send an x-account header', status: 401 }, PROBLEM_CONTENT_TYPE)
        return
      }
      const route = `${req.method} ${new URL(req.url ?? '/', 'http://x').pathname}`
      const request = async (): Promise<ApiRequest> => ({
        account,
        body: await readJson(req),
        signal: abort.signal,
      })
      switch (route) {
        case 'GET /v1/balance':
          return sendJson(res, 200, await controller.balance(await request()))
        case 'POST /v1/summaries':
          return sendJson(res, 200, await controller.summarize(await request()))
        case 'POST /v1/completions':
          return await stream(res, controller.complete(await request()))
        default:
          return sendJson(res, 404, { title: 'Not found', status: 404 }, PROBLEM_CONTENT_TYPE)
      }
    } catch (err) {
      sendError(res, err)
    }
  })
}
