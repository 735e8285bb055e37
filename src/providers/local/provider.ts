// The `local` provider: each instance is a process tree on this host, started from the same
// startup script a cloud VM boots with, listening on its own loopback address (127.10.x.y), with
// its own directory as its "disk". Stop keeps the directory; start runs the script again; delete
// removes both. All state lives in the instance directory, so a restarted operator finds (adopts)
// its instances again: nothing is kept only in memory.
import { execFile, spawn } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { AGENT_HTTP_PORT, BOOT_FAILURE_PREFIX, CODE_SERVER_VERSION } from '../../api/agent.ts';
import { LABELS } from '../../api/constants.ts';
import { startupScript } from '../startup.ts';
import { CONSOLE_TAIL, ProviderError, type CreateRequest, type DeleteOutcome, type Instance, type NetworkState, type ResizeRequest, type VmProvider } from '../types.ts';

export interface LocalProviderOptions {
  /** Where instance directories live. */
  baseDir: string;
  /** The command that runs the agent, e.g. [node, cli.js]. */
  agentCommand: string[];
  /** First two octets of instance addresses. */
  addressPrefix?: string;
  /** Grace period between SIGTERM and SIGKILL on stop. */
  stopGraceMs?: number;
  /**
   * The code-server the agents run for vscode-web (default $GITSPACES_CODE_SERVER, else the one
   * scripts/fetch-code-server.sh installs into the cache). Always set, so the startup script never
   * installs one globally on a developer's machine.
   */
  codeServer?: string;
}

/** What an instance directory records about itself (instance.json). */
interface Record_ {
  name: string;
  labels: Record<string, string>;
  machineType: string;
  /** What the boot disk would be: the local "VM" has none, so this is only recorded. */
  diskSizeGB?: number;
  address: string;
  createdAt: string;
  /** Desired power state, so `find` can tell stopping from stopped. */
  power: 'on' | 'off';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A command's stdout ('' when it fails or takes longer than 30 s). */
function runQuiet(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000 }, (e, stdout) => {
      resolve(e ? '' : stdout);
    });
  });
}

/** Addresses any local provider of this process handed out (instances of several infras). */
const handedOut = new Set<string>();

/** Whether nothing listens on address:port (a brief bind tells). */
function portFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createNetServer();
    probe.once('error', () => {
      resolve(false);
    });
    probe.listen(port, address, () => {
      probe.close(() => {
        resolve(true);
      });
    });
  });
}

export class LocalProvider implements VmProvider {
  readonly kind = 'local' as const;
  private readonly o: Required<Omit<LocalProviderOptions, 'codeServer'>> & Pick<LocalProviderOptions, 'codeServer'>;
  /** Serialises address allocation and directory creation within this process. */
  private lock: Promise<unknown> = Promise.resolve();

  constructor(o: LocalProviderOptions) {
    this.o = { addressPrefix: '127.10', stopGraceMs: 5_000, ...o };
    mkdirSync(this.o.baseDir, { recursive: true });
  }

  private get codeServer(): string {
    const cache = process.env.GITSPACES_CACHE ?? join(homedir(), '.cache', 'gitspaces');
    return this.o.codeServer ?? process.env.GITSPACES_CODE_SERVER ?? join(cache, `code-server-${CODE_SERVER_VERSION}`, 'node_modules', '.bin', 'code-server');
  }

  private dir(name: string): string {
    if (!/^[a-z0-9][-a-z0-9]{0,62}$/.test(name)) throw new ProviderError('InvalidConfig', `invalid instance name ${name}`);
    return join(this.o.baseDir, name);
  }

  private read(name: string): Record_ | undefined {
    try {
      return JSON.parse(readFileSync(join(this.dir(name), 'instance.json'), 'utf8')) as Record_;
    } catch {
      return undefined;
    }
  }

