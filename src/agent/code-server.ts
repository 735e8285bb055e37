// code-server (VS Code in the browser) for the `vscode-web` IDE. It listens on a unix socket that
// only the agent's user can open, so `--auth none` is safe: every request reaches it through the
// agent, which has checked the per-Gitspace secret. The agent proxies HTTP and WebSockets to it.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { lastLine, run } from './run.ts';


/** The code-server to run: $GITSPACES_CODE_SERVER, else `code-server` on PATH. */
export function codeServerBinary(): string | undefined {
  const configured = process.env.GITSPACES_CODE_SERVER;
  if (configured) return isAbsolute(configured) ? (existsSync(configured) ? configured : undefined) : onPath(configured);
  return onPath('code-server');
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, name);
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}

export interface CodeServerOptions {
  bin: string;
  /** Where its user data and extensions live (the user's, kept with the disk). */
  dataDir: string;
  folder: string;
  env: NodeJS.ProcessEnv;
  log: (msg: string, fields?: Record<string, unknown>) => void;
  /** Runs it as the developer's user (DevUser.wrap). */
  wrap: (argv: string[]) => string[];
}

export class CodeServer {
  private readonly o: CodeServerOptions;
  private child: ChildProcess | undefined;
  readonly socket: string;

  constructor(o: CodeServerOptions & { socket: string }) {
    this.o = o;
    this.socket = o.socket;
  }

  /**
   * How to run it: the npm package's entry script runs on the agent's own Node (code-server needs
   * Node 24 and its native modules were built for it; `#!/usr/bin/env node` could find another).
   */
  private command(): [string, string[]] {
    const real = realpathSync(this.o.bin);
    const [cmd = this.o.bin, ...pre] = this.o.wrap(real.endsWith('.js') ? [process.execPath, real] : [this.o.bin]);
    return [cmd, pre];
  }

  private get userDataDir(): string {
    return join(this.o.dataDir, 'user-data');
  }

  private get extensionsDir(): string {
    return join(this.o.dataDir, 'extensions');
  }

  /** Merges devcontainer `customizations.vscode.settings` into the user's settings.json. */
  applySettings(settings: Record<string, unknown>): void {
    const file = join(this.userDataDir, 'User', 'settings.json');
    mkdirSync(dirname(file), { recursive: true });
    let current: Record<string, unknown> = {};
    try {
      current = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch {
      // none yet (or unreadable: ours replaces it)
    }
    writeFileSync(file, JSON.stringify({ ...current, ...settings }, null, 2) + '\n');
  }

  /** Installs extensions by id; returns those that could not be installed, with why. */
  async installExtensions(ids: string[]): Promise<{ id: string; error: string }[]> {
    const failed: { id: string; error: string }[] = [];
    for (const id of ids) {
      const [cmd, pre] = this.command();
      const r = await run(cmd, [...pre, '--extensions-dir', this.extensionsDir, '--user-data-dir', this.userDataDir, '--install-extension', id], { env: this.o.env, timeoutMs: 120_000 });
      if (r.code !== 0 || /failed|not found|error/i.test(r.output)) {
        failed.push({ id, error: lastLine(r.output) || `exit ${String(r.code)}` });
      }
    }
    return failed;
  }

  /** Starts it and waits until the workbench page is served for the folder. */
  async start(timeoutMs = 90_000): Promise<void> {
    mkdirSync(this.o.dataDir, { recursive: true, mode: 0o700 });
    rmSync(this.socket, { force: true });
    const args = codeServerArgs(this.socket, this.o.dataDir, this.o.folder);
    const [cmd, pre] = this.command();
    const child = spawn(cmd, [...pre, ...args], { cwd: this.o.folder, env: this.o.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let output = '';
    const keep = (d: Buffer) => {
      output = (output + d.toString('utf8')).slice(-4_096);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`code-server exited (${String(child.exitCode ?? child.signalCode)}): ${lastLine(output)}`);
      if (await workbenchServed(this.socket, this.o.folder)) break;
      if (Date.now() > deadline) throw new Error(`code-server did not serve the workbench within ${String(timeoutMs / 1000)} s: ${lastLine(output)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    this.o.log('code-server ready', { socket: this.socket, folder: this.o.folder });
  }

  stop(): void {
    this.child?.kill('SIGTERM');
  }
}

/** code-server's flags: no auth (only the agent reaches its socket), no phoning home, this data dir and folder. */
export function codeServerArgs(socket: string, dataDir: string, folder: string): string[] {
  return [
    '--auth', 'none', '--socket', socket, '--socket-mode', '600',
    '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', '--disable-getting-started-override',
    '--user-data-dir', join(dataDir, 'user-data'), '--extensions-dir', join(dataDir, 'extensions'), folder,
  ];
}

/** IDE readiness is the workbench page itself, not a listening socket. */
export function workbenchServed(socket: string, folder: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: `/?folder=${encodeURIComponent(folder)}`, headers: { host: 'localhost' }, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (body.length < 65_536) body += c;
      });
      res.on('end', () => {
        resolve(res.statusCode === 200 && body.includes('workbench'));
      });
    });
    req.on('error', () => {
      resolve(false);
    });
    req.on('timeout', () => req.destroy());
    req.end();
  });
}
