// `gitspaces ssh-config <host>...`: the OpenSSH `Host` entries desktop IDEs rely on (VS Code
// Remote-SSH, Cursor, Windsurf, JetBrains Gateway all read ~/.ssh/config): each Gitspace host
// reached through `gitspaces ssh` as ProxyCommand, so no SSH port is open anywhere.
//
//   gitspaces ssh-config --gateway https://gitspaces.example.com web--team-a.gitspaces.example.com >> ~/.ssh/config
import { flag } from './flags.ts';

const VALUE_FLAGS = new Set(['--gateway', '--command', '--identity-file']);

export function sshConfig(hosts: string[], o: { gateway?: string; command?: string; identityFile?: string }): string {
  const proxy = `${o.command ?? 'gitspaces'} ssh${o.gateway ? ` --gateway ${o.gateway}` : ''} %h`;
  return hosts
    .map((h) =>
      [
        `Host ${h}`,
        `  HostName ${h}`,
        '  User gitspace',
        `  ProxyCommand ${proxy}`,
        ...(o.identityFile ? [`  IdentityFile ${o.identityFile}`, '  IdentitiesOnly yes'] : []),
        // The host key is the Gitspace's own; it is new for every new Gitspace.
        '  StrictHostKeyChecking accept-new',
        '  ServerAliveInterval 30',
        '',
      ].join('\n'),
    )
    .join('\n');
}

export function runSshConfig(argv: string[]): void {
  const hosts = argv.filter((a, i) => !a.startsWith('--') && !VALUE_FLAGS.has(argv[i - 1] ?? ''));
  if (!hosts.length) throw new Error('usage: gitspaces ssh-config [--gateway URL] [--identity-file FILE] [--command CMD] <gitspace host>...');
  const gateway = flag(argv, '--gateway') ?? process.env.GITSPACES_GATEWAY;
  const command = flag(argv, '--command');
  const identityFile = flag(argv, '--identity-file');
  process.stdout.write(sshConfig(hosts, { ...(gateway ? { gateway } : {}), ...(command ? { command } : {}), ...(identityFile ? { identityFile } : {}) }));
}
