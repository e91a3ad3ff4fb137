/**
 * Refusals as a Nest `HttpException`, so that the app's own exception filters see them, and the
 * filter that answers them as problem+json when nothing else does.
 */
import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException } from '@nestjs/common'
import type { TollgateError } from '@tollgate/core'
import type { ProblemDetails } from '@tollgate/core/metering'
import { sendProblem } from './http.js'

/**
 * A metered route that was not run: the account cannot pay (402), the ledger is unreachable
 * under `failMode: 'closed'` (503), or the account or cost derived from the request is invalid
 * (400). `getResponse()` is the RFC 9457 problem details body
 * (`{ type, title, status, detail, code, account, required, available }` for a 402); the
 * `X-Credits-Cost` / `X-Credits-Remaining` headers are already set on the response when it is
 * thrown, so a filter of yours that answers it keeps them.
 * @example
 * \@Catch(CreditsRefusedException)
 * class PaywallFilter implements ExceptionFilter {
 *   catch(e: CreditsRefusedException, host: ArgumentsHost) {
 *     host.switchToHttp().getResponse<Response>().status(e.getStatus()).json({ upgrade: '/plans' })
 *   }
 * }
 */
export class CreditsRefusedException extends HttpException {
  /** The problem details body (also `getResponse()`). */
  readonly problem: ProblemDetails
  /** The Tollgate error behind it: check `error.code` (`insufficient_credits`…). */
  readonly error: TollgateError

  constructor(problem: ProblemDetails, error: TollgateError) {
    super(problem, problem.status, { cause: error, description: problem.title })
    this.problem = problem
    this.error = error
    this.name = 'CreditsRefusedException'
    // What logs and Nest's SSE error event show, rather than the class name Nest derives.
    this.message = problem.detail
  }
}

/**
 * Answers a {@link CreditsRefusedException} as `application/problem+json` with its status, on
 * `@nestjs/platform-express` and `@nestjs/platform-fastify`. `TollgateModule` registers it as a
 * global filter (unless `exceptionFilter: false`): Nest's default filter would send the body as
 * `application/json`. Filters bound to a controller or a route, and those given to
 * `app.useGlobalFilters()`, are asked before it; see the README for `APP_FILTER` providers.
 * @example app.useGlobalFilters(new CreditsExceptionFilter()) // with exceptionFilter: false
 */
@Catch(CreditsRefusedException)
export class CreditsExceptionFilter implements ExceptionFilter<CreditsRefusedException> {
  catch(exception: CreditsRefusedException, host: ArgumentsHost): void {
    sendProblem(host.switchToHttp().getResponse<unknown>(), exception.problem)
  }
}