  private write(rec: Record_): void {
    const d = this.dir(rec.name);
    writeFileSync(join(d, 'instance.json.tmp'), JSON.stringify(rec, null, 2));
    renameSync(join(d, 'instance.json.tmp'), join(d, 'instance.json'));
  }

  /** The agent's pid if it is alive and really is this instance's agent (pids get reused). */
  private pid(name: string): number | undefined {
    const d = this.dir(name);
    let pid: number;
    try {
      pid = Number(readFileSync(join(d, 'agent.pid'), 'utf8').trim());
    } catch {
      return undefined;
    }
    if (!pid) return undefined;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // A zombie (state Z) is gone for our purposes.
      if (/\) Z /.test(stat)) return undefined;
      // An exiting process has given up its memory, and with it its command line, before it is a
      // zombie: still ours, still running (seen: a stop that returned before the agent had exited).
      return cmdline.includes(d) || cmdline === '' ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  private toInstance(rec: Record_): Instance {
    const alive = this.pid(rec.name) !== undefined;
    const state = rec.power === 'on' ? (alive ? 'running' : 'stopped') : alive ? 'stopping' : 'stopped';
    return {
      id: rec.name,
      name: rec.name,
      zone: 'local',
      state,
      privateIP: rec.address,
      agentPort: AGENT_HTTP_PORT,
      machineType: rec.machineType,
      ...(rec.diskSizeGB !== undefined ? { diskSizeGB: rec.diskSizeGB } : {}),
      createdAt: rec.createdAt,
      labels: rec.labels,
    };
  }

  find(name: string): Promise<Instance | undefined> {
    const rec = this.read(name);
    return Promise.resolve(rec ? this.toInstance(rec) : undefined);
  }

  private serialised<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  /**
   * A loopback address no instance of this host uses: not one this directory records, not one any
   * local provider of this process handed out (two infras with their own base dirs), and not one
   * where something already listens on the agent port (another operator's instance).
   */
  private async allocateAddress(): Promise<string> {
    const used = new Set<string>(handedOut);
    for (const n of this.names()) {
      const r = this.read(n);
      if (r) used.add(r.address);
    }
    for (let i = 2; i < 65_534; i++) {
      const a = `${this.o.addressPrefix}.${String(i >> 8)}.${String(i & 255)}`;
      if ((i & 255) === 0 || (i & 255) === 255 || used.has(a)) continue;
      handedOut.add(a); // before the await: another provider's allocation must not pick it meanwhile
      if (await portFree(a, AGENT_HTTP_PORT)) return a;
    }
    throw new ProviderError('QuotaExceeded', 'no free loopback address for another local instance');
  }

