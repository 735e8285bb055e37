// An in-memory VmProvider double: instances "boot" at once; `failures` queues errors for the next
// creates. Used by tests of the runner's error handling and by the reconcile benchmark (so what
// is measured is the controller and the API, not VM boot).
import { AGENT_HTTP_PORT, AGENT_SSH_PORT, type AgentHealth } from '../../src/api/index.ts';
import { createOperator, type Operator } from '../../src/controllers/operator.ts';
import type { AgentClaim, AgentProbe } from '../../src/controllers/runner/agent-probe.ts';
import type { SweepOptions } from '../../src/controllers/sweep/orphans.ts';
import type { CreateRequest, DeleteOutcome, Instance, NetworkState, ProviderError, VmProvider } from '../../src/providers/types.ts';
import { KubeClient } from '../../src/runtime/kube.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { testCluster } from '../cluster/current.ts';

export class InMemoryProvider implements VmProvider {
  readonly kind = 'local' as const;
  readonly failures: ProviderError[] = [];
  /** What verify() throws while set (credentials revoked). */
  credentialsError: ProviderError | undefined;
  readonly calls: string[] = [];
  private readonly vms = new Map<string, Instance>();
  private next = 1;

  find(name: string): Promise<Instance | undefined> {
    return Promise.resolve(this.vms.get(name));
  }

  create(req: CreateRequest): Promise<Instance> {
    this.calls.push(`create ${req.name}`);
    const f = this.failures.shift();
    if (f) return Promise.reject(f);
    const existing = this.vms.get(req.name);
    if (existing) return Promise.resolve(existing);
    const n = this.next++;
    const inst: Instance = {
      id: req.name,
      name: req.name,
      zone: 'memory',
      state: 'running',
      // loopback on purpose: nothing that probes it may leave this machine
      privateIP: `127.13.${(n >> 8) & 255}.${n & 255}`,
      agentPort: 47100,
      machineType: req.machineType.providerType,
      createdAt: new Date().toISOString(),
      labels: req.labels,
    };
    this.vms.set(req.name, inst);
    return Promise.resolve(inst);
  }

  private setState(inst: Instance, state: Instance['state']): Promise<void> {
    const v = this.vms.get(inst.name);
    if (v) v.state = state;
    return Promise.resolve();
  }

  start(inst: Instance): Promise<void> {
    return this.setState(inst, 'running');
  }

  stop(inst: Instance): Promise<void> {
    return this.setState(inst, 'stopped');
  }

  delete(inst: Instance): Promise<DeleteOutcome> {
    this.vms.delete(inst.name);
    return Promise.resolve('gone');
  }

  listOwned(labels: Record<string, string> = {}): Promise<Instance[]> {
    return Promise.resolve([...this.vms.values()].filter((i) => Object.entries(labels).every(([k, v]) => i.labels[k] === v)));
  }

  relabel(inst: Instance, labels: Record<string, string>): Promise<void> {
    this.calls.push(`relabel ${inst.name}`);
    const v = this.vms.get(inst.name);
    if (v) v.labels = labels;
    return Promise.resolve();
  }

  verify(): Promise<void> {
    return this.credentialsError ? Promise.reject(this.credentialsError) : Promise.resolve();
  }

  ensureNetwork(): Promise<NetworkState> {
    return Promise.resolve({ id: 'memory', action: 'none' });
  }
}

/**
 * Agents for VMs that run none (moto does not boot anything): a Gitspace's VM is ready at once; a
 * warm-pool VM (recognised by its pool label the first time it is probed) answers "pooled" to the
 * pool secret and 401 to anything else until it is claimed, then "ready" to the claimant's secret
 * only — the same protocol the real agent speaks.
 */
export class AgentDouble {
  private readonly vms = new Map<string, { poolSecret?: string; claimed?: string }>();
  private readonly isPoolVM: (address: string) => Promise<boolean>;
  readonly claims: string[] = [];

  constructor(isPoolVM: (address: string) => Promise<boolean>) {
    this.isPoolVM = isPoolVM;
  }

  readonly probe: AgentProbe = async (address, _port, secret) => {
    let vm = this.vms.get(address);
    if (!vm) {
      vm = (await this.isPoolVM(address)) ? { poolSecret: secret } : {};
      this.vms.set(address, vm);
    }
    const unauthorised = { ok: false as const, error: 'agent answered 401', status: 401 };
    if (vm.claimed !== undefined) return secret === vm.claimed ? { ok: true, health: readyHealth() } : unauthorised;
    if (vm.poolSecret !== undefined) return secret === vm.poolSecret ? { ok: true, health: { ...readyHealth(), state: 'pooled' } } : unauthorised;
    return { ok: true, health: readyHealth() };
  };

  readonly claim: AgentClaim = (address, _port, poolSecret, config) => {
    const vm = this.vms.get(address);
    if (!vm?.poolSecret || vm.poolSecret !== poolSecret) return Promise.resolve('agent refused the claim (401)');
    if (vm.claimed !== undefined) return Promise.resolve('agent refused the claim (409): already claimed');
    vm.claimed = config.secret;
    this.claims.push(config.gitspace.uid);
    return Promise.resolve(undefined);
  };
}

/** An agent that is ready and was just used. */
export function readyHealth(): AgentHealth {
  return {
    state: 'ready', restart: false, steps: [], ide: { type: 'ssh', ready: true }, checkout: '/home/gitspace/repo',
    forwardPorts: [], devcontainer: { found: false, notApplied: [], containerBuild: 'skipped' }, lastActivityTime: new Date().toISOString(),
  };
}

/** A CreateRequest as the runner would send, for tests that call a provider directly. */
export function testCreateRequest(name: string, over: Partial<CreateRequest> = {}, gitspace = { namespace: 'ns', name: 'x', uid: 'u' }): CreateRequest {
  return {
    name,
    machineType: { providerType: 'local' },
    labels: {},
    agent: {
      gitspace,
      repository: { url: 'file:///nowhere' },
      devcontainerPath: '.devcontainer/devcontainer.json',
      ide: { type: 'ssh' },
      sshPublicKeys: [],
      env: [],
      ports: [],
      listen: { address: '0.0.0.0', httpPort: AGENT_HTTP_PORT, sshPort: AGENT_SSH_PORT },
      secret: 's',
      home: '/home/gitspace',
    },
    ...over,
  };
}

/**
 * The real operator in this process, with the given provider (and, unless `realAgent`, an agent
 * that is always ready), against the test cluster. Started; stop it with `op.manager.stop()`.
 */
export async function startInProcessOperator(o: { provider: VmProvider; realAgent?: boolean; agent?: AgentDouble; now?: () => number; sweep?: SweepOptions | false; client?: KubeClient; logLevel?: 'warn' | 'error' }): Promise<Operator> {
  const op = createOperator({
    client: o.client ?? new KubeClient(testCluster().access()),
    log: createLogger({ component: 'operator' }, o.logLevel ?? (process.env.TEST_LOG_LEVEL as 'warn' | undefined) ?? 'error'),
    providerFor: () => o.provider,
    ...(o.agent ? { probe: o.agent.probe, claim: o.agent.claim } : o.realAgent ? {} : { probe: () => Promise.resolve({ ok: true as const, health: readyHealth() }) }),
    ...(o.now ? { now: o.now } : {}),
    ...(o.sweep !== undefined ? { sweep: o.sweep } : {}),
  });
  await op.manager.start();
  return op;
}
