// Cloning with credentials that never appear in the remote URL, a file in the checkout, the
// process list or a log line: a token goes to `git credential approve` on stdin, into the user's
// credential store outside the checkout; an SSH key and its known_hosts into the user's ~/.ssh
// (0600, written as the user), used by this repository's ssh with StrictHostKeyChecking=yes.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './run.ts';
import type { DevUser } from './user.ts';

export class StepError extends Error {}

function gitEnv(home: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: home, GIT_TERMINAL_PROMPT: '0', LANG: 'C.UTF-8' };
}

/** Default usernames for token auth, by host (what each forge expects with a token). */
export function tokenUsername(url: string): string {
  const host = /^[a-z]+:\/\/([^/:]+)/i.exec(url)?.[1] ?? '';
  if (host.endsWith('gitlab.com') || host.includes('gitlab')) return 'oauth2';
  if (host.endsWith('bitbucket.org')) return 'x-token-auth';
  return 'x-oauth-basic';
}

/** As the developer's user: the store is a 0600 file in that user's home. */
export async function storeCredentials(user: DevUser, url: string, creds: { username: string; password: string }): Promise<void> {
  const env = gitEnv(user.home);
  const helper = await user.run('git', ['config', '--global', 'credential.helper', 'store'], { env });
  if (helper.code !== 0) throw new StepError(`git config failed: ${helper.output.trim()}`);
  const u = new URL(url);
  const input = `protocol=${u.protocol.replace(':', '')}\nhost=${u.host}\nusername=${creds.username || tokenUsername(url)}\npassword=${creds.password}\n\n`;
  const r = await user.run('git', ['credential', 'approve'], { env, input });
  if (r.code !== 0) throw new StepError('git credential approve failed');
}

/** The user's files for git over SSH, under ~/.ssh. */
const SSH_KEY_FILE = '.ssh/gitspaces_git_key';
const KNOWN_HOSTS_FILE = '.ssh/gitspaces_known_hosts';

/** The ssh command git uses for the repository: the key from the Secret, its known_hosts, no prompts. */
export function gitSshCommand(home: string): string {
  return `ssh -i ${join(home, SSH_KEY_FILE)} -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${join(home, KNOWN_HOSTS_FILE)} -o BatchMode=yes`;
}

/** Writes the key (0600) and known_hosts into the user's ~/.ssh, as the user (so a link there cannot aim root's write elsewhere). */
export async function storeSshKey(user: DevUser, creds: { sshPrivateKey: string; knownHosts: string }): Promise<void> {
  const write = async (file: string, content: string) => {
    const r = await user.run('sh', ['-c', 'umask 077 && mkdir -p "$HOME/.ssh" && cat > "$HOME/$1.tmp" && mv -f "$HOME/$1.tmp" "$HOME/$1"', 'sh', file], { env: gitEnv(user.home), input: content.endsWith('\n') ? content : `${content}\n` });
    if (r.code !== 0) throw new StepError(`writing ~/${file} failed: ${r.output.trim().slice(0, 300)}`);
  };
  await write(SSH_KEY_FILE, creds.sshPrivateKey);
  await write(KNOWN_HOSTS_FILE, creds.knownHosts);
}

/** Host and port of an ssh:// or scp-like (user@host:path) URL; undefined for others. */
export function sshEndpoint(url: string): { host: string; port: number } | undefined {
  const m = /^ssh:\/\/(?:[^@/]+@)?(\[[^\]]+\]|[^:/]+)(?::(\d+))?\//.exec(url);
  if (m) return { host: (m[1] ?? '').replace(/^\[|\]$/g, ''), port: Number(m[2] ?? 22) };
  const scp = /^[A-Za-z0-9._-]+@([A-Za-z0-9.-]+):[^/]/.exec(url);
  return scp ? { host: scp[1] ?? '', port: 22 } : undefined;
}

/** What the server at `ep` shows as host keys (type and SHA256 fingerprint), to name in a failure. */
async function hostKeyFingerprints(ep: { host: string; port: number }): Promise<string> {
  const scan = await run('ssh-keyscan', ['-T', '5', '-p', String(ep.port), ep.host], { timeoutMs: 15_000 });
  const fp = await run('ssh-keygen', ['-l', '-f', '-'], { input: scan.output.split('\n').filter((l) => l && !l.startsWith('#')).join('\n') + '\n', timeoutMs: 5_000 });
  const shown = fp.output.trim().split('\n').map((l) => /^\d+ (SHA256:\S+) .*\((\w+)\)$/.exec(l.trim())).filter((m) => m).map((m) => `${m?.[2] ?? ''} ${m?.[1] ?? ''}`);
  return shown.length ? shown.join(', ') : 'no key it could read';
}

export async function cloneRepository(user: DevUser, url: string, ref: string | undefined, dir: string, o: { ssh?: boolean } = {}): Promise<void> {
  const env = { ...gitEnv(user.home), ...(o.ssh ? { GIT_SSH_COMMAND: gitSshCommand(user.home) } : {}) };
  if (existsSync(join(dir, '.git'))) return; // the disk survived a restart: keep the user's work
  const clone = await user.run('git', ['clone', '--no-progress', ...(o.ssh ? ['--config', `core.sshCommand=${gitSshCommand(user.home)}`] : []), '--', url, dir], { env, timeoutMs: 30 * 60_000 });
  if (clone.code !== 0) {
    const ep = o.ssh ? sshEndpoint(url) : undefined;
    if (ep && /Host key verification failed|host key .* is not known|REMOTE HOST IDENTIFICATION HAS CHANGED/i.test(clone.output)) {
      throw new StepError(`git clone ${url} failed: the SSH host key of ${ep.host}:${String(ep.port)} is not in the credentials Secret's known_hosts; the server shows ${await hostKeyFingerprints(ep)}`);
    }
    throw new StepError(`git clone ${url} failed: ${gitError(clone.output)}`);
  }
  if (ref) {
    const co = await user.run('git', ['checkout', '--quiet', ref, '--'], { cwd: dir, env });
    if (co.code !== 0) throw new StepError(`git checkout ${ref} failed: ${gitError(co.output)}`);
  }
}

/**
 * What git said went wrong: its first `fatal:` (or `error:`) line — the last line is often advice
 * ("… and the repository exists.") — else its last line.
 */
export function gitError(output: string): string {
  const lines = output.trim().split('\n').map((l) => l.trim()).filter(Boolean);
  return (lines.find((l) => l.startsWith('fatal:')) ?? lines.find((l) => l.startsWith('error:')) ?? lines.pop() ?? '').slice(0, 300);
}
