// Addresses the gateway decides on: which agent address it may dial (only a private one, from the
// Gitspace's status), and who the client is (the socket's peer, or the address a trusted proxy
// puts in X-Forwarded-For — a header anyone else may forge).
import { BlockList, isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';

function blockList(cidrs: string[]): BlockList {
  const b = new BlockList();
  for (const c of cidrs) {
    const [addr = '', bits] = c.split('/');
    const family = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (!isIP(addr)) throw new Error(`not an IP address or CIDR: ${c}`);
    if (bits === undefined) b.addAddress(addr, family);
    else b.addSubnet(addr, Number(bits), family);
  }
  return b;
}

const PRIVATE = blockList(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7']);
const LOOPBACK = blockList(['127.0.0.0/8']);

/**
 * Whether the gateway may dial this instance address: a literal IP in a private range (RFC 1918,
 * CGNAT, IPv6 ULA); loopback only for a `local` infra, whose instances are processes on this host.
 * Never a name (DNS would decide) nor a public, link-local (cloud metadata) or mapped address.
 */
export function dialable(ip: string, local: boolean): boolean {
  const family = isIP(ip);
  if (family === 0) return false;
  const f = family === 6 ? 'ipv6' : 'ipv4';
  return PRIVATE.check(ip, f) || (local && f === 'ipv4' && LOOPBACK.check(ip, f));
}

/** `::ffff:10.1.2.3` (a dual-stack socket's view of an IPv4 peer) as `10.1.2.3`. */
function plainAddress(a: string): string {
  return a.startsWith('::ffff:') && isIP(a.slice(7)) === 4 ? a.slice(7) : a;
}

export class ClientAddresses {
  private readonly trusted: BlockList;
  private readonly any: boolean;

  /** `trustedProxies`: addresses or CIDRs of the proxies / load balancers in front of the gateway. */
  constructor(trustedProxies: string[] = []) {
    this.trusted = blockList(trustedProxies);
    this.any = trustedProxies.length > 0;
  }

  private isTrusted(a: string): boolean {
    const f = isIP(a);
    return this.any && f !== 0 && this.trusted.check(a, f === 6 ? 'ipv6' : 'ipv4');
  }

  private peer(req: IncomingMessage): string {
    return plainAddress(req.socket.remoteAddress ?? 'unknown');
  }

  /**
   * The client: from a trusted peer, the right-most X-Forwarded-For entry that is not itself a
   * trusted proxy (entries further left are the client's own claims); else the peer.
   */
  client(req: IncomingMessage): string {
    const peer = this.peer(req);
    const xff = req.headers['x-forwarded-for'];
    if (!xff || !this.isTrusted(peer)) return peer;
    const hops = (Array.isArray(xff) ? xff.join(',') : xff).split(',').map((s) => plainAddress(s.trim()));
    for (let i = hops.length - 1; i >= 0; i--) {
      const h = hops[i] ?? '';
      if (!isIP(h)) return peer; // a proxy of ours wrote garbage: do not guess
      if (!this.isTrusted(h) || i === 0) return h;
    }
    return peer;
  }

  /** Whether the client spoke TLS: to us, or (said by a trusted proxy) to the proxy. */
  secure(req: IncomingMessage, tls: boolean): boolean {
    if (tls) return true;
    const proto = req.headers['x-forwarded-proto'];
    if (typeof proto !== 'string' || !this.isTrusted(this.peer(req))) return false;
    return proto.split(',').pop()?.trim().toLowerCase() === 'https';
  }
}
