// Cloning with credentials that never appear in the remote URL, a file in the checkout, the
// process list or a log line: they go to `git credential approve` on stdin, into the user's
// credential store outside the checkout.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
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

export async function cloneRepository(user: DevUser, url: string, ref: string | undefined, dir: string): Promise<void> {
  const env = gitEnv(user.home);
  if (existsSync(join(dir, '.git'))) return; // the disk survived a restart: keep the user's work
  const clone = await user.run('git', ['clone', '--no-progress', '--', url, dir], { env, timeoutMs: 30 * 60_000 });
  if (clone.code !== 0) throw new StepError(`git clone ${url} failed: ${gitError(clone.output)}`);
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
