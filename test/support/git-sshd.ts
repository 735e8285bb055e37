// An OpenSSH sshd of the test's own on loopback (Debian's openssh-server, from scripts/test-tools.sh)
// that admits exactly one public key: the git server for git-over-SSH tests. Repositories are
// paths on this machine (ssh://root@127.0.0.1:<port>/<path>).
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../cluster/cluster.ts';
import { eventually } from './wait.ts';

export interface GitSshd {
  port: number;
  /** Its host key as known_hosts wants it: `[127.0.0.1]:<port> ssh-ed25519 AAAA…`. */
  knownHostsLine: string;
  /** `ssh://root@127.0.0.1:<port><path>` */
  url(path: string): string;
  log(): string;
  stop(): void;
}

export async function startGitSshd(parent: string, authorizedKey: string): Promise<GitSshd> {
  const dir = mkdtempSync(join(parent, 'sshd-'));
  chmodSync(dir, 0o700);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_key')]);
  writeFileSync(join(dir, 'authorized_keys'), `${authorizedKey.trim()}\n`, { mode: 0o600 });
  const port = await freePort();
  writeFileSync(join(dir, 'sshd_config'), [
    `Port ${String(port)}`, 'ListenAddress 127.0.0.1', `HostKey ${join(dir, 'host_key')}`, `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no', 'StrictModes no', 'PermitRootLogin prohibit-password',
    `PidFile ${join(dir, 'sshd.pid')}`, '',
  ].join('\n'));
  mkdirSync('/run/sshd', { recursive: true }); // its privilege-separation directory
  const sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  sshd.stderr.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
  const hostKey = readFileSync(join(dir, 'host_key.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
  await eventually(() => `sshd on 127.0.0.1:${String(port)} (${log})`, 10_000, () => (log.includes('Server listening') ? true : undefined), 50);
  return {
    port,
    knownHostsLine: `[127.0.0.1]:${String(port)} ${hostKey}`,
    url: (path) => `ssh://root@127.0.0.1:${String(port)}${path}`,
    log: () => log,
    stop: () => sshd.kill('SIGTERM'),
  };
}
