// Things a Gitspace needs on this machine: a git repository to clone and an SSH key to log in with.
import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { ROOT } from './resources.ts';

/** A git repository with a devcontainer.json; returns its path (clone it with file://). */
/** git in a test repository, as a fixed author. */
function gitIn(repo: string, args: string[]): void {
  execFileSync('git', args, { cwd: repo, env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@e', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@e' } });
}

/** Commits everything in the repository's work tree (on its current branch). */
export function commitAll(repo: string, message = 'change'): void {
  gitIn(repo, ['add', '-A']);
  gitIn(repo, ['commit', '-q', '-m', message]);
}

export function makeRepo(dir: string, devcontainer?: string, branch = 'main'): string {
  const repo = join(dir, 'repo');
  mkdirSync(join(repo, '.devcontainer'), { recursive: true });
  writeFileSync(join(repo, 'README.md'), '# sample\n');
  writeFileSync(
    join(repo, '.devcontainer/devcontainer.json'),
    devcontainer ??
      `{
  // a comment, as devcontainer.json allows
  "image": "mcr.microsoft.com/devcontainers/base:ubuntu",
  "containerEnv": { "GREETING": "hello from devcontainer" },
  "postCreateCommand": "echo created > .post-create",
  "postStartCommand": "date > .post-start",
  "forwardPorts": [3000, 8080,],
}
`,
  );
  const git = (...args: string[]) => gitIn(repo, args);
  git('init', '-q', '-b', branch);
  git('add', '-A');
  git('commit', '-q', '-m', 'initial');
  git('checkout', '-q', '-b', 'feature/x');
  writeFileSync(join(repo, 'FEATURE.md'), 'on the feature branch\n');
  git('add', '-A');
  git('commit', '-q', '-m', 'feature');
  git('checkout', '-q', branch);
  return repo;
}

/**
 * A repository whose dev container is built FROM `base`, with a user `dev` of uid 1500 (which
 * updateRemoteUserUID maps to the VM user's), a tool only the container has (`only-in-container`)
 * and IN_CONTAINER=yes; postCreateCommand appends `postCreate <user> <uid>` to .hooks in the
 * workspace, postStartCommand `postStart` to ~/starts. With `waitFor`, initializeCommand (on the
 * VM) waits up to 4 minutes for that image (which a test copies into the VM, as a pull would).
 */
export function makeDevcontainerRepo(dir: string, base: string, waitFor?: string): string {
  mkdirSync(dir, { recursive: true });
  const repo = makeRepo(dir, JSON.stringify({
    build: { dockerfile: 'Dockerfile' },
    remoteUser: 'dev',
    containerEnv: { IN_CONTAINER: 'yes' },
    ...(waitFor ? { initializeCommand: `for i in $(seq 240); do docker image inspect ${waitFor} >/dev/null 2>&1 && exit 0; sleep 1; done; exit 1` } : {}),
    postCreateCommand: 'echo postCreate $(id -un) $(id -u) >> .hooks',
    postStartCommand: 'echo postStart >> ~/starts',
  }));
  writeFileSync(join(repo, '.devcontainer/Dockerfile'), [
    `FROM ${base}`,
    'RUN useradd --create-home --uid 1500 --shell /bin/bash dev && printf "#!/bin/sh\\necho container-tool\\n" > /usr/local/bin/only-in-container && chmod +x /usr/local/bin/only-in-container',
    '',
  ].join('\n'));
  commitAll(repo);
  return repo;
}

export interface SshKey {
  privateKey: string;
  publicLine: string;
}

/** A new key, its private half written to `<dir>/id_ecdsa` (0600) for `ssh -i`. */
export function makeSshKeyFile(dir: string): { key: SshKey; keyFile: string } {
  const key = makeSshKey();
  const keyFile = join(dir, 'id_ecdsa');
  writeFileSync(keyFile, key.privateKey, { mode: 0o600 });
  return { key, keyFile };
}

