// The whole product on one machine: the reference control plane, the operator (local provider,
// delegate on) and the gateway, each the real `gitspaces` program in its own process, against a
// cluster given by kubeconfig. `npm start` (demo/main.ts) runs it on the test cluster; the chart's
// RBAC test runs the operator and gateway under the chart's ServiceAccounts; the browser test opens
// what it makes in Chromium.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gatewayOrigin, GITSPACE_INFRAS, SECRETS } from '../src/api/index.ts';
import { LocalProvider } from '../src/providers/local/provider.ts';
import { isAlreadyExists, KubeClient } from '../src/runtime/kube.ts';
import { fromKubeconfigText } from '../src/runtime/kubeconfig.ts';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'src/cli/main.ts');
export const DOMAIN = 'gitspaces.localhost';

export interface StackOptions {
  /** Scratch directory: logs, the control plane's database, local instances, the sample repo. */
  work: string;
  /** Admin access, used to apply the GitspaceInfra. */
  kubeconfig: string;
  /** Kubeconfigs the operator and gateway run with (default: the admin's). */
  operatorKubeconfig?: string;
  gatewayKubeconfig?: string;
  /** Where the delegate creates Gitspaces. */
  namespace?: string;
  infraName?: string;
  /** The namespace the operator runs "in" (its Lease and pool Secrets). */
  operatorNamespace?: string;
  ports: { controlPlane: number; gateway: number; operatorHealth: number };
  /** The GitspaceInfra's spec.gateway.allowPublicPorts. */
  allowPublicPorts?: boolean;
  /** A warm pool of local VMs for the infra. */
  pool?: { minReady: number; max: number };
  /** Another token issuer for the infra (default: the control plane). */
  issuer?: { url: string; audience: string };
  /** Single sign-on for browsers: the OpenID provider and the gateway's client there. */
  sso?: { issuer: string; clientId: string; clientSecret: string };
  /** The gateway's session upkeep interval (refresh ahead, close ended sessions' connections). */
  sessionCheckMs?: number;
  progress?: (line: string) => void;
}

export interface DemoUser {
  subject: string;
  apiToken: string;
}

export interface OpenedGitspace {
  id: string;
  namespace: string;
  host: string;
  /** The link its status gives (what `kubectl get gs` and the control plane show): the web IDE, or the landing page. */
  link: string;
  /** The link with a one-time token, which the gateway exchanges for a session cookie. */
  url: string;
  token: string;
  sshCommand: string;
  phase: string;
}

const DELEGATE_TOKEN_FILE = 'delegate-token';
const SSO_SECRET = 'gitspaces-sso';

interface Proc { name: string; child: ChildProcess; log: string }

export class Stack {
  readonly user: DemoUser = { subject: 'dev@example.com', apiToken: 'demo-user-token' };
  private readonly procs: Proc[] = [];
  private readonly o: StackOptions & { namespace: string; infraName: string };

  constructor(o: StackOptions) {
    this.o = { namespace: 'default', infraName: 'demo', ...o };
    mkdirSync(join(o.work, 'logs'), { recursive: true });
  }

  get controlPlaneURL(): string {
    return `http://127.0.0.1:${String(this.o.ports.controlPlane)}`;
  }

  get gatewayURL(): string {
    return `http://127.0.0.1:${String(this.o.ports.gateway)}`;
  }

  get localDir(): string {
    return join(this.o.work, 'instances');
  }

  logOf(name: string): string {
    return join(this.o.work, 'logs', `${name}.log`);
  }

  private say(line: string): void {
    this.o.progress?.(line);
  }

  private spawn(name: string, args: string[], env: Record<string, string> = {}): Proc {
    const log = this.logOf(name);
    const fd = openSync(log, 'a');
    // Own process group: a terminal's Ctrl-C reaches only the demo, which stops these in order.
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    const p = { name, child, log };
    this.procs.push(p);
    return p;
  }

  private async ready(p: Proc, url: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (p.child.exitCode !== null) throw new Error(`${p.name} exited (${String(p.child.exitCode)}):\n${tail(p.log)}`);
      try {
        const r = await fetch(url);
        if (r.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`${p.name} not ready at ${url} after ${String(timeoutMs / 1000)} s:\n${tail(p.log)}`);
      await sleep(100);
    }
  }

