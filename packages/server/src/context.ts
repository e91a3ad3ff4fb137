/**
 * What the route modules share: the resolved options, the per-tenant meters and the caller's
 * authentication, attached to each request by the `onRequest` hook.
 */

import type { Meter, TenantSettings } from '@tollgate/core'
import type { ApiKeyRecord } from '@tollgate/core/store'
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import type { KeyVerifier } from './api-keys.js'
import type { ChangeFeedHub } from './change-feed.js'
import type { ResolvedServerOptions } from './options.js'
import type { RedeemLimiter } from './redeem-limiter.js'

/** The Fastify instance with zod types, as the route modules see it. */
export type App = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  ZodTypeProvider
>

/** Who is calling: the verified key and the tenant the request acts on. */
export interface Caller {
  key: ApiKeyRecord
  tenant: string
}

export interface ServerContext {
  options: ResolvedServerOptions
  verifier: KeyVerifier
  limiter: RedeemLimiter
  /** The change feed's fan-out to `GET /v1/store/changes` streams. */
  changes: ChangeFeedHub
  /** The REST meter of a tenant (created on first use, never closed: it would close the store). */
  meterFor(tenant: string): Meter
  /**
   * Notes a tenant a request or a new key named, for the sweeper of a store that cannot list
   * its tenants (bounded; a no-op when the store can).
   */
  sawTenant(tenant: string): void
  /**
   * Reads the tenant's stored default settings, or with `patch` stores them first. Throws
   * `InvalidInputError` when the store keeps none, `StoreUnavailableError` when it fails.
   */
  tenantSettings(tenant: string, patch?: Partial<TenantSettings>): Promise<TenantSettings>
  /** The caller of an authenticated request. */
  callerOf(request: FastifyRequest): Caller
  /**
   * The ms left of the request's deadline: its `Tollgate-Deadline-Ms`, capped by the server's
   * `timeoutMs`, counted from its arrival. Throws `StoreUnavailableError` (503) when none is
   * left: the operation is then not run at all.
   */
  timeoutOf(request: FastifyRequest): number
  /** Tells this process's webhook worker to look for work now (a no-op without one). */
  wakeWebhooks(): void
}
