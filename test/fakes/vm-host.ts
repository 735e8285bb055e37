// "Instances that boot like VMs", made of Docker containers: systemd is PID 1, the container's
// writable layer (plus a volume for /var/lib/docker) is the disk, `docker start` is a boot, and the
// image's fake cloud guest (scripts/vm-images.sh) runs the instance's payload the way GCE (every
// boot) or EC2's cloud-init (first boot of the instance only) would, its output going to the
// "serial console" /var/log/fake-cloud/console.log.
import { run } from '../../src/agent/run.ts';
import type { Docker } from '../support/docker.ts';

export type CloudKind = 'gce' | 'ec2';

export interface VmSpec {
  /** Container name and hostname (as a GCE instance's). */
  name: string;
  image: string;
  /** A bridge network made with Docker.network(); Docker's default bridge when absent. */
  network?: string;
  /** A fixed address on `network` (which then needs a subnet). */
  ip?: string;
  kind: CloudKind;
  instanceId: string;
  /** The startup script (gce) or user-data script (ec2); run as root with bash. */
  userData: string;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Docker's container states, and `absent` for no such container. */
export type VmState = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead' | 'absent';

/** The label on every instance container (its value: the name), for removeAll(). */
export const VM_LABEL = 'gitspaces.test.vm';

/**
 * `docker create` flags that boot Debian 12's systemd as PID 1 on this machine (cgroup v1 host,
 * Docker 20.10) and let the instance run Docker itself (dev containers). `--privileged` cannot be
 * used: the machine's capability bounding set lacks CAP_SYS_RESOURCE, so: every capability but that
 * one, no seccomp/AppArmor/masked /proc paths, all devices, the host's cgroup hierarchies writable
 * (systemd and the inner dockerd make their cgroups under the container's own), /run and
 * /run/lock fresh tmpfs on each boot as on a VM, /var/lib/docker a volume (overlay on overlay
 * fails), and SIGRTMIN+3, systemd's "halt", as the stop signal: `docker stop` is a clean shutdown.
 */
export const VM_FLAGS: readonly string[] = [
  '--cap-add=ALL', '--cap-drop=SYS_RESOURCE',
  '--security-opt', 'seccomp=unconfined', '--security-opt', 'apparmor=unconfined', '--security-opt', 'systempaths=unconfined',
  '--device-cgroup-rule=a *:* rwm',
  '--cgroupns=host', '-v', '/sys/fs/cgroup:/sys/fs/cgroup:rw',
  '--tmpfs', '/run', '--tmpfs', '/run/lock',
  '-v', '/var/lib/docker',
  '--stop-signal', 'SIGRTMIN+3',
];

const CONSOLE = '/var/log/fake-cloud/console.log';
const CONSOLE_MAX = 64 * 1024;

/** A ustar archive of regular files owned by root (what `docker cp -` takes on stdin). */
function tarFiles(files: { path: string; content: string; mode: number }[]): Buffer {
  const parts: Buffer[] = [];
  const octal = (n: number, width: number) => n.toString(8).padStart(width - 1, '0') + '\0';
  for (const f of files) {
    const data = Buffer.from(f.content, 'utf8');
    const h = Buffer.alloc(512);
    h.write(f.path, 0, 100, 'utf8');
    h.write(octal(f.mode, 8), 100, 'ascii');
    h.write(octal(0, 8), 108, 'ascii');
    h.write(octal(0, 8), 116, 'ascii');
    h.write(octal(data.length, 12), 124, 'ascii');
    h.write(octal(Math.floor(Date.now() / 1000), 12), 136, 'ascii');
    h.write('        ', 148, 'ascii');
    h.write('0', 156, 'ascii');
    h.write('ustar\0' + '00', 257, 'ascii');
    h.write(octal(h.reduce((a, b) => a + b, 0), 7) + ' ', 148, 'ascii');
    parts.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** The first regular file's content in a tar stream (what `docker cp NAME:FILE -` writes). */
function untarFirst(tar: Buffer): Buffer {
  if (tar.length < 512) return Buffer.alloc(0);
  const size = parseInt(tar.subarray(124, 136).toString('ascii').replace(/\0.*$/s, '').trim() || '0', 8);
  return tar.subarray(512, 512 + size);
}

export class ContainerVms {
  private readonly docker: Docker;

  constructor(docker: Docker) {
    this.docker = docker;
  }

  /** Creates the instance (not started): its cloud kind, instance id and payload are in place. */
  async create(spec: VmSpec): Promise<void> {
    const net = spec.network ? ['--network', spec.network, ...(spec.ip ? ['--ip', spec.ip] : [])] : [];
    await this.docker.run([
      'create', '--name', spec.name, '--hostname', spec.name,
      '--label', `${VM_LABEL}=${spec.name}`, '--label', `gitspaces.test.kind=${spec.kind}`, '--label', `gitspaces.test.instance-id=${spec.instanceId}`,
      ...net, ...VM_FLAGS, spec.image,
    ]);
    try {
      await this.put(spec.name, [
        { path: 'etc/fake-cloud/kind', content: `${spec.kind}\n`, mode: 0o644 },
        { path: 'etc/fake-cloud/instance-id', content: `${spec.instanceId}\n`, mode: 0o644 },
        { path: 'var/lib/fake-cloud/user-data', content: spec.userData, mode: 0o700 },
      ]);
    } catch (e) {
      await this.remove(spec.name);
      throw e;
    }
  }

  /** Replaces the payload (as editing a stopped GCE instance's startup-script metadata). */
  async setUserData(name: string, userData: string): Promise<void> {
    await this.put(name, [{ path: 'var/lib/fake-cloud/user-data', content: userData, mode: 0o700 }]);
  }

  /** Boots the instance: systemd starts, and its fake cloud guest runs the payload (gce: each boot). */
  async start(name: string): Promise<void> {
    await this.docker.run(['start', name]);
  }

  /** A clean shutdown (systemd halts); the disk is kept for the next start(). */
  async stop(name: string, timeoutS = 30): Promise<void> {
    await this.docker.run(['stop', '--time', String(timeoutS), name], { timeoutMs: (timeoutS + 30) * 1000 });
  }

  /** Deletes the instance and its disk; no error when it is not there. */
  async remove(name: string): Promise<void> {
    const r = await this.docker.exec(['rm', '--force', '--volumes', name]);
    if (r.code !== 0 && !/No such container/i.test(r.stderr)) throw new Error(`docker rm ${name}: ${r.stderr.trim()}`);
  }

  /** Removes every instance container whose name starts with `prefix`; returns how many. */
  async removeAll(prefix: string): Promise<number> {
    const names = (await this.docker.run(['ps', '--all', '--filter', `label=${VM_LABEL}`, '--format', '{{.Names}}']))
      .split('\n').map((s) => s.trim()).filter((s) => s !== '' && s.startsWith(prefix));
    if (names.length > 0) await this.docker.run(['rm', '--force', '--volumes', ...names], { timeoutMs: 300_000 });
    return names.length;
  }

  /** The instance's address on its network (or its first network); '' when it has none (stopped). */
  async ip(name: string): Promise<string> {
    const [c] = JSON.parse(await this.docker.run(['inspect', '--type', 'container', name])) as {
      HostConfig: { NetworkMode: string };
      NetworkSettings: { Networks: Record<string, { IPAddress?: string }> | null };
    }[];
    const nets = Object.entries(c?.NetworkSettings.Networks ?? {});
    return (nets.find(([n]) => n === c?.HostConfig.NetworkMode) ?? nets[0])?.[1].IPAddress ?? '';
  }

  /** The tail (at most 64 KiB) of the instance's serial console; '' before anything was written. */
  async console(name: string): Promise<string> {
    const r = await this.docker.exec(['cp', `${name}:${CONSOLE}`, '-'], { encoding: 'latin1' });
    if (r.code !== 0) {
      if (/Could not find the file|No such container:path/i.test(r.stderr)) return '';
      throw new Error(`docker cp ${name}:${CONSOLE}: ${r.stderr.trim()}`);
    }
    const log = untarFirst(Buffer.from(r.stdout, 'latin1'));
    return log.subarray(Math.max(0, log.length - CONSOLE_MAX)).toString('utf8');
  }

  /** Runs argv in the (running) instance, as root or `user`. */
  exec(name: string, argv: string[], opts: { user?: string; input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    return this.docker.exec([
      'exec', ...(opts.input !== undefined ? ['--interactive'] : []), ...(opts.user ? ['--user', opts.user] : []), name, ...argv,
    ], { input: opts.input ?? '', timeoutMs: opts.timeoutMs ?? 120_000 });
  }

  /**
   * Copies `image` from the test's Docker into the (running) instance's own Docker: no registry is
   * reachable here, so this stands in for the pull a VM would do.
   */
  async loadImage(name: string, image: string, timeoutMs = 300_000): Promise<void> {
    const r = await run('bash', ['-o', 'pipefail', '-c', 'docker save "$1" | docker exec -i "$2" docker load --quiet', 'load', image, name], {
      env: { ...process.env, DOCKER_HOST: this.docker.host }, timeoutMs,
    });
    if (r.code !== 0) throw new Error(`loading ${image} into ${name}: ${r.output.trim()}`);
  }

  async state(name: string): Promise<VmState> {
    const r = await this.docker.exec(['inspect', '--type', 'container', '--format', '{{.State.Status}}', name]);
    if (r.code !== 0) {
      if (/No such/i.test(r.stderr)) return 'absent';
      throw new Error(`docker inspect ${name}: ${r.stderr.trim()}`);
    }
    return r.stdout.trim() as VmState;
  }

  /**
   * Waits until systemd has finished booting (the fake cloud guest is a oneshot unit, so this
   * includes the payload) and returns `systemctl is-system-running`: running, or degraded when
   * some unit failed.
   */
  async booted(name: string, timeoutMs = 120_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      const r = await this.exec(name, ['systemctl', 'is-system-running', '--wait'], { timeoutMs: Math.max(1000, deadline - Date.now()) }).catch((e: unknown) => ({ code: -1, stdout: '', stderr: String(e) }));
      last = (r.stdout.trim() || r.stderr.trim());
      if (r.stdout.trim() === 'running' || r.stdout.trim() === 'degraded') return r.stdout.trim();
      await new Promise((res) => setTimeout(res, 200));
    }
    throw new Error(`${name} did not finish booting within ${timeoutMs} ms (last: ${last})`);
  }

  private async put(name: string, files: { path: string; content: string; mode: number }[]): Promise<void> {
    await this.docker.run(['cp', '-', `${name}:/`], { input: tarFiles(files) });
  }
}
