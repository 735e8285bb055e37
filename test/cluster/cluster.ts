// An envtest-style Kubernetes control plane for tests: real etcd, kube-apiserver and
// kube-controller-manager (garbage collector, namespace and service-account controllers only; no
// kubelet), on loopback with random ports and a temp dir. Torn down on stop(), on process exit, on
// SIGINT/SIGTERM, and - if this process is killed outright - by a detached watchdog.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromKubeconfigText, type ClusterAccess } from '../../src/runtime/kubeconfig.ts';
import { eventually, sleep } from '../support/wait.ts';
import { parseAllDocuments, stringify } from 'yaml';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ClusterUser {
  name: string;
  token: string;
  groups: string[];
}

export interface ClusterOptions {
  /** Directory of CRD YAML files to install before the controller manager starts. Default: crds/. */
  crdDir?: string | null;
  /** Extra token users besides the admin (for RBAC tests). */
  users?: { name: string; groups?: string[] }[];
  /** Print progress to stderr. */
  verbose?: boolean;
  /** Start the binaries in their own process group, so a terminal's Ctrl-C leaves them to our stop(). */
  detached?: boolean;
}

interface Proc {
  name: string;
  child: ChildProcess;
  log: string;
  /** How it was started, so restartApiServer() can start it again the same way. */
  argv: string[];
}

const live = new Set<TestCluster>();

