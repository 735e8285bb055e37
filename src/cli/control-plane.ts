// `gitspaces control-plane`: the reference control plane (docs/delegate-protocol.md).
//   --port 8090 --db FILE --issuer URL [--audience gitspaces] [--tls-cert FILE --tls-key FILE]
//   --delegate-token-file FILE (or $GITSPACES_DELEGATE_TOKEN)
//   --users-file FILE (TOKEN=SUBJECT lines) or $GITSPACES_USERS (TOKEN=SUBJECT,…)
import { readFileSync } from 'node:fs';
import { ControlPlane } from '../controlplane/server.ts';
import { parseUsers } from '../controlplane/users.ts';
import { flag, hasFlag, secretFrom, tlsFiles } from './flags.ts';

/** API users from --users-file or $GITSPACES_USERS; tokens on the command line are refused. */
function users(argv: string[]): Record<string, string> {
  if (hasFlag(argv, '--user')) throw new Error('--user puts a token on the command line, where `ps` shows it to everyone: use --users-file FILE or $GITSPACES_USERS');
  const file = flag(argv, '--users-file');
  return {
    ...(file ? parseUsers(readFileSync(file, 'utf8').split('\n'), file) : {}),
    ...(process.env.GITSPACES_USERS ? parseUsers(process.env.GITSPACES_USERS.split(','), '$GITSPACES_USERS') : {}),
  };
}

export async function runControlPlane(argv: string[]): Promise<void> {
  const port = Number(flag(argv, '--port') ?? 8090);
  const delegateToken = secretFrom(flag(argv, '--delegate-token-file'), 'GITSPACES_DELEGATE_TOKEN');
  const issuer = flag(argv, '--issuer') ?? `http://127.0.0.1:${port}`;
  if (!delegateToken) throw new Error('a delegate token is required: --delegate-token-file FILE or $GITSPACES_DELEGATE_TOKEN');
  const cp = new ControlPlane({
    dbPath: flag(argv, '--db') ?? 'control-plane.db',
    port,
    ...(flag(argv, '--address') ? { address: flag(argv, '--address') } : {}),
    issuer,
    ...(flag(argv, '--audience') ? { audience: flag(argv, '--audience') } : {}),
    delegateToken,
    users: users(argv),
    ...(flag(argv, '--redeliver-ms') ? { redeliverMs: Number(flag(argv, '--redeliver-ms')) } : {}),
    ...tlsFiles(flag(argv, '--tls-cert'), flag(argv, '--tls-key')),
  });
  const stop = () => {
    void cp.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  await cp.start();
  process.stdout.write(`control plane listening on ${cp.port}\n`);
}
