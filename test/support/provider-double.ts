// An in-memory VmProvider double: instances "boot" at once; `failures` queues errors for the next
// creates. Used by tests of the runner's error handling and by the reconcile benchmark (so what
// is measured is the controller and the API, not VM boot).
import { AGENT_HTTP_PORT, AGENT_SSH_PORT, OPERATOR_FIELD_MANAGER, type AgentHealth } from '../../src/api/index.ts';
import { createOperator, type Operator } from '../../src/controllers/operator.ts';
import type { AgentClaim, AgentProbe } from '../../src/controllers/runner/agent-probe.ts';
import type { SweepOptions } from '../../src/controllers/sweep/orphans.ts';
import { ProviderError, type CreateRequest, type DeleteOutcome, type Instance, type NetworkState, type ResizeRequest, type VmProvider } from '../../src/providers/types.ts';
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
      diskSizeGB: req.machineType.diskSizeGB ?? 50,
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

  /** Refuses what the clouds refuse: a VM that is not stopped, a smaller disk. */
  resize(inst: Instance, req: ResizeRequest): Promise<void> {
    this.calls.push(`resize ${inst.name}`);
    const v = this.vms.get(inst.name);
    if (!v) return Promise.reject(new ProviderError('NotFound', `instance ${inst.name} not found`));
    if (v.state !== 'stopped') return Promise.reject(new ProviderError('InvalidConfig', `instance ${inst.name} must be stopped to be resized`));
    if (req.diskSizeGB !== undefined && v.diskSizeGB !== undefined && req.diskSizeGB < v.diskSizeGB) return Promise.reject(new ProviderError('InvalidConfig', 'disks cannot shrink'));
    if (req.providerType !== undefined) v.machineType = req.providerType;
    if (req.diskSizeGB !== undefined) v.diskSizeGB = req.diskSizeGB;
    return Promise.resolve();
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
 * Agents for VMs that run none (moto does not boot anything): every VM answers "unclaimed" with
 * its instance name until it is claimed, then "ready" to the claimant's secret only — the same
 * protocol the real agent speaks (it does not check the token: the real agent's tests do).
 */
export class AgentDouble {
  private readonly vms = new Map<string, { claimed?: string }>();
  private readonly instanceAt: (address: string) => Promise<string | undefined>;
  readonly claims: string[] = [];
  /** The enrolment tokens claims came with, in order. */
  readonly tokens: string[] = [];

  /** `instanceAt` names the instance at an address (what the real agent knows from its boot facts). */
  constructor(instanceAt: (address: string) => Promise<string | undefined>) {
    this.instanceAt = instanceAt;
  }

  readonly probe: AgentProbe = async (address, _port, secret) => {
    const vm = this.vms.get(address) ?? {};
    this.vms.set(address, vm);
    if (vm.claimed !== undefined) return secret === vm.claimed ? { ok: true, health: readyHealth() } : { ok: false, error: 'agent answered 401', status: 401 };
    const instance = await this.instanceAt(address);
    if (!instance) return { ok: false, error: 'connect ECONNREFUSED' };
    return { ok: true, health: { ...readyHealth(), state: 'unclaimed', instance } };
  };

  readonly claim: AgentClaim = (address, _port, token, claim) => {
    const vm = this.vms.get(address) ?? {};
    this.vms.set(address, vm);
    if (vm.claimed !== undefined) return Promise.resolve('agent refused the claim (409): already claimed');
    vm.claimed = claim.secret;
    this.claims.push(claim.gitspace.uid);
    this.tokens.push(token);
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
export function testCreateRequest(name: string, over: Partial<CreateRequest> = {}): CreateRequest {
  return {
    name,
    machineType: { providerType: 'local' },
    labels: {},
    agent: {
      instance: name,
      enrolmentSha256: '0'.repeat(64),
      listen: { address: '0.0.0.0', httpPort: AGENT_HTTP_PORT, sshPort: AGENT_SSH_PORT },
      user: { name: 'gitspace', home: '/home/gitspace', sudo: true },
    },
    ...over,
  };
}

/**
 * The real operator in this process, with the given provider (and, unless `realAgent`, an agent
 * that is always ready), against the test cluster. Started; stop it with `op.manager.stop()`.
 */
export async function startInProcessOperator(o: { provider: VmProvider; realAgent?: boolean; agent?: AgentDouble; probe?: AgentProbe; now?: () => number; sweep?: SweepOptions | false; client?: KubeClient; logLevel?: 'warn' | 'error' }): Promise<Operator> {
  const op = createOperator({
    client: o.client ?? new KubeClient(testCluster().access(), { userAgent: OPERATOR_FIELD_MANAGER }),
    log: createLogger({ component: 'operator' }, o.logLevel ?? (process.env.TEST_LOG_LEVEL as 'warn' | undefined) ?? 'error'),
    providerFor: () => o.provider,
    ...(o.agent ? { probe: o.agent.probe, claim: o.agent.claim } : o.realAgent ? {} : { probe: o.probe ?? (() => Promise.resolve({ ok: true as const, health: readyHealth() })) }),
    ...(o.now ? { now: o.now } : {}),
    ...(o.sweep !== undefined ? { sweep: o.sweep } : {}),
  });
  await op.manager.start();
  return op;
}
