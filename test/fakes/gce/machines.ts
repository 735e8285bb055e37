// How the GCE fake's instances "boot". With `startupScripts` an instance's startup-script metadata
// runs as a local process group (GITSPACES_ROOT, GITSPACES_AGENT, GITSPACES_LISTEN_ADDRESS set), so
// the path from the operator to a real agent is exercised. With `containers` each instance is a
// container that boots like a VM (test/fakes/vm-host.ts): the image the insert names, its own disk,
// address and systemd, the startup-script run on every boot as GCE's guest agent does. Without
// either, an instance is only its API state.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ContainerVms } from '../vm-host.ts';

export interface StartupScripts {
  rootDir: string;
  agentCommand: string[];
}

/**
 * Instances as containers: `images` maps GCE image paths to Docker tags; addresses are
 * `<addressPrefix>.x.y` on `network` (a bridge whose subnet is <addressPrefix>.0.0/16).
 */
export interface Containers {
  vms: ContainerVms;
  network: string;
  addressPrefix: string;
  images: Record<string, string>;
  namePrefix: string;
}

/** What booting needs of an instance. */
export interface Machine {
  id: string;
  name: string;
  networkIP: string;
  body: Record<string, unknown>;
  /** Process mode: the running startup script's process group. */
  pgid?: number;
  /** Container mode: the Docker actions on this instance, in order (create, start, stop, remove). */
  machine?: Promise<void>;
}

function startupScript(body: Record<string, unknown>): string | undefined {
  return ((body.metadata as { items?: { key: string; value: string }[] } | undefined)?.items ?? []).find((x) => x.key === 'startup-script')?.value;
}

export class Machines {
  private readonly scripts: StartupScripts | undefined;
  private readonly containers: Containers | undefined;

  constructor(o: { startupScripts?: StartupScripts; containers?: Containers }) {
    this.scripts = o.startupScripts;
    this.containers = o.containers;
  }

  /** Container mode: creates the instance's container (not yet started) from the image its insert names. */
  create(i: Machine, imagePath: string): void {
    const c = this.containers;
    if (!c) return;
    const tag = c.images[imagePath];
    const script = startupScript(i.body) ?? '';
    this.queue(i, () => c.vms.create({ name: this.containerName(i), image: tag ?? imagePath, network: c.network, ip: i.networkIP, kind: 'gce', instanceId: i.id, userData: script }));
  }

  /** What the instance printed on its serial port 1 (the startup script's output). */
  async serialPort(i: Machine): Promise<string> {
    const c = this.containers;
    if (c) return c.vms.console(this.containerName(i)).catch(() => ''); // not created yet: nothing printed
    const root = this.scripts ? join(this.scripts.rootDir, i.name) : undefined;
    try {
      return root ? readFileSync(join(root, 'console.log'), 'utf8').slice(-64 * 1024) : '';
    } catch {
      return '';
    }
  }

  boot(i: Machine): void {
    const c = this.containers;
    if (c) return this.queue(i, () => c.vms.start(this.containerName(i)));
    const s = this.scripts;
    if (!s || i.pgid) return;
    const script = startupScript(i.body);
    if (!script) return;
    const root = join(s.rootDir, i.name);
    mkdirSync(join(root, 'home'), { recursive: true });
    writeFileSync(join(root, 'startup.sh'), script, { mode: 0o700 });
    const log = openSync(join(root, 'console.log'), 'a');
    const child = spawn('bash', [join(root, 'startup.sh')], {
      detached: true,
      stdio: ['ignore', log, log],
      env: { PATH: process.env.PATH, HOME: join(root, 'home'), GITSPACES_ROOT: root, GITSPACES_AGENT: s.agentCommand.join(' '), GITSPACES_LISTEN_ADDRESS: i.networkIP, GITSPACES_HOME: join(root, 'home'), GITSPACES_AGENT_USER: 'self' },
    });
    closeSync(log);
    child.unref();
    i.pgid = child.pid;
  }

  /** Powers the instance off (stop) or, with `remove`, deletes it with its disk. */
  kill(i: Machine, remove = false): void {
    const c = this.containers;
    if (c) {
      const name = this.containerName(i);
      return this.queue(i, () => (remove ? c.vms.remove(name) : c.vms.stop(name)));
    }
    if (!i.pgid) return;
    try {
      process.kill(-i.pgid, 'SIGKILL');
    } catch {
      /* gone */
    }
    i.pgid = undefined;
  }

  /** Waits for every instance's Docker actions (container mode). */
  async settled(instances: Iterable<Machine>): Promise<void> {
    await Promise.all([...instances].map((i) => i.machine ?? Promise.resolve()));
  }

  /** Removes the booted instances' directories (their disks). */
  wipe(): void {
    if (this.scripts) rmSync(this.scripts.rootDir, { recursive: true, force: true });
  }

  private containerName(i: Machine): string {
    return `${this.containers?.namePrefix ?? 'gce'}-${i.name}`;
  }

  /** Container mode: runs `step` after the instance's earlier Docker actions (errors are logged). */
  private queue(i: Machine, step: () => Promise<void>): void {
    i.machine = (i.machine ?? Promise.resolve()).then(step).catch((e: unknown) => {
      process.stderr.write(`gce fake: instance ${i.name}: ${(e as Error).message}\n`);
    });
  }
}