  private names(): string[] {
    try {
      return readdirSync(this.o.baseDir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return [];
    }
  }

  create(req: CreateRequest): Promise<Instance> {
    return this.serialised(async () => {
      const existing = this.read(req.name);
      if (existing) {
        // Idempotent: a second create (e.g. after a crash) returns the first instance, booting it
        // if it never got as far as running.
        const inst = this.toInstance(existing);
        if (existing.power === 'on' && inst.state === 'stopped') await this.boot(existing.name);
        return this.toInstance(existing);
      }
      const d = this.dir(req.name);
      mkdirSync(join(d, 'home'), { recursive: true });
      const rec: Record_ = {
        name: req.name,
        labels: req.labels,
        machineType: req.machineType.providerType,
        diskSizeGB: req.machineType.diskSizeGB ?? 50,
        address: await this.allocateAddress(),
        createdAt: new Date().toISOString(),
        power: 'on',
      };
      // The "VM" is a process of this host's user: its home and address are the instance's own.
      const facts = { ...req.agent, user: { ...req.agent.user, home: join(d, 'home') }, listen: { ...req.agent.listen, address: rec.address } };
      writeFileSync(join(d, 'startup.sh'), startupScript(facts, { root: d, agentCommand: this.o.agentCommand.join(' ') }), { mode: 0o700 });
      // instance.json last: its presence means the instance exists (the record of intent).
      this.write(rec);
      await this.boot(req.name);
      return this.toInstance(rec);
    });
  }

  /** Runs the startup script as a new process group (the instance's process tree). */
  private async boot(name: string): Promise<void> {
    const d = this.dir(name);
    if (this.pid(name) !== undefined) return;
    rmSync(join(d, 'agent.pid'), { force: true });
    const log = openSync(join(d, 'console.log'), 'a');
    const child = spawn('bash', [join(d, 'startup.sh')], {
      cwd: d,
      detached: true,
      stdio: ['ignore', log, log],
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: join(d, 'home'), LANG: 'C.UTF-8', GITSPACES_ROOT: d, GITSPACES_CODE_SERVER: this.codeServer, GITSPACES_AGENT_USER: 'self',
        // The container runtime this host's "VMs" share, when the operator names one; compose
        // projects named per instance, as two VMs' would be apart (the default is the repo's name).
        ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST, COMPOSE_PROJECT_NAME: name } : {}),
      },
    });
    closeSync(log);
    child.unref();
    child.once('exit', (code, signal) => {
      this.agentExited(name, code, signal);
    });
    // Wait until the script has recorded the agent's pid, so state reads "running" from now on.
    for (let i = 0; i < 100 && this.pid(name) === undefined; i++) {
      if (child.exitCode !== null) throw new ProviderError('Transient', `local instance ${name} exited during boot (${child.exitCode}); see ${join(d, 'console.log')}`);
      await sleep(20);
    }
  }

  /**
   * The agent process ended without being stopped: as a VM's init would, say so on the console, in
   * the startup script's failure format with the agent's last line, so the operator can fail the
   * Gitspace with it (unless the agent said why itself).
   */
  private agentExited(name: string, code: number | null, signal: NodeJS.Signals | null): void {
    // A stop powers the record off first; a delete removes the directory.
    if (code === 0 || this.read(name)?.power !== 'on') return;
    const file = join(this.o.baseDir, name, 'console.log');
    let last: string;
    try {
      last = readFileSync(file, 'utf8').slice(-CONSOLE_TAIL).trimEnd().split('\n').pop() ?? '';
    } catch {
      return; // deleted meanwhile
    }
    if (last.startsWith(BOOT_FAILURE_PREFIX)) return;
    const how = signal ? `was killed (${signal})` : `exited with status ${String(code)}`;
    appendFileSync(file, `${BOOT_FAILURE_PREFIX} reason=AgentExited: the agent ${how}; its last line: ${last.slice(0, 300)}\n`);
  }

  async start(inst: Instance): Promise<void> {
    const rec = this.read(inst.name);
    if (!rec) throw new ProviderError('NotFound', `local instance ${inst.name} not found`);
    if (rec.power !== 'on') this.write({ ...rec, power: 'on' });
    await this.boot(inst.name);
  }

  async stop(inst: Instance): Promise<void> {
    const rec = this.read(inst.name);
    if (!rec) throw new ProviderError('NotFound', `local instance ${inst.name} not found`);
    if (rec.power !== 'off') this.write({ ...rec, power: 'off' });
    await this.kill(inst.name);
    // A VM's containers stop with it; a local "VM"'s run on the shared daemon, so say so.
    await this.containers(inst.name, 'stop');
  }

  /**
   * Stops or removes the instance's dev containers, if there is a daemon: those the agent labelled,
   * and the other services of their compose project (named after the instance, see boot()).
   */
  private async containers(name: string, action: 'stop' | 'rm'): Promise<void> {
    if (!process.env.DOCKER_HOST) return;
    const list = async (label: string) => (await runQuiet('docker', ['ps', '-aq', '--filter', `label=${label}`])).split('\n').filter(Boolean);
    const ids = new Set([...await list(`${LABELS.devcontainerInstance}=${name}`), ...await list(`com.docker.compose.project=${name}`)]);
    if (ids.size) await runQuiet('docker', action === 'stop' ? ['stop', '-t', '5', ...ids] : ['rm', '-f', '-v', ...ids]);
    if (action === 'rm') {
      const networks = (await runQuiet('docker', ['network', 'ls', '-q', '--filter', `label=com.docker.compose.project=${name}`])).split('\n').filter(Boolean);
      if (networks.length) await runQuiet('docker', ['network', 'rm', ...networks]);
    }
  }

  private async kill(name: string): Promise<void> {
    const pid = this.pid(name);
    if (pid === undefined) return;
    const signal = (sig: NodeJS.Signals) => {
      try {
        process.kill(-pid, sig); // the whole process group: agent, shells, IDE
      } catch {
        /* gone */
      }
    };
    signal('SIGTERM');
    const deadline = Date.now() + this.o.stopGraceMs;
    while (this.pid(name) !== undefined && Date.now() < deadline) await sleep(50);
    signal('SIGKILL');
    while (this.pid(name) !== undefined) await sleep(20);
  }

  async delete(inst: Instance): Promise<DeleteOutcome> {
    const d = this.dir(inst.name);
    if (!existsSync(d)) return 'gone';
    const address = this.read(inst.name)?.address;
    await this.kill(inst.name);
    await this.containers(inst.name, 'rm');
    rmSync(d, { recursive: true, force: true });
    if (address) handedOut.delete(address);
    return 'gone';
  }

  /** Records the new type and size (there is no machine to change), refusing what the clouds refuse. */
  resize(inst: Instance, req: ResizeRequest): Promise<void> {
    return this.serialised(() => {
      const rec = this.read(inst.name);
      if (!rec) throw new ProviderError('NotFound', `local instance ${inst.name} not found`);
      const state = this.toInstance(rec).state;
      if (state !== 'stopped') throw new ProviderError('InvalidConfig', `resize local instance ${inst.name}: it must be stopped (it is ${state})`);
      if (req.diskSizeGB !== undefined && rec.diskSizeGB !== undefined && req.diskSizeGB < rec.diskSizeGB) {
        throw new ProviderError('InvalidConfig', `resize local instance ${inst.name}: the disk cannot shrink from ${String(rec.diskSizeGB)} to ${String(req.diskSizeGB)} GB`);
      }
      this.write({ ...rec, machineType: req.providerType ?? rec.machineType, diskSizeGB: req.diskSizeGB ?? rec.diskSizeGB });
      return Promise.resolve();
    });
  }

  listOwned(labels: Record<string, string>): Promise<Instance[]> {
    const out: Instance[] = [];
    for (const n of this.names()) {
      const rec = this.read(n);
      if (rec && Object.entries(labels).every(([k, v]) => rec.labels[k] === v)) out.push(this.toInstance(rec));
    }
    return Promise.resolve(out);
  }

  relabel(inst: Instance, labels: Record<string, string>): Promise<void> {
    return this.serialised(() => {
      const rec = this.read(inst.name);
      if (!rec) throw new ProviderError('NotFound', `local instance ${inst.name} not found`);
      this.write({ ...rec, labels });
      return Promise.resolve();
    });
  }

  /** The instance's console.log (its startup script's output), the last 64 KiB. */
  consoleOutput(inst: Instance): Promise<string> {
    try {
      return Promise.resolve(readFileSync(join(this.dir(inst.name), 'console.log'), 'utf8').slice(-CONSOLE_TAIL));
    } catch {
      return Promise.resolve('');
    }
  }

  /** No credentials: nothing to check. */
  verify(): Promise<void> {
    return Promise.resolve();
  }

  /** Instances listen on loopback addresses of this host: there is no network to open or close. */
  ensureNetwork(): Promise<NetworkState> {
    return Promise.resolve({ id: 'loopback', action: 'none' });
  }
}
