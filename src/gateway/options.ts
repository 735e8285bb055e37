// The gateway's settings: what `gitspaces gateway` (and tests) may set, and the defaults.
import { hostname } from 'node:os';
import type { KubeClient } from '../runtime/kube.ts';
import type { Logger } from '../runtime/log.ts';

export interface GatewayOptions {
  client: KubeClient;
  log: Logger;
  port: number;
  address?: string;
  tls?: { cert: string; key: string };
  /** How often agents hear about use (batched). */
  activityIntervalMs?: number;
  /** Upgraded connections (WebSocket, SSH) that carry nothing this long are closed. */
  idleMs?: number;
  /** How long SIGTERM waits for requests in flight. */
  drainMs?: number;
  /** How long it keeps serving, not ready, before it stops accepting (so load balancers notice). */
  drainDelayMs?: number;
  jwksCooldownMs?: number;
  /** The gateway's own namespace: the hop key Secret, and key-set Secrets named without one. */
  namespace?: string;
  /** Failed credentials a client may present in a burst, and the refill per second. */
  authFailureBurst?: number;
  authFailureRate?: number;
  /** The agent bundles to serve (scripts/bundle-agent.ts's output); without it, bundle paths are 404. */
  agentBundles?: string;
  /** Addresses / CIDRs of proxies in front of the gateway whose X-Forwarded-For/-Proto it believes. */
  trustedProxies?: string[];
  /** A client must send a request's headers within this, and its whole request (not the response) within requestTimeoutMs. */
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** A plain HTTP connection (not upgraded) that carries nothing this long is closed. */
  httpIdleMs?: number;
  /** Open client connections (upgraded ones included) beyond which requests get 503. */
  maxConnections?: number;
  /** Where audit lines go (default: stdout, one JSON object per line). */
  audit?: (line: string) => void;
  /** This replica's name (refresh leases); default the host name. */
  replica?: string;
  /** How often sessions are refreshed ahead of time and connections of ended sessions closed. */
  sessionCheckMs?: number;
}

export type Settings = Required<Omit<GatewayOptions, 'tls' | 'address' | 'agentBundles' | 'audit'>> & Pick<GatewayOptions, 'tls' | 'address' | 'agentBundles' | 'audit'>;

export const DEFAULTS = {
  activityIntervalMs: 30_000, idleMs: 30 * 60_000, drainMs: 20_000, drainDelayMs: 5_000, namespace: 'default', jwksCooldownMs: 30_000, authFailureBurst: 20, authFailureRate: 1,
  trustedProxies: [], headersTimeoutMs: 20_000, requestTimeoutMs: 300_000, httpIdleMs: 300_000, maxConnections: 10_000, replica: hostname(), sessionCheckMs: 5_000,
} satisfies Partial<Settings>;