export function makeSshKey(comment = 'test@gitspaces'): SshKey {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const pem = privateKey.export({ type: 'sec1', format: 'pem' }).toString();
  const parsed = ssh2.utils.parseKey(pem);
  if (parsed instanceof Error) throw parsed;
  const k: ssh2.ParsedKey | undefined = Array.isArray(parsed) ? (parsed as ssh2.ParsedKey[])[0] : (parsed);
  if (!k) throw new Error('no key');
  return { privateKey: pem, publicLine: `${k.type} ${k.getPublicSSH().toString('base64')} ${comment}` };
}

export interface SshResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command over SSH (with a PTY when `pty`), as a desktop IDE's terminal would. */
export function sshExec(host: string, port: number, key: SshKey, command: string, pty = false, o: { agent?: string } = {}): Promise<SshResult> {
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    c.on('ready', () => {
      c.exec(command, pty ? { pty: { rows: 30, cols: 100, term: 'xterm' } } : {}, (err, stream) => {
        if (err) {
          reject(err);
          return;
        }
        let stdout = '';
        let stderr = '';
        let code: number | null = null;
        stream.on('data', (d: Buffer) => (stdout += d.toString()));
        stream.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        stream.on('exit', (c2: number | null) => (code = c2));
        stream.on('close', () => {
          c.end();
          resolve({ code, stdout, stderr });
        });
      });
    });
    c.on('error', reject);
    c.connect({ host, port, username: 'dev', privateKey: key.privateKey, readyTimeout: 10_000, ...(o.agent ? { agent: o.agent, agentForward: true } : {}) });
  });
}

/** ssh2's client straight to an agent: writes `content` to `path` over SFTP and lists its directory. */
export function sftpPut(host: string, port: number, key: SshKey, path: string, content: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    const fail = (e: Error) => {
      c.end();
      reject(e);
    };
    c.on('ready', () => {
      c.sftp((err, sftp) => {
        if (err) return fail(err);
        sftp.writeFile(path, content, (e1) => {
          if (e1) return fail(e1);
          sftp.readdir(path.replace(/\/[^/]*$/, '') || '/', (e2, list) => {
            if (e2) return fail(e2);
            c.end();
            resolve(list.map((f) => f.filename).sort());
          });
        });
      });
    });
    c.on('error', reject);
    c.connect({ host, port, username: 'dev', privateKey: key.privateKey, readyTimeout: 10_000 });
  });
}

/** ssh2's client straight to an agent: a direct-tcpip channel (as ssh -L) to `localhost:<port>`, `request` sent, the reply read to its end. */
export function sshForward(host: string, port: number, key: SshKey, destPort: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    c.on('ready', () => {
      c.forwardOut('127.0.0.1', 0, 'localhost', destPort, (err, stream) => {
        if (err) {
          c.end();
          reject(err);
          return;
        }
        let out = '';
        stream.on('data', (d: Buffer) => (out += d.toString()));
        stream.on('close', () => {
          c.end();
          resolve(out);
        });
        stream.end(request);
      });
    });
    c.on('error', reject);
    c.connect({ host, port, username: 'dev', privateKey: key.privateKey, readyTimeout: 10_000 });
  });
}

/**
 * The stock OpenSSH client to `gitspace@<host>` through the gateway, with `gitspaces ssh` as its
 * ProxyCommand and `token` as GITSPACES_TOKEN: what a terminal or desktop IDE does.
 */
export async function sshViaGateway(o: { gateway: string; host: string; keyFile: string; token: string; command: string; options?: string[] }): Promise<{ code: number | null; out: string; err: string }> {
  const proxy = `${process.execPath} ${join(ROOT, 'src/cli/main.ts')} ssh --gateway ${o.gateway} %h`;
  const child = spawn('ssh', ['-F', '/dev/null', '-o', `ProxyCommand=${proxy}`, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', ...(o.options ?? []), '-i', o.keyFile, `gitspace@${o.host}`, o.command], {
    env: { ...process.env, GITSPACES_TOKEN: o.token },
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((r) => child.on('close', r));
  return { code, out, err };
}
