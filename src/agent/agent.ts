// The agent on a Gitspace VM. It serves health and activity on one HTTP port (behind the
// per-Gitspace secret) and SSH, and walks Harness' ordered set-up steps: user, env, tools, git,
// git credentials, clone, IDE setup, IDE run, postCreateCommand, postStartCommand. After a restart
// (the VM was stopped and started: the disk is kept) only credentials, IDE run and
// postStartCommand run again.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { dirname, join } from 'node:path';
import type { AgentConfig, AgentHealth, StepName, StepStatus } from '../api/agent.ts';
import { AGENT_ACTIVITY_PATH, AGENT_SSH_PATH, CLAIM_PATH, CODE_SERVER_VERSION, PORT_HEADER, repoDirName, SECRET_HEADER } from '../api/agent.ts';
import { CodeServer, codeServerBinary } from './code-server.ts';
import { forward, forwardUpgrade } from './forward.ts';
import { DevUser, UserError } from './user.ts';
import { planDevcontainer, type DevcontainerPlan } from './devcontainer.ts';
import { cloneRepository, StepError, storeCredentials } from './git.ts';
import { run } from './run.ts';
import { startSshServer } from './ssh.ts';
import { secretMatches } from './secret.ts';
import { landingPage } from './landing.ts';
import { listenAddress, log } from './log.ts';

const FIRST_BOOT: StepName[] = ['user', 'env', 'tools', 'git', 'gitCredentials', 'clone', 'ideSetup', 'ideRun', 'postCreateCommand', 'postStartCommand'];
const RESTART: StepName[] = ['gitCredentials', 'ideRun', 'postStartCommand'];

export class Agent {
  private readonly config: AgentConfig;
  private readonly root: string;
  private readonly checkout: string;
  private plan: DevcontainerPlan = planDevcontainer(undefined);
  private devcontainerFound = false;
  private readonly steps: StepStatus[];
  private readonly restart: boolean;
  private failed = false;
  private ideReady = false;
  private lastActivity = new Date();
  private http: Server | undefined;
  private ssh: { close(): void } | undefined;
  /** The browser IDE (vscode-web), once it serves the workbench. */
  private ide: CodeServer | undefined;
  private extensionsFailed: { id: string; error: string }[] = [];
  /** The developer's user, once the user step (or, after a restart, start) has made sure of it. */
  private devUser: DevUser | undefined;

  constructor(config: AgentConfig, root: string) {
    this.config = config;
    this.root = root;
    this.checkout = join(config.home, repoDirName(config.repository.url));
    this.restart = existsSync(this.stateFile());
    const order = this.restart ? RESTART : FIRST_BOOT;
    this.steps = order.map((name) => ({ name, status: 'pending' }));
  }

  /**
   * Reads the config; GITSPACES_LISTEN_ADDRESS and GITSPACES_HOME override where it listens and
   * the user's home (an image that binds the agent to its private IP only, or a test host).
   */
  static fromFile(path: string): Agent {
    return Agent.fromConfig(JSON.parse(readFileSync(path, 'utf8')) as AgentConfig, dirname(path));
  }

  static fromConfig(config: AgentConfig, root: string): Agent {
    const home = process.env.GITSPACES_HOME;
    config.listen = { ...config.listen, address: listenAddress(config.listen.address) };
    if (home) config.home = home;
    return new Agent(config, root);
  }

  private stateFile(): string {
    return join(this.root, 'provisioned.json');
  }

  private get user(): DevUser {
    if (!this.devUser) throw new StepError('the user step has not run');
    return this.devUser;
  }

  private async ensureUser(): Promise<DevUser> {
    try {
      this.devUser = await DevUser.ensure(this.config.user?.name ?? 'gitspace', this.config.home, this.config.user?.sudo ?? true);
    } catch (e) {
      if (e instanceof UserError) throw new StepError(e.message);
      throw e;
    }
    return this.devUser;
  }

  touch(): void {
    this.lastActivity = new Date();
  }

  /** Use of a forwarded port counts when the gateway names a user (a public port's visitors are anonymous). */
  private touchBy(req: IncomingMessage): void {
    if (req.headers['x-gitspaces-user']) this.touch();
  }

