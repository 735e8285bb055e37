// `gitspaces operator`: all controllers, leader-elected, with the concrete providers wired in.
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { GitspaceInfra } from '../api/index.ts';
import { createOperator } from '../controllers/operator.ts';
import { LocalProvider } from '../providers/local/provider.ts';
import { ProviderError, type VmProvider } from '../providers/types.ts';
import { KubeClient } from '../runtime/kube.ts';
import { createLogger } from '../runtime/log.ts';
import { flag, hasFlag } from './flags.ts';

export async function runOperator(argv: string[]): Promise<void> {
  const log = createLogger({ component: 'operator' });
  const client = KubeClient.fromDefault();
  const localDir = flag(argv, '--local-dir') ?? process.env.GITSPACES_LOCAL_DIR ?? join(process.env.GITSPACES_CACHE ?? join(homedir(), '.cache', 'gitspaces'), 'local-instances');
  // The agent is this same program: `<node> <this script> agent …`.
  const agentCommand = [process.execPath, ...process.execArgv, process.argv[1] ?? ''];
  const locals = new Map<string, LocalProvider>();
  const providerFor = (infra: GitspaceInfra): VmProvider => {
    const p = infra.spec.provider;
    if (p.local) {
      const dir = p.local.baseDir ?? join(localDir, infra.metadata.name ?? 'local');
      let lp = locals.get(dir);
      if (!lp) locals.set(dir, (lp = new LocalProvider({ baseDir: dir, agentCommand })));
      return lp;
    }
    const kind = p.gcp ? 'gcp' : 'aws';
    throw new ProviderError('InvalidConfig', `spec.provider.${kind}: the ${kind} provider is not available in this version of the operator`, { field: `spec.provider.${kind}` });
  };
  const leaderElect = hasFlag(argv, '--leader-elect');
  const op = createOperator({
    client,
    log,
    providerFor,
    healthPort: Number(flag(argv, '--health-port') ?? 8081),
    workers: Number(flag(argv, '--workers') ?? 4),
    ...(leaderElect
      ? {
          leaderElection: {
            namespace: flag(argv, '--leader-election-namespace') ?? process.env.POD_NAMESPACE ?? 'default',
            name: 'gitspaces-operator',
            ...(flag(argv, '--lease-duration-ms') ? { leaseDurationMs: Number(flag(argv, '--lease-duration-ms')), renewDeadlineMs: Math.round(Number(flag(argv, '--lease-duration-ms')) * 0.66), retryPeriodMs: Math.round(Number(flag(argv, '--lease-duration-ms')) / 5) } : {}),
          },
        }
      : {}),
    ...(flag(argv, '--identity') ? { identity: flag(argv, '--identity') } : {}),
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