/** Returns the directory holding the binaries, building them first if the cache is empty. */
export function binDir(): string {
  const r = spawnSync('bash', [join(ROOT, 'scripts/build-envtest.sh')], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scripts/build-envtest.sh failed with ${r.status ?? r.signal}`);
  const dir = r.stdout.trim().split('\n').pop() ?? '';
  if (!existsSync(join(dir, 'kube-apiserver'))) throw new Error(`no kube-apiserver in ${dir}`);
  return dir;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr && typeof addr === 'object') resolve(addr.port);
        else reject(new Error('no port'));
      });
    });
  });
}

/** Waits for `probe`, naming what it waited for and the process log when it gives up. */
function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, logHint?: () => string): Promise<T> {
  return eventually(() => `${what}${logHint ? `\n${logHint()}` : ''}`, timeoutMs, probe, 100);
}

function tail(file: string, lines = 25): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export class TestCluster {
  readonly dir: string;
  readonly server: string;
  readonly kubeconfigPath: string;
  readonly admin: ClusterUser;
  readonly users: ClusterUser[];
  private readonly procs: Proc[] = [];
  private readonly caData: string;
  private stopped = false;

  private constructor(dir: string, server: string, admin: ClusterUser, users: ClusterUser[], caData: string) {
    this.dir = dir;
    this.server = server;
    this.admin = admin;
    this.users = users;
    this.caData = caData;
    this.kubeconfigPath = join(dir, 'kubeconfig');
  }

  static async start(opts: ClusterOptions = {}): Promise<TestCluster> {
    const bins = binDir();
    const dir = mkdtempSync(join(tmpdir(), 'gitspaces-envtest-'));
    const say = (m: string) => {
      if (opts.verbose) process.stderr.write(`cluster: ${m}\n`);
    };
    const pidFile = join(dir, 'pids');
    writeFileSync(pidFile, '');
    startWatchdog(dir);
    const procs: Proc[] = [];
    const startProc = (name: string, args: string[]): Proc => {
      const log = join(dir, `${name}.log`);
      const fd = openSync(log, 'a');
      const child = spawn(join(bins, name), args, { stdio: ['ignore', fd, fd], detached: opts.detached ?? false });
      closeSync(fd);
      const p = { name, child, log, argv: [join(bins, name), ...args] };
      procs.push(p);
      writeFileSync(pidFile, procs.map((x) => String(x.child.pid)).join('\n') + '\n');
      return p;
    };
    const failFast = (p: Proc) =>
      new Promise<never>((_, reject) =>
        p.child.once('exit', (code, sig) => {
          reject(new Error(`${p.name} exited (${code ?? sig}) during start-up:\n${tail(p.log)}`));
        }),
      );
    const guard = async <T>(p: Proc, work: Promise<T>): Promise<T> => {
      const died = failFast(p);
      died.catch(() => undefined);
      return Promise.race([work, died]);
    };

    try {
      // etcd: fsync off, it is a throw-away store.
      const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
      const etcdURL = `http://127.0.0.1:${etcdClient}`;
      say(`etcd on ${etcdURL}`);
      const etcd = startProc('etcd', [
        '--name=default',
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=${etcdURL}`,
        `--advertise-client-urls=${etcdURL}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
        '--unsafe-no-fsync',
        '--log-level=warn',
      ]);
      await guard(
        etcd,
        until('etcd health', 30_000, async () => {
          const r = await fetch(`${etcdURL}/health`);
          const body = (await r.json()) as { health?: string };
          return body.health === 'true' ? true : undefined;
        }),
      );

      // Service-account signing key and static token users.
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs1', format: 'pem' }));
      writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
      const token = () => randomBytes(24).toString('hex');
      const admin: ClusterUser = { name: 'admin', token: token(), groups: ['system:masters'] };
      const users = (opts.users ?? []).map((u) => ({ name: u.name, token: token(), groups: u.groups ?? [] }));
      writeFileSync(
        join(dir, 'tokens.csv'),
        [admin, ...users].map((u) => `${u.token},${u.name},${u.name}-uid,"${u.groups.join(',')}"`).join('\n') + '\n',
      );

      const certDir = join(dir, 'certs');
      const server = `https://127.0.0.1:${apiPort}`;
      say(`kube-apiserver on ${server}`);
      const apiserver = startProc('kube-apiserver', [
        `--etcd-servers=${etcdURL}`,
        `--cert-dir=${certDir}`,
        `--secure-port=${apiPort}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        '--service-cluster-ip-range=10.0.0.0/24',
        '--service-account-issuer=https://kubernetes.default.svc',
        `--service-account-key-file=${join(dir, 'sa.pub')}`,
        `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
        `--token-auth-file=${join(dir, 'tokens.csv')}`,
        '--authorization-mode=RBAC',
        '--allow-privileged=true',
        '--profiling=false',
        '--v=1',
      ]);
      const certFile = join(certDir, 'apiserver.crt');
      const caData = await guard(
        apiserver,
        until(
          'kube-apiserver /readyz',
          60_000,
          async () => {
            if (!existsSync(certFile)) return undefined;
            const ca = readFileSync(certFile, 'utf8');
            const { status } = await httpsRequest(`${server}/readyz`, ca, admin.token);
            return status === 200 ? Buffer.from(ca).toString('base64') : undefined;
          },
          () => tail(apiserver.log),
        ),
      );

      const cluster = new TestCluster(dir, server, admin, users, caData);
      cluster.procs.push(...procs);
      live.add(cluster);
      writeFileSync(cluster.kubeconfigPath, cluster.kubeconfigYAML(admin));

      // CRDs go in before the controller manager so its garbage collector knows them from its
      // first discovery (otherwise owner-reference cleanup waits for the ~30 s resync).
      if (opts.crdDir !== null) {
        const crdDir = opts.crdDir ?? join(ROOT, 'crds');
        say(`installing CRDs from ${crdDir}`);
        await cluster.installCRDs(crdDir);
      }

      say('kube-controller-manager');
      const kcm = startProc('kube-controller-manager', [
        `--kubeconfig=${cluster.kubeconfigPath}`,
        '--controllers=garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller',
        `--service-account-private-key-file=${join(dir, 'sa.key')}`,
        `--root-ca-file=${certFile}`,
        '--leader-elect=false',
        '--secure-port=0',
        '--v=1',
      ]);
      cluster.procs.push(kcm);
      await guard(
        kcm,
        until('the default ServiceAccount (controller manager running)', 60_000, async () => {
          const r = await cluster.request('GET', '/api/v1/namespaces/default/serviceaccounts/default');
          return r.status === 200 ? true : undefined;
        }, () => tail(kcm.log)),
      );
      say('ready');
      return cluster;
    } catch (e) {
      killAll(procs, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** How to reach the cluster as the admin, or as one of the token users. */
  access(user: ClusterUser = this.admin): ClusterAccess {
    return fromKubeconfigText(this.kubeconfigYAML(user));
  }

  user(name: string): ClusterUser {
    const u = this.users.find((x) => x.name === name);
    if (!u) throw new Error(`no test user ${name}`);
    return u;
  }

  kubeconfigYAML(user: ClusterUser): string {
    return stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'envtest', cluster: { server: this.server, 'certificate-authority-data': this.caData } }],
      users: [{ name: user.name, user: { token: user.token } }],
      contexts: [{ name: 'envtest', context: { cluster: 'envtest', user: user.name, namespace: 'default' } }],
      'current-context': 'envtest',
    });
  }

  /**
   * Creates (or replaces) every CRD in a directory and waits until each is Established.
   * Raw JSON on purpose: client-node's typed models serialise `enum`, `default` and
   * `x-kubernetes-validations` from differently named properties and silently drop ours.
   */
  async installCRDs(crdDir: string): Promise<void> {
    const base = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
    const crds: { metadata: { name: string; resourceVersion?: string } }[] = [];
    for (const f of readdirSync(crdDir).filter((n) => n.endsWith('.yaml')).sort()) {
      for (const doc of parseAllDocuments(readFileSync(join(crdDir, f), 'utf8'))) {
        const crd = doc.toJS() as { metadata: { name: string } } | null;
        if (crd) crds.push(crd);
      }
    }
    const ok = (r: RawResponse, what: string) => {
      if (r.status >= 300) throw new Error(`${what}: ${r.status} ${r.body}`);
      return r;
    };
    for (const crd of crds) {
      const created = await this.request('POST', base, { body: crd });
      if (created.status === 409) {
        const old = ok(await this.request('GET', `${base}/${crd.metadata.name}`), 'read CRD').json as typeof crd;
        crd.metadata.resourceVersion = old.metadata.resourceVersion;
        ok(await this.request('PUT', `${base}/${crd.metadata.name}`, { body: crd }), `replace CRD ${crd.metadata.name}`);
      } else ok(created, `create CRD ${crd.metadata.name}`);
    }
    for (const crd of crds) {
      await until(`CRD ${crd.metadata.name} Established`, 30_000, async () => {
        const c = (await this.request('GET', `${base}/${crd.metadata.name}`)).json as {
          status?: { conditions?: { type: string; status: string }[] };
        };
        const is = (t: string) => c.status?.conditions?.some((x) => x.type === t && x.status === 'True');
        return is('Established') && is('NamesAccepted') ? true : undefined;
      });
    }
  }

  /**
   * A raw API request, as kubectl would send it (for asserting exact server answers: dry-run,
   * field validation, tables). `path` includes the query string.
   */
  request(
    method: string,
    path: string,
    opts: { body?: unknown; user?: ClusterUser; headers?: Record<string, string> } = {},
  ): Promise<RawResponse> {
    const ca = Buffer.from(this.caData, 'base64').toString('utf8');
    return httpsRequest(this.server + path, ca, (opts.user ?? this.admin).token, method, opts.body, opts.headers);
  }

  /**
   * Stops kube-apiserver (SIGKILL: as abrupt as a crash), waits `downMs`, and starts it again on
   * the same port with the same flags and storage; resolves when it is ready again.
   */
  async restartApiServer(downMs = 1_000): Promise<void> {
    const i = this.procs.findIndex((p) => p.name === 'kube-apiserver');
    const old = this.procs[i];
    if (!old) throw new Error('no kube-apiserver');
    const exited = new Promise<void>((r) => old.child.once('exit', () => { r(); }));
    old.child.kill('SIGKILL');
    await exited;
    await sleep(downMs);
    const fd = openSync(old.log, 'a');
    const child = spawn(old.argv[0] ?? '', old.argv.slice(1), { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.procs[i] = { ...old, child };
    writeFileSync(join(this.dir, 'pids'), this.procs.map((x) => String(x.child.pid)).join('\n') + '\n');
    await until('kube-apiserver ready after restart', 60_000, async () => {
      const r = await this.request('GET', '/readyz');
      return r.status === 200 ? true : undefined;
    }, () => tail(old.log));
  }

  /** Pids of the control-plane processes (for tests of the teardown itself). */
  pids(): number[] {
    return this.procs.map((p) => p.child.pid ?? -1);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    live.delete(this);
    // Reverse order: controller manager, apiserver, then etcd.
    for (const p of [...this.procs].reverse()) {
      if (p.child.exitCode !== null || p.child.signalCode !== null) continue;
      const exited = new Promise<void>((r) => p.child.once('exit', () => { r(); }));
      p.child.kill('SIGTERM');
      const t = setTimeout(() => p.child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(t);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Synchronous best-effort teardown for process exit. */
  stopNow(): void {
    if (this.stopped) return;
    this.stopped = true;
    live.delete(this);
    killAll(this.procs, 'SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function killAll(procs: Proc[], sig: NodeJS.Signals): void {
  for (const p of procs) {
    try {
      p.child.kill(sig);
    } catch {
      /* already gone */
    }
  }
}

export interface RawResponse {
  status: number;
  body: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
}

function httpsRequest(
  url: string,
  ca: string,
  token: string,
  method = 'GET',
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const req = request(
      url,
      {
        method,
        ca,
        timeout: 30_000,
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/json',
          ...(payload ? { 'content-type': 'application/json' } : {}),
          ...headers,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body: text, json });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * A detached process that outlives us: when this process dies without tearing down (kill -9, a
 * crashed test runner), it kills the pids listed in <dir>/pids and removes <dir>.
 */
function startWatchdog(dir: string): void {
  const w = spawn(process.execPath, [join(ROOT, 'test/cluster/watchdog.ts'), String(process.pid), dir], {
    detached: true,
    stdio: 'ignore',
  });
  w.unref();
}

// Normal exits and Ctrl-C tear down whatever is still running.
let hooked = false;
export function installExitHooks(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const c of live) c.stopNow();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const c of live) c.stopNow();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}
installExitHooks();
