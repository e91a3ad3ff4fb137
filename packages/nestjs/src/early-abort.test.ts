/**
 * Clients that leave before their handler runs: during a slow guard (before the interceptor),
 * and while their credits are being reserved (a slow ledger).
 */
import type { ServerResponse } from 'node:http'
import {
  type CanActivate,
  Controller,
  type ExecutionContext,
  Get,
  Injectable,
  type MessageEvent,
  Sse,
  UseGuards,
} from '@nestjs/common'
import { deferred, ledgerTypes, settledAs } from '@tollgate/conformance/testing'
import { createMeter, memoryStore, type Store } from '@tollgate/core'
import { type Observable, of } from 'rxjs'
import { request } from 'undici'
import { describe, expect, it } from 'vitest'
import { Credits } from './index.js'
import { byHeader, PLATFORMS, rootModule, serve } from './test-support.js'

const state = { ran: 0, reached: deferred(), passed: deferred(), closed: deferred() }

function resetState() {
  state.ran = 0
  state.reached = deferred()
  state.passed = deferred()
  state.closed = deferred()
}

function nodeResponseOf(context: ExecutionContext): ServerResponse {
  const res = context.switchToHttp().getResponse<{ raw?: ServerResponse } & ServerResponse>()
  return res.raw ?? res
}

/** Waits, as a slow auth lookup would, until the client has gone; then lets the request on. */
@Injectable()
class WaitForCloseGuard implements CanActivate {
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const raw = nodeResponseOf(context)
    state.reached.resolve()
    if (!raw.destroyed) await new Promise((resolve) => raw.once('close', resolve))
    state.passed.resolve()
    return true
  }
}

/** Tells the test when the response closed (its listener runs before the interceptor's). */
@Injectable()
class WatchCloseGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    nodeResponseOf(context).once('close', () => state.closed.resolve())
    return true
  }
}

/** Lets every microtask queued so far, and those they queue, run. */
const drain = () => new Promise<void>((resolve) => setImmediate(resolve))

@Controller()
class EarlyController {
  @Get('guarded')
  @UseGuards(WaitForCloseGuard)
  @Credits(5)
  guarded() {
    state.ran++
    return { ran: true }
  }

  @Sse('guarded-events')
  @UseGuards(WaitForCloseGuard)
  @Credits(5)
  guardedEvents(): Observable<MessageEvent> {
    state.ran++
    return of({ data: 'ran' })
  }

  @Get('reserved')
  @UseGuards(WatchCloseGuard)
  @Credits(5)
  reserved() {
    state.ran++
    return { ran: true }
  }
}

interface Gate {
  /** While set, operations wait for it. */
  wait: Promise<void> | null
  /** Resolved when an operation starts waiting. */
  entered: ReturnType<typeof deferred<void>>
}

/** A store whose operations wait for the gate while it is set. */
function gated(inner: Store, gate: Gate): Store {
  return {
    kind: inner.kind,
    execute: async (req) => {
      if (gate.wait) {
        gate.entered.resolve()
        await gate.wait
      }
      return inner.execute(req)
    },
    ledger: (tenant, account, req) => inner.ledger(tenant, account, req),
    createCodes: (tenant, batch) => inner.createCodes(tenant, batch),
    dueAccounts: (tenant, now, limit) => inner.dueAccounts(tenant, now, limit),
    prune: (tenant, before) => inner.prune(tenant, before),
    close: () => inner.close(),
  }
}

describe.each(PLATFORMS)('clients that leave early, on %s', (platform) => {
  it.each(['guarded', 'guarded-events'])(
    'gone before the interceptor (/%s): nothing is reserved and the handler does not run',
    async (path) => {
      resetState()
      const meter = createMeter({ store: memoryStore(), cache: false })
      await meter.grant('u', 100)
      const url = await serve(platform, rootModule({ meter, account: byHeader }, [EarlyController]))
      const controller = new AbortController()
      const pending = request(`${url}/${path}`, {
        headers: { 'x-account': 'u' },
        signal: controller.signal,
      }).catch((e: unknown) => e)
      await state.reached.promise
      controller.abort()
      await pending
      await state.passed.promise
      await drain() // what follows the guard (interceptor, handler) has run by now
      await drain()
      expect(state.ran).toBe(0)
      expect(await ledgerTypes(meter, 'u')).toEqual(['grant'])
    },
  )

  it('gone while the ledger reserves: the hold is released and the handler does not run', async () => {
    resetState()
    const gate: Gate = { wait: null, entered: deferred() }
    const meter = createMeter({ store: gated(memoryStore(), gate), cache: false })
    await meter.grant('u', 100)
    const url = await serve(platform, rootModule({ meter, account: byHeader }, [EarlyController]))
    const open = deferred()
    gate.wait = open.promise
    const controller = new AbortController()
    const pending = request(`${url}/reserved`, {
      headers: { 'x-account': 'u' },
      signal: controller.signal,
    }).catch((e: unknown) => e)
    await gate.entered.promise // the reserve is waiting for the ledger
    controller.abort()
    await pending
    await state.closed.promise // the server saw the client go, the reserve still waiting
    gate.wait = null
    open.resolve()
    expect((await settledAs(meter, 'u', 'release')).total).toBe(100)
    expect(await ledgerTypes(meter, 'u')).toEqual(['grant', 'hold', 'release'])
    expect(state.ran).toBe(0)
  })
})
