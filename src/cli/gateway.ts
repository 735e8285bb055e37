// `gitspaces gateway`: the authenticated gateway in front of every Gitspace (and, with
// --agent-bundles DIR or $GITSPACES_AGENT_BUNDLES, the agent bundles VMs download at boot).
import { GATEWAY_FIELD_MANAGER } from '../api/index.ts';
import { Gateway } from '../gateway/server.ts';
import { KubeClient } from '../runtime/kube.ts';
import { createLogger } from '../runtime/log.ts';
import { flag, podNamespace, tlsFiles } from './flags.ts';

export async function runGateway(argv: string[]): Promise<void> {
  const log = createLogger({ component: 'gateway' });
  const cert = flag(argv, '--tls-cert') ?? process.env.GITSPACES_TLS_CERT;
  const key = flag(argv, '--tls-key') ?? process.env.GITSPACES_TLS_KEY;
  const agentBundles = flag(argv, '--agent-bundles') ?? process.env.GITSPACES_AGENT_BUNDLES;
  // Proxies / load balancers in front of the gateway (addresses or CIDRs, comma-separated): only
  // their X-Forwarded-For and X-Forwarded-Proto are believed.
  const trusted = flag(argv, '--trusted-proxies') ?? process.env.GITSPACES_TRUSTED_PROXIES;
  const num = (name: string) => (flag(argv, name) !== undefined ? Number(flag(argv, name)) : undefined);
  const gw = new Gateway({
    client: KubeClient.fromDefault({ userAgent: GATEWAY_FIELD_MANAGER }),
    log,
    namespace: podNamespace(),
    port: num('--port') ?? (cert ? 8443 : 8080),
    ...(flag(argv, '--address') ? { address: flag(argv, '--address') } : {}),
    ...tlsFiles(cert, key),
    ...(agentBundles ? { agentBundles } : {}),
    ...(num('--activity-interval-ms') !== undefined ? { activityIntervalMs: num('--activity-interval-ms') } : {}),
    ...(num('--idle-ms') !== undefined ? { idleMs: num('--idle-ms') } : {}),
    ...(num('--drain-ms') !== undefined ? { drainMs: num('--drain-ms') } : {}),
    ...(num('--drain-delay-ms') !== undefined ? { drainDelayMs: num('--drain-delay-ms') } : {}),
    ...(num('--jwks-cooldown-ms') !== undefined ? { jwksCooldownMs: num('--jwks-cooldown-ms') } : {}),
    ...(trusted ? { trustedProxies: trusted.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
    ...(num('--headers-timeout-ms') !== undefined ? { headersTimeoutMs: num('--headers-timeout-ms') } : {}),
    ...(num('--request-timeout-ms') !== undefined ? { requestTimeoutMs: num('--request-timeout-ms') } : {}),
    ...(num('--http-idle-ms') !== undefined ? { httpIdleMs: num('--http-idle-ms') } : {}),
    ...(num('--max-connections') !== undefined ? { maxConnections: num('--max-connections') } : {}),
    ...(num('--session-check-ms') !== undefined ? { sessionCheckMs: num('--session-check-ms') } : {}),
  });
  const stop = (signal: string) => {
    log.info('draining', { signal });
    void gw.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => { stop('SIGTERM'); });
  process.once('SIGINT', () => { stop('SIGINT'); });
  await gw.start();
  process.stdout.write(`gateway listening on ${gw.port}\n`);
}
