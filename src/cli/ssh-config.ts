// `gitspaces ssh-config <host>...`: the OpenSSH `Host` entries desktop IDEs rely on (VS Code
// Remote-SSH, Cursor, Windsurf, JetBrains Gateway all read ~/.ssh/config): each Gitspace host
// reached through `gitspaces ssh` as ProxyCommand, so no SSH port is open anywhere. With a token
// ($GITSPACES_TOKEN or its file, as `gitspaces ssh` reads it), it asks the gateway for each
// Gitspace's SSH host key and writes it to a known_hosts file of its own, so the entries check the
// key (StrictHostKeyChecking yes) instead of trusting whatever answers first.
//
//   gitspaces ssh-config --gateway https://gitspaces.example.com web--team-a.gitspaces.example.com >> ~/.ssh/config
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { GATEWAY_KNOWN_HOSTS_PATH, isSshHostKey } from '../api/index.ts';
import { flag } from './flags.ts';
import { token } from './ssh.ts';

const VALUE_FLAGS = new Set(['--gateway', '--command', '--identity-file', '--known-hosts']);

export interface SshConfigOptions {
  gateway?: string;
  command?: string;
  identityFile?: string;
  /** The known_hosts file holding the hosts' keys; without it, keys are trusted on first use. */
  knownHosts?: string;
}

export function sshConfig(hosts: string[], o: SshConfigOptions): string {
  const proxy = `${o.command ?? 'gitspaces'} ssh${o.gateway ? ` --gateway ${o.gateway}` : ''} %h`;
  return hosts
    .map((h) =>
      [
        `Host ${h}`,
        `  HostName ${h}`,
        '  User gitspace',
        `  ProxyCommand ${proxy}`,
        ...(o.identityFile ? [`  IdentityFile ${o.identityFile}`, '  IdentitiesOnly yes'] : []),
        // The host key is the Gitspace's own, kept across stop/start; known, it is checked.
        ...(o.knownHosts ? [`  UserKnownHostsFile ${o.knownHosts}`, '  StrictHostKeyChecking yes'] : ['  StrictHostKeyChecking accept-new']),
        '  ServerAliveInterval 30',
        '',
      ].join('\n'),
    )
    .join('\n');
}

/** The gateway's known_hosts line for `host` (`<host> <key type> <key>`), checked. */
export function knownHostsLine(host: string, gateway: string, bearer: string): Promise<string> {
  const url = new URL(GATEWAY_KNOWN_HOSTS_PATH, gateway);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, { headers: { host, authorization: `Bearer ${bearer}` }, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body = (body + c).slice(0, 4096);
      });
      res.on('end', () => {
        const line = body.trim();
        const key = line.slice(host.length + 1);
        if (res.statusCode !== 200) reject(new Error(`${host}: the gateway answered ${String(res.statusCode)} ${line}`));
        else if (!line.startsWith(`${host} `) || !isSshHostKey(key)) reject(new Error(`${host}: the gateway's answer is not a known_hosts line`));
        else resolve(line);
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${host}: the gateway did not answer within 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** `file` with the lines for `lines`' hosts replaced by them. */
function mergeKnownHosts(file: string, lines: string[]): void {
  const hosts = new Set(lines.map((l) => l.split(' ')[0]));
  const kept = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() && !hosts.has(l.split(' ')[0])) : [];
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, [...kept, ...lines, ''].join('\n'), { mode: 0o600 });
}

export async function runSshConfig(argv: string[]): Promise<void> {
  const hosts = argv.filter((a, i) => !a.startsWith('--') && !VALUE_FLAGS.has(argv[i - 1] ?? ''));
  if (!hosts.length) throw new Error('usage: gitspaces ssh-config [--gateway URL] [--identity-file FILE] [--known-hosts FILE] [--command CMD] <gitspace host>...');
  const gateway = flag(argv, '--gateway') ?? process.env.GITSPACES_GATEWAY;
  const command = flag(argv, '--command');
  const identityFile = flag(argv, '--identity-file');
  const knownHostsFile = flag(argv, '--known-hosts') ?? join(homedir(), '.ssh', 'gitspaces_known_hosts');
  let knownHosts: string | undefined;
  let bearer: string | undefined;
  try {
    bearer = token();
  } catch {
    process.stderr.write('gitspaces ssh-config: no token, so host keys are not fetched: the entries trust a host key on first use (accept-new)\n');
  }
  if (bearer) {
    const lines = await Promise.all(hosts.map((h) => knownHostsLine(h, gateway ?? `https://${h}`, bearer)));
    mergeKnownHosts(knownHostsFile, lines);
    knownHosts = knownHostsFile;
  }
  process.stdout.write(sshConfig(hosts, { ...(gateway ? { gateway } : {}), ...(command ? { command } : {}), ...(identityFile ? { identityFile } : {}), ...(knownHosts ? { knownHosts } : {}) }));
}
