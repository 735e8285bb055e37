// The developer's user on the VM. Run as root (cloud VMs), the agent creates `gitspace` (uid 1000
// unless taken, a home, in the docker group when there is one, passwordless sudo when the infra
// allows it, as Codespaces does) and runs everything the developer touches as that user: shells,
// git and its credential store, lifecycle commands, code-server. The agent keeps root for itself
// and its files. Not run as root (the local provider), there is no one to become: commands run as
// the agent's own user. GITSPACES_AGENT_USER=self asks for the same as root: the local provider
// and the tests' process-booted fakes, whose "VMs" are processes of this host, set it.
import { chownSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, relative } from 'node:path';
import { run, type RunOptions, type RunResult } from './run.ts';

export class UserError extends Error {}

export class DevUser {
  readonly name: string;
  readonly home: string;
  /** Set when the agent runs as root and commands switch to this user. */
  readonly ids: { uid: number; gid: number } | undefined;

  private constructor(name: string, home: string, ids: { uid: number; gid: number } | undefined) {
    this.name = name;
    this.home = home;
    this.ids = ids;
  }

  /** Creates (or finds) the user when running as root; otherwise the agent's own user. */
  static async ensure(name: string, home: string, sudo: boolean): Promise<DevUser> {
    if (process.getuid?.() !== 0 || process.env.GITSPACES_AGENT_USER === 'self') return new DevUser(userInfo().username, home, undefined);
    const exists = (await run('id', ['-u', name])).code === 0;
    if (!exists) {
      // uid 1000 is what users of dev containers expect (bind-mounted files keep their owner).
      const taken = (await run('getent', ['passwd', '1000'])).code === 0;
      const r = await run('useradd', ['--create-home', '--home-dir', home, '--shell', '/bin/bash', '--user-group', ...(taken ? [] : ['--uid', '1000']), name]);
      if (r.code !== 0) throw new UserError(`useradd ${name} failed: ${r.output.trim() || `exit ${String(r.code)}`}`);
    }
    if ((await run('getent', ['group', 'docker'])).code === 0) await run('usermod', ['-aG', 'docker', name]);
    const sudoers = `/etc/sudoers.d/gitspaces-${name}`;
    if (sudo && existsSync('/etc/sudoers.d')) writeFileSync(sudoers, `${name} ALL=(ALL) NOPASSWD:ALL\n`, { mode: 0o440 });
    else rmSync(sudoers, { force: true });
    const uid = Number((await run('id', ['-u', name])).output.trim());
    const gid = Number((await run('id', ['-g', name])).output.trim());
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new UserError(`cannot read the ids of user ${name}`);
    const user = new DevUser(name, home, { uid, gid });
    if (!existsSync(home)) mkdirSync(home, { recursive: true, mode: 0o750 });
    if (statSync(home).uid !== uid) chownSync(home, uid, gid);
    return user;
  }

  /** argv that runs as this user, with its supplementary groups (docker), keeping our env and cwd. */
  wrap(argv: string[]): string[] {
    if (!this.ids) return argv;
    return ['setpriv', `--reuid=${String(this.ids.uid)}`, `--regid=${String(this.ids.gid)}`, '--init-groups', '--', ...argv];
  }

  run(cmd: string, args: string[], o: RunOptions = {}): Promise<RunResult> {
    const [c, ...a] = this.wrap([cmd, ...args]);
    return run(c ?? cmd, a, o);
  }

  /**
   * Hands files the agent made for the user (settings, data dirs) to the user: `path` and what
   * is under it, and the directories between it and the home.
   */
  async own(path: string): Promise<void> {
    if (!this.ids) return;
    const { uid, gid } = this.ids;
    await run('chown', ['-R', `${String(uid)}:${String(gid)}`, path]);
    for (let d = dirname(path); relative(this.home, d) && !relative(this.home, d).startsWith('..'); d = dirname(d)) chownSync(d, uid, gid);
  }

  /** A private directory for the user's sockets (code-server), outside the agent's own files. */
  runtimeDir(fallback: string): string {
    if (!this.ids) return fallback;
    const dir = `/run/gitspaces-${this.name}`;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chownSync(dir, this.ids.uid, this.ids.gid);
    return dir;
  }

  describe(): string {
    return this.ids
      ? `${this.name} (uid ${String(this.ids.uid)})`
      : `${this.name}: the agent's own user (a local instance: no separate user)`;
  }
}
