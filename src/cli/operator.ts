// `gitspaces operator`: all controllers, leader-elected, with the concrete providers wired in.
import { readFileSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { OPERATOR_FIELD_MANAGER, type BundleManifest } from '../api/index.ts';
import { createOperator, OPERATOR_VERSION, type OperatorOptions } from '../controllers/operator.ts';
import { KubeClient } from '../runtime/kube.ts';
import { createLogger } from '../runtime/log.ts';
import { flag, hasFlag, podNamespace, secretFrom } from './flags.ts';
import { providerFactory } from './providers.ts';

/** The delegate controller's settings, when a control plane URL is given. */
function delegateOptions(argv: string[]): { delegate?: { url: string; token: string; namespace: string; name: string } } {
  const url = flag(argv, '--control-plane-url') ?? process.env.GITSPACES_CONTROL_PLANE_URL;
  if (!url) return {};
  const token = secretFrom(flag(argv, '--delegate-token-file') ?? process.env.GITSPACES_DELEGATE_TOKEN_FILE, 'GITSPACES_DELEGATE_TOKEN');
  if (!token) throw new Error('--control-plane-url needs a delegate token: --delegate-token-file FILE or $GITSPACES_DELEGATE_TOKEN');
  return {
    delegate: {
      url,
      token,
      namespace: flag(argv, '--delegate-namespace') ?? podNamespace(),
      name: flag(argv, '--delegate-name') ?? hostname(),
    },
  };
}

/**
 * The agent bundles this operator offers VMs (the image carries them; the gateway serves the
 * same directory): their version and sha256 per architecture, from its manifest.json.
 */
export function agentBundleOption(dir: string | undefined): Pick<OperatorOptions, 'agentBundle'> {
  if (!dir) return {};
  const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as BundleManifest;
  const sha256 = Object.fromEntries(Object.entries(m.files).map(([arch, f]) => [arch, f.sha256]));
  return { agentBundle: { version: m.version, sha256 } };
}

export async function runOperator(argv: string[]): Promise<void> {
  const log = createLogger({ component: 'operator' });
  const client = KubeClient.fromDefault({ userAgent: `${OPERATOR_FIELD_MANAGER}/${OPERATOR_VERSION}` });
  const localDir = flag(argv, '--local-dir') ?? process.env.GITSPACES_LOCAL_DIR ?? join(process.env.GITSPACES_CACHE ?? join(homedir(), '.cache', 'gitspaces'), 'local-instances');
  // The agent is this same program: `<node> <this script> agent …`.
  const agentCommand = [process.execPath, ...process.execArgv, process.argv[1] ?? ''];
  const gceEndpoint = flag(argv, '--gce-endpoint') ?? process.env.GITSPACES_GCE_ENDPOINT;
  const ec2Endpoint = flag(argv, '--ec2-endpoint') ?? process.env.GITSPACES_EC2_ENDPOINT;
  // Never inside a cluster: there the operator's token and network are exactly what a local
  // Gitspace's user must not reach.
  const inCluster = Boolean(process.env.KUBERNETES_SERVICE_HOST);
  const allowLocal = hasFlag(argv, '--allow-local-provider') && !inCluster;
  if (hasFlag(argv, '--allow-local-provider') && inCluster) log.warn('--allow-local-provider is ignored inside a cluster; local infras are not served');
  const providerFor = providerFactory({
    client,
    namespace: podNamespace(),
    localDir,
    agentCommand,
    allowLocal,
    ...(gceEndpoint ? { gceEndpoint } : {}),
    ...(ec2Endpoint ? { ec2Endpoint } : {}),
  });
  const leaderElect = hasFlag(argv, '--leader-elect');
  const gatewayURL = flag(argv, '--gateway-url') ?? process.env.GITSPACES_GATEWAY_URL;
  const op = createOperator({
    client,
    log,
    providerFor,
    namespace: podNamespace(),
    healthPort: Number(flag(argv, '--health-port') ?? 8081),
    workers: Number(flag(argv, '--workers') ?? 4),
    ...(leaderElect
      ? {
          leaderElection: {
            namespace: flag(argv, '--leader-election-namespace') ?? podNamespace(),
            name: 'gitspaces-operator',
            ...(flag(argv, '--lease-duration-ms') ? { leaseDurationMs: Number(flag(argv, '--lease-duration-ms')), renewDeadlineMs: Math.round(Number(flag(argv, '--lease-duration-ms')) * 0.66), retryPeriodMs: Math.round(Number(flag(argv, '--lease-duration-ms')) / 5) } : {}),
          },
        }
      : {}),
    ...(flag(argv, '--identity') ? { identity: flag(argv, '--identity') } : {}),
    ...delegateOptions(argv),
    ...(gatewayURL ? { gatewayURL } : {}),
    ...agentBundleOption(flag(argv, '--agent-bundles') ?? process.env.GITSPACES_AGENT_BUNDLES),
  });
  const stop = (sig: string) => {
    log.info('shutting down', { signal: sig });
    void op.manager.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => { stop('SIGTERM'); });
  process.once('SIGINT', () => { stop('SIGINT'); });
  await op.manager.start();
  log.info('operator started', { identity: op.manager.identity, healthPort: op.manager.healthPort, localDir, leaderElect });
}