  /** Environment for commands and shells: spec.env, then devcontainer env. */
  private env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: this.config.home,
      USER: this.devUser?.name ?? process.env.USER ?? 'gitspace',
      LOGNAME: this.devUser?.name ?? process.env.USER ?? 'gitspace',
      LANG: 'C.UTF-8',
      SHELL: '/bin/bash',
      GITSPACE_NAME: this.config.gitspace.name,
      GITSPACE_NAMESPACE: this.config.gitspace.namespace,
    };
    for (const e of this.config.env) env[e.name] = e.value ?? '';
    Object.assign(env, this.plan.env);
    return env;
  }

  health(): AgentHealth {
    return {
      state: this.failed ? 'failed' : this.steps.every((s) => s.status === 'done' || s.status === 'skipped') ? 'ready' : 'setting-up',
      ...(this.config.instance ? { instance: this.config.instance } : {}),
      restart: this.restart,
      steps: this.steps,
      ide: { type: this.config.ide.type, ready: this.ideReady, ...(this.extensionsFailed.length ? { extensionsFailed: this.extensionsFailed } : {}) },
      checkout: this.checkout,
      forwardPorts: this.forwardPorts(),
      devcontainer: { found: this.devcontainerFound, notApplied: this.plan.notApplied, containerBuild: 'skipped' },
      lastActivityTime: this.lastActivity.toISOString(),
    };
  }

  /** Requests that reached this agent, by path (authorised or not): what a test asserts on. */
  private readonly requests = new Map<string, number>();

  private count(url: string | undefined): string {
    const path = (url ?? '/').split('?')[0] ?? '/';
    // Counted before the secret is checked, so bounded: anyone who reaches the port picks the paths.
    const key = this.requests.has(path) || this.requests.size < 1_000 ? path : '(other)';
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    return path;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = this.count(req.url);
    if (path === CLAIM_PATH) {
      // Claimed once, for good: a replayed or guessed token changes nothing.
      res.writeHead(409, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'already claimed' }));
      return;
    }
    if (!secretMatches(this.config.secret, req.headers[SECRET_HEADER])) {
      res.writeHead(401, { 'content-type': 'text/plain' });
      res.end('unauthorised');
      return;
    }
    // A forwarded port's request is that port's, whatever its path: it must never reach the
    // agent's own endpoints (a public port's visitors would read health or mark activity).
    if (req.headers[PORT_HEADER] !== undefined) {
      this.forwardPort(req, res);
      return;
    }
    const json = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (path === '/healthz') json(200, this.health());
    else if (path === AGENT_ACTIVITY_PATH && req.method === 'POST') {
      this.touch();
      json(200, { lastActivityTime: this.lastActivity.toISOString() });
    } else if (path === AGENT_ACTIVITY_PATH) json(200, { lastActivityTime: this.lastActivity.toISOString() });
    else if (path === '/v1/stats') json(200, { requests: Object.fromEntries(this.requests) });
    else if (this.ide) {
      this.touch();
      forward({ socketPath: this.ide.socket }, req, res, 'the IDE');
    } else if (path === '/' && (req.method === 'GET' || req.method === 'HEAD')) {
      // Until the browser IDE is served here, the landing page: who, where, how to connect.
      this.touch();
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : landingPage(this.config, this.health()));
    } else json(404, { error: 'not found' });
  }

  /**
   * Upgrades: `/v1/ssh` bridges the connection to this agent's SSH server (the gateway carries SSH
   * over a WebSocket to here, so the SSH port need not be reachable from anywhere else);
   * `/v1/events` is a WebSocket of health snapshots for the landing page.
   */
  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = this.count(req.url);
    if (!secretMatches(this.config.secret, req.headers[SECRET_HEADER])) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    if (req.headers[PORT_HEADER] !== undefined) {
      const port = this.declaredPort(req);
      if (port === undefined) socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      else forwardUpgrade({ host: '127.0.0.1', port }, req, socket, head, () => { this.touchBy(req); });
      return;
    }
    if (path === AGENT_SSH_PATH) {
      const { sshPort } = this.config.listen;
      const host = this.config.listen.address === '0.0.0.0' ? '127.0.0.1' : this.config.listen.address;
      const ssh = connect(sshPort, host, () => {
        socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: gitspaces-ssh\r\nConnection: Upgrade\r\n\r\n');
        if (head.length) ssh.write(head);
        socket.pipe(ssh).pipe(socket);
      });
      const close = () => {
        ssh.destroy();
        socket.destroy();
      };
      ssh.on('error', () => {
        if (!socket.destroyed) socket.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      });
      ssh.on('close', close);
      socket.on('error', close);
      socket.on('close', close);
      socket.on('data', () => {
        this.touch();
      });
      return;
    }
    if (path === '/v1/events') {
      this.events.handleUpgrade(req, socket, head, (ws) => {
        const send = () => {
          if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(this.health()));
        };
        send();
        const timer = setInterval(send, 2_000);
        ws.on('message', () => {
          this.touch();
        });
        ws.on('close', () => {
          clearInterval(timer);
        });
      });
      return;
    }
    if (this.ide) {
      forwardUpgrade({ socketPath: this.ide.socket }, req, socket, head, () => { this.touch(); });
      return;
    }
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  }

  /** The ports this Gitspace publishes: devcontainer forwardPorts and spec.ports. */
  private forwardPorts(): number[] {
    return [...new Set([...this.plan.forwardPorts, ...this.config.ports.map((p) => p.port)])];
  }

  /** The port a forwarded-port request names, if the Gitspace declares it. */
  private declaredPort(req: IncomingMessage): number | undefined {
    const raw = req.headers[PORT_HEADER];
    const port = typeof raw === 'string' ? Number(raw) : NaN;
    return this.forwardPorts().includes(port) ? port : undefined;
  }

  private forwardPort(req: IncomingMessage, res: ServerResponse): void {
    const port = this.declaredPort(req);
    if (port === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('this port is not forwarded\n');
      return;
    }
    this.touchBy(req);
    forward({ host: '127.0.0.1', port }, req, res, `port ${String(port)}`);
  }

  private readonly events = new WebSocketServer({ noServer: true });

  async start(): Promise<void> {
    const { address, httpPort, sshPort } = this.config.listen;
    this.http = createServer((req, res) => {
      this.handle(req, res);
    });
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.upgrade(req, socket, head);
    });
    await new Promise<void>((resolve, reject) => {
      this.http?.once('error', reject);
      this.http?.listen(httpPort, address, resolve);
    });
    log('agent listening', { address, httpPort, sshPort, restart: this.restart });
    if (this.restart) {
      try {
        await this.ensureUser();
      } catch (e) {
        this.failed = true;
        log('user set-up failed', { error: (e as Error).message });
        return;
      }
    }
    await this.runSteps();
  }

  private async runSteps(): Promise<void> {
    for (const step of this.steps) {
      step.status = 'running';
      step.startedAt = new Date().toISOString();
      try {
        const msg = await this.runStep(step.name);
        step.status = msg === 'skipped' ? 'skipped' : 'done';
        if (msg && msg !== 'skipped') step.message = msg;
      } catch (e) {
        step.status = 'failed';
        step.message = e instanceof Error ? e.message : String(e);
        this.failed = true;
        log('step failed', { step: step.name, error: step.message });
        return;
      } finally {
        step.finishedAt = new Date().toISOString();
      }
    }
    if (!this.restart) writeFileSync(this.stateFile(), JSON.stringify({ provisionedAt: new Date().toISOString() }));
    log('gitspace ready', { checkout: this.checkout });
  }

  /** Runs one step; returns a note for the status, or 'skipped'. */
  private async runStep(name: StepName): Promise<string | undefined> {
    const { repository } = this.config;
    switch (name) {
      case 'user':
        return (await this.ensureUser()).describe();
      case 'env':
        return `${this.config.env.length} variables`;
      case 'tools':
      case 'git': {
        const r = await run('git', ['--version']);
        if (r.code !== 0) throw new StepError('git is not installed on this VM image');
        return r.output.trim();
      }
      case 'gitCredentials':
        if (!repository.credentials) return 'skipped';
        if (!/^https?:\/\//.test(repository.url)) return 'skipped';
        await storeCredentials(this.user, repository.url, repository.credentials);
        return 'stored in the credential helper';
      case 'clone': {
        await cloneRepository(this.user, repository.url, repository.ref, this.checkout);
        return undefined;
      }
      case 'ideSetup': {
        const path = join(this.checkout, this.config.devcontainerPath);
        if (existsSync(path)) {
          try {
            this.plan = planDevcontainer(readFileSync(path, 'utf8'));
          } catch (e) {
            throw new StepError(`${this.config.devcontainerPath} is not valid JSON: ${(e as Error).message}`);
          }
          this.devcontainerFound = true;
          return this.plan.notApplied.length ? `container build skipped (no Docker): ${this.plan.notApplied.join(', ')} not applied` : 'container build skipped (no Docker)';
        }
        return `no ${this.config.devcontainerPath}; using the VM image as is`;
      }
      case 'ideRun': {
        // ideSetup does not run again after a restart, but the env it derived is still needed.
        if (this.restart) {
          const path = join(this.checkout, this.config.devcontainerPath);
          if (existsSync(path)) this.plan = planDevcontainer(readFileSync(path, 'utf8'));
        }
        const sshServer = await startSshServer({
          address: this.config.listen.address,
          port: this.config.listen.sshPort,
          hostKeyFile: join(this.root, 'ssh_host_key'),
          authorizedKeys: this.config.sshPublicKeys,
          cwd: () => (existsSync(this.checkout) ? this.checkout : this.config.home),
          env: () => this.env(),
          onActivity: () => {
            this.touch();
          },
          log: (m) => {
            log(m);
          },
          wrap: (argv) => this.user.wrap(argv),
        });
        this.ssh = sshServer;
        const ssh = `ssh on ${this.config.listen.address}:${this.config.listen.sshPort}`;
        if (this.config.ide.type === 'vscode-web') {
          const ide = await this.startCodeServer();
          this.ideReady = true;
          return `${ssh}; code-server ${ide}`;
        }
        this.ideReady = true;
        return ssh;
      }
      case 'postCreateCommand':
        return this.lifecycle(this.plan.postCreateCommands);
      case 'postStartCommand':
        return this.lifecycle(this.plan.postStartCommands);
    }
  }

  /** Starts code-server on the checkout (settings applied, extensions installed on first boot). */
  private async startCodeServer(): Promise<string> {
    const bin = codeServerBinary();
    if (!bin) throw new StepError(`the vscode-web IDE needs code-server (${CODE_SERVER_VERSION}): none on PATH and GITSPACES_CODE_SERVER is not set`);
    const dataDir = join(this.config.home, '.local', 'share', 'code-server');
    const ide = new CodeServer({
      bin,
      dataDir,
      // A socket only the user (and the agent, root) can open; a unix socket path must stay short.
      socket: join(this.user.runtimeDir(this.root), 'ide.sock'),
      folder: existsSync(this.checkout) ? this.checkout : this.config.home,
      env: this.env(),
      log,
      wrap: (argv) => this.user.wrap(argv),
    });
    ide.applySettings(this.plan.vscode.settings);
    await this.user.own(dataDir);
    if (!this.restart && this.plan.vscode.extensions.length) this.extensionsFailed = await ide.installExtensions(this.plan.vscode.extensions);
    await ide.start();
    this.ide = ide;
    const failed = this.extensionsFailed.map((f) => f.id);
    return failed.length ? `ready; extensions not installed: ${failed.join(', ')}` : 'ready';
  }

  private async lifecycle(cmds: string[][]): Promise<string | undefined> {
    if (cmds.length === 0) return 'skipped';
    const results = await Promise.all(cmds.map((argv) => this.user.run(argv[0] ?? 'true', argv.slice(1), { cwd: this.checkout, env: this.env(), timeoutMs: 60 * 60_000 })));
    const bad = results.find((r) => r.code !== 0);
    if (bad) throw new StepError(`exited ${bad.code}: ${bad.output.trim().split('\n').slice(-3).join(' | ')}`);
    return undefined;
  }

  async stop(): Promise<void> {
    this.ssh?.close();
    this.ide?.stop();
    for (const ws of this.events.clients) ws.terminate();
    await new Promise<void>((r) => {
      if (!this.http) {
        r();
        return;
      }
      this.http.closeAllConnections();
      this.http.close(() => {
        r();
      });
    });
  }
}