  async start(): Promise<void> {
    const { work } = this.o;
    const delegateToken = `delegate-${String(process.pid)}-${String(Date.now())}`;
    writeFileSync(join(work, DELEGATE_TOKEN_FILE), delegateToken, { mode: 0o600 });

    this.say(`starting the control plane on ${this.controlPlaneURL}`);
    const cp = this.spawn('control-plane', [
      'control-plane', '--port', String(this.o.ports.controlPlane), '--address', '127.0.0.1', '--db', join(work, 'control-plane.db'),
      '--issuer', this.controlPlaneURL, '--delegate-token-file', join(work, DELEGATE_TOKEN_FILE),
    ], { GITSPACES_USERS: `${this.user.apiToken}=${this.user.subject}` });
    await this.ready(cp, `${this.controlPlaneURL}/healthz`);

    this.say('applying GitspaceInfra "demo" (local provider, tokens from the control plane)');
    await this.applyInfra();

    this.say('starting the operator (runner, infra, pool and delegate controllers; leader election)');
    const opNs = this.o.operatorNamespace ?? this.o.namespace;
    const op = this.spawn('operator', [
      'operator', '--leader-elect', '--allow-local-provider', '--health-port', String(this.o.ports.operatorHealth), '--local-dir', this.localDir,
      '--control-plane-url', this.controlPlaneURL, '--delegate-token-file', join(work, DELEGATE_TOKEN_FILE),
      '--delegate-namespace', this.o.namespace, '--delegate-name', 'demo-cluster',
    ], { KUBECONFIG: this.o.operatorKubeconfig ?? this.o.kubeconfig, POD_NAMESPACE: opNs });
    await this.ready(op, `http://127.0.0.1:${String(this.o.ports.operatorHealth)}/readyz`);

    this.say(`starting the gateway on ${this.gatewayURL}`);
    const gw = this.spawn('gateway', [
      'gateway', '--port', String(this.o.ports.gateway), '--address', '127.0.0.1', '--drain-delay-ms', '0',
      ...(this.o.sessionCheckMs ? ['--session-check-ms', String(this.o.sessionCheckMs)] : []),
    ], {
      KUBECONFIG: this.o.gatewayKubeconfig ?? this.o.kubeconfig,
      // The operator's namespace, as in the chart: both find the hop key Secret there.
      POD_NAMESPACE: opNs,
    });
    await this.ready(gw, `${this.gatewayURL}/readyz`);
  }

