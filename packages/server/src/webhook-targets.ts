/**
 * Which URLs a webhook may target (see docs/webhooks.md, "Allowed targets"). The server makes
 * requests on a tenant's behalf, so a tenant must not be able to reach what only the server can:
 * loopback, private networks, link-local addresses (cloud metadata at 169.254.169.254), and the
 * like. Checked when an endpoint is created (literal addresses and `localhost`) and again at
 * every delivery on the addresses the name resolves to then; the request connects to the very
 * address that was checked, so a name that resolves differently a moment later (DNS rebinding)
 * gains nothing.
 */
import { lookup } from 'node:dns/promises'
import { BlockList, isIP } from 'node:net'
import { InvalidInputError } from '@tollgate/core'

/** Networks a webhook may not target unless `allowPrivateTargets`. */
const BLOCKED = new BlockList()
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, cloud metadata
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  BLOCKED.addSubnet(net, prefix, 'ipv4')
}
for (const [net, prefix] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['64:ff9b:1::', 48], // local-use NAT64
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
] as const) {
  BLOCKED.addSubnet(net, prefix, 'ipv6')
}

/** True when `address` (an IP literal) is loopback, private, link-local or otherwise internal. */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address)
  if (family === 4) return BLOCKED.check(address, 'ipv4')
  if (family !== 6) return true
  // IPv4-mapped and IPv4-compatible forms (::ffff:a.b.c.d, ::a.b.c.d) reach the IPv4 address.
  const v4 = embeddedIpv4(address.toLowerCase())
  if (v4 !== null) return BLOCKED.check(v4, 'ipv4')
  return BLOCKED.check(address, 'ipv6')
}

function embeddedIpv4(address: string): string | null {
  const dotted = /^::(?:ffff:)?(\d+\.\d+\.\d+\.\d+)$/.exec(address)
  if (dotted) return dotted[1]!
  const hex = /^::(?:ffff:)?([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(address)
  if (!hex) return null
  const hi = Number.parseInt(hex[1]!, 16)
  const lo = Number.parseInt(hex[2]!, 16)
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`
}

/** What targets a server allows. */
export interface TargetPolicy {
  allowPrivateTargets: boolean
  allowHttp: boolean
}

/** The host of a URL without IPv6 brackets. */
function bareHost(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
}

/**
 * Checks a webhook URL when it is registered: http(s) only, https unless allowed, no
 * credentials in it, and no literal private address or `localhost` unless allowed.
 * Throws {@link InvalidInputError} naming `url`.
 */
export function checkTargetUrl(text: string, policy: TargetPolicy): string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new InvalidInputError('url', 'must be an absolute http(s) URL')
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new InvalidInputError('url', 'must be an http(s) URL')
  }
  if (url.protocol === 'http:' && !policy.allowHttp) {
    throw new InvalidInputError('url', 'must use https (this server does not allow plain http)')
  }
  if (url.username !== '' || url.password !== '') {
    throw new InvalidInputError('url', 'must not carry credentials')
  }
  if (url.hash !== '') throw new InvalidInputError('url', 'must not have a fragment')
  if (!policy.allowPrivateTargets) {
    const host = bareHost(url).toLowerCase()
    if (host === 'localhost' || host.endsWith('.localhost') || host === '') {
      throw new InvalidInputError('url', 'must not target this server (localhost)')
    }
    if (isIP(host) !== 0 && isPrivateAddress(host)) {
      throw new InvalidInputError(
        'url',
        'must not target a private, loopback or link-local address',
      )
    }
  }
  return url.href
}

/** The address a delivery connects to, checked. */
export interface ResolvedTarget {
  address: string
  family: 4 | 6
}

/** Why a delivery was not attempted (a target refused at delivery time). */
export class TargetRefusedError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'TargetRefusedError'
  }
}

/**
 * Resolves a webhook URL's host now and checks every address it gives: a name that resolves to
 * any private address is refused (unless allowed), not only the first, so that the answer
 * cannot be steered by the resolver's order.
 */
export async function resolveTarget(url: URL, policy: TargetPolicy): Promise<ResolvedTarget> {
  const host = bareHost(url)
  const literal = isIP(host)
  const answers =
    literal !== 0
      ? [{ address: host, family: literal }]
      : await lookup(host, { all: true, verbatim: true })
  if (answers.length === 0) throw new TargetRefusedError(`${host} did not resolve`)
  if (!policy.allowPrivateTargets && answers.some((a) => isPrivateAddress(a.address))) {
    throw new TargetRefusedError(`${host} resolves to a private address`)
  }
  const first = answers[0]!
  return { address: first.address, family: first.family === 6 ? 6 : 4 }
}
