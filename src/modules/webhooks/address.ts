// Where a webhook may be sent (server-side request forgery): only http(s) URLs whose host resolves
// to public addresses, checked when an endpoint is saved and again at each send, where the request
// then connects to the address that was checked (a DNS answer that changes between the check and
// the connection — rebinding — cannot take it elsewhere). RELAYDESK_ALLOW_PRIVATE_WEBHOOKS lifts the
// address rule for tests and the demo, never the scheme rule.
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { validation } from '../../platform/errors.ts';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to every address it has (injected in tests). */
export type Resolve = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolve: Resolve = async (hostname) =>
  (await lookup(hostname, { all: true, verbatim: true })).map((a) => ({
    address: a.address,
    family: a.family === 6 ? 6 : 4,
  }));

// Addresses no webhook may reach. BlockList also matches an IPv4 rule against the IPv4-mapped IPv6
// form of the address (::ffff:127.0.0.1, ::ffff:7f00:1).
const FORBIDDEN = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network", 0.0.0.0 itself
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, cloud metadata services
  ['172.16.0.0', 12],
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.168.0.0', 16],
  ['198.18.0.0', 15], // benchmarking
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const)
  FORBIDDEN.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 96], // unspecified (::), loopback (::1), IPv4-compatible (deprecated)
  ['64:ff9b:1::', 48], // local-use NAT64
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
] as const)
  FORBIDDEN.addSubnet(net, prefix, 'ipv6');

/** The IPv4 address a NAT64 address (64:ff9b::/96) stands for, if it is one. */
function nat64Embedded(address: string): string | undefined {
  const m = /^64:ff9b::(?:ffff:)?([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (m) {
    const hi = parseInt(m[1]!, 16);
    const lo = parseInt(m[2]!, 16);
    return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
  }
  const dotted = /^64:ff9b::(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return dotted?.[1];
}

/** Whether an IP address is loopback, private, link-local, CGNAT, unspecified or otherwise not public. */
export function isForbiddenAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, '');
  // A zone index (fe80::1%eth0) only exists on link-local addresses.
  if (bare.includes('%')) return true;
  const family = isIP(bare);
  if (family === 0) return true;
  if (family === 4) return FORBIDDEN.check(bare, 'ipv4');
  if (FORBIDDEN.check(bare, 'ipv6')) return true;
  const embedded = nat64Embedded(bare.toLowerCase());
  return embedded !== undefined && FORBIDDEN.check(embedded, 'ipv4');
}

/** Why a URL is refused: a `validation_failed` on the field. */
export class UrlRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UrlRefused';
  }
}

/** Parses a webhook URL: http or https, no credentials, no fragment. Throws UrlRefused. */
export function parseWebhookUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UrlRefused('is not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UrlRefused('must be http or https');
  // The URL is shown by the API: credentials in it would be shown too. Receivers verify signatures.
  if (url.username || url.password) throw new UrlRefused('must not contain credentials');
  if (url.hash) throw new UrlRefused('must not contain a fragment');
  return url;
}

/** The host of a parsed URL as an address or a name (IPv6 literals lose their brackets). */
const hostOf = (url: URL) => url.hostname.replace(/^\[|\]$/g, '');

/**
 * The address a request to the URL connects to: every address the host resolves to must be public
 * (unless private ones are allowed); the first is used. Throws UrlRefused for a refused address, and
 * the resolver's own error (ENOTFOUND, EAI_AGAIN) when the name does not resolve.
 */
export async function vetUrl(
  url: URL,
  options: { allowPrivate: boolean; resolve?: Resolve | undefined },
): Promise<ResolvedAddress> {
  const host = hostOf(url);
  const literal = isIP(host);
  const addresses: ResolvedAddress[] = literal
    ? [{ address: host, family: literal === 6 ? 6 : 4 }]
    : await (options.resolve ?? systemResolve)(host);
  if (addresses.length === 0) throw new UrlRefused(`${host} has no address`);
  if (!options.allowPrivate) {
    const bad = addresses.find((a) => isForbiddenAddress(a.address));
    if (bad)
      throw new UrlRefused(
        `${literal ? host : `${host} resolves to ${bad.address}, which`} is a loopback, private or link-local address`,
      );
  }
  return addresses[0]!;
}

/**
 * Checks a URL as an endpoint is saved: answers it normalised, or throws 400 validation_failed on
 * `path` (a name that does not resolve is refused too: nothing could be delivered to it).
 */
export async function checkEndpointUrl(
  text: string,
  options: { allowPrivate: boolean; resolve?: Resolve | undefined; path?: string },
): Promise<string> {
  const path = options.path ?? '/url';
  try {
    const url = parseWebhookUrl(text);
    await vetUrl(url, options);
    return url.href;
  } catch (err) {
    if (err instanceof UrlRefused) throw validation(`url ${err.message}`, [{ path, message: err.message }]);
    const code = (err as { code?: string }).code;
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'ENODATA')
      throw validation('url does not resolve', [{ path, message: `its host does not resolve (${code})` }]);
    throw err;
  }
}