  private async applyInfra(): Promise<void> {
    const infra = {
      apiVersion: 'gitspaces.dev/v1alpha1',
      kind: 'GitspaceInfra',
      metadata: { name: this.o.infraName },
      spec: {
        provider: { local: { baseDir: this.localDir } },
        // 'unpooled' is the same local VM without a warm pool (what a cold start gets).
        machineTypes: [{ name: 'small', providerType: 'local' }, { name: 'unpooled', providerType: 'local' }],
        // The gateway's port goes into the links status gives (it is not http's own 80).
        allowedNamespaces: {}, gateway: { domain: DOMAIN, port: this.o.ports.gateway, ...(this.o.allowPublicPorts ? { allowPublicPorts: true } : {}) },
        auth: {
          ...(this.o.issuer ? { issuer: this.o.issuer.url, audience: this.o.issuer.audience } : { issuer: this.controlPlaneURL, audience: 'gitspaces' }),
          ...(this.o.sso ? { oidc: { issuer: this.o.sso.issuer, clientSecretRef: { name: SSO_SECRET } } } : {}),
        },
        ...(this.o.pool ? { pool: [{ machineType: 'small', zone: 'local', ...this.o.pool }] } : {}),
      },
    };
    const client = new KubeClient(fromKubeconfigText(readFileSync(this.o.kubeconfig, 'utf8')));
    try {
      if (this.o.sso) {
        // The gateway's client at the OpenID provider, in the gateway's namespace (as the chart's gateway.oidcClientSecrets).
        const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: SSO_SECRET, namespace: this.o.operatorNamespace ?? this.o.namespace }, stringData: { 'client-id': this.o.sso.clientId, 'client-secret': this.o.sso.clientSecret } };
        await client.create(SECRETS, secret).catch((e: unknown) => {
          if (!isAlreadyExists(e)) throw e;
        });
      }
      await client.create(GITSPACE_INFRAS, infra);
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
    } finally {
      client.close();
    }
  }

  /** Creates a Gitspace through the control plane (as a developer's portal would) and waits for it to run. */
  async createGitspace(
    id: string,
    repoURL: string,
    sshPublicKey: string,
    o: { ide?: string; ports?: { port: number; name?: string; visibility?: string }[]; onPhase?: (phase: string) => void } = {},
  ): Promise<OpenedGitspace> {
    const created = await this.api('POST', '/api/v1/gitspaces', {
      id, infra: this.o.infraName, repository: { url: repoURL }, machineType: 'small', ide: { type: o.ide ?? 'vscode-web' }, sshPublicKeys: [sshPublicKey],
      ...(o.ports ? { ports: o.ports } : {}),
    });
    if (created.status !== 201) throw new Error(`control plane refused the Gitspace: ${created.status} ${JSON.stringify(created.json)}`);
    let last = '';
    const deadline = Date.now() + 120_000;
    for (;;) {
      const g = (await this.api('GET', `/api/v1/gitspaces/${id}`)).json as { status?: { phase?: string; conditions?: { type: string; status: string; message?: string }[] } };
      const phase = g.status?.phase ?? 'Pending';
      if (phase !== last) {
        last = phase;
        o.onPhase?.(phase);
      }
      if (phase === 'Running') break;
      if (phase === 'Failed') throw new Error(`Gitspace failed: ${JSON.stringify(g.status?.conditions)}`);
      if (Date.now() > deadline) throw new Error(`Gitspace not Running after 120 s (phase ${phase}); operator log: ${this.logOf('operator')}`);
      await sleep(250);
    }
    const { token, urls } = await this.issue(id);
    const host = `${id}--${this.o.namespace}.${DOMAIN}`;
    // The web IDE's link as status gives it; another IDE's link is not for a browser: its landing page.
    const link = urls.ide?.startsWith('http') ? urls.ide : `${gatewayOrigin({ port: this.o.ports.gateway }, host)}/`;
    const url = new URL(link);
    url.searchParams.set('token', token);
    const proxy = `${process.execPath} ${CLI} ssh --gateway ${this.gatewayURL} %h`;
    return {
      id,
      namespace: this.o.namespace,
      host,
      token,
      link,
      url: url.toString(),
      sshCommand: `GITSPACES_TOKEN=${token} ssh -o ProxyCommand='${proxy}' -o StrictHostKeyChecking=accept-new gitspace@${host}`,
      phase: last,
    };
  }

  /** A token for the Gitspace from the control plane, and the links its status gives. */
  async issue(id: string): Promise<{ token: string; urls: { ide?: string } }> {
    const r = await this.api('POST', `/api/v1/gitspaces/${id}/token`);
    if (r.status !== 200) throw new Error(`no token: ${r.status} ${JSON.stringify(r.json)}`);
    return r.json as { token: string; urls: { ide?: string } };
  }

  async api(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    const r = await fetch(`${this.controlPlaneURL}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.user.apiToken}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await r.text();
    return { status: r.status, json: text ? (JSON.parse(text) as unknown) : undefined };
  }

  /** Stops everything this stack started, gateway first, and every local VM's agent with it. */
  async stop(): Promise<void> {
    for (const p of [...this.procs].reverse()) await stopProcess(p.child);
    this.procs.length = 0;
    // The local provider's own delete: it knows each VM's agent process group (and zombies).
    const local = new LocalProvider({ baseDir: this.localDir, agentCommand: [] });
    for (const vm of await local.listOwned({})) await local.delete(vm);
  }
}

export async function stopProcess(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => { r(); }));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

function tail(file: string, n = 30): string {
  return existsSync(file) ? readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n') : '(no log)';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
