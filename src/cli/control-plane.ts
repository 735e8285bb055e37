// `gitspaces control-plane`: the reference control plane (docs/delegate-protocol.md).
//   --port 8090 --db FILE --issuer URL [--audience gitspaces] [--tls-cert FILE --tls-key FILE]
//   --delegate-token-file FILE (or $GITSPACES_DELEGATE_TOKEN)
//   --users-file FILE (TOKEN=SUBJECT lines) or $GITSPACES_USERS (TOKEN=SUBJECT,…)
//   --token-ttl 15m (access tokens, 60s…24h) --refresh-ttl 12h (refresh tokens, 60s…720h)
import { readFileSync } from 'node:fs';
import { ControlPlane, type ControlPlaneOptions } from '../controlplane/server.ts';
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

const UNIT = { s: 1, m: 60, h: 3600 } as const;
const human = (seconds: number) => (seconds % 3600 === 0 ? `${String(seconds / 3600)}h` : seconds % 60 === 0 ? `${String(seconds / 60)}m` : `${String(seconds)}s`);

/** A duration flag (`90`, `90s`, `15m`, `12h`) in seconds, within [min, max]; throws naming the flag. */
export function durationFlag(name: string, value: string, min: number, max: number): number {
  const m = /^(\d{1,7})([smh]?)$/.exec(value.trim());
  const seconds = m ? Number(m[1]) * UNIT[(m[2] || 's') as keyof typeof UNIT] : NaN;
  if (!m) throw new Error(`${name} ${JSON.stringify(value)}: expected a duration such as 90s, 15m or 12h`);
  if (seconds < min || seconds > max) throw new Error(`${name} ${value}: must be between ${human(min)} and ${human(max)}`);
  return seconds;
}

/** The server's options from the command line and the environment. */
export function controlPlaneOptions(argv: string[]): ControlPlaneOptions {
  const port = Number(flag(argv, '--port') ?? 8090);
  const delegateToken = secretFrom(flag(argv, '--delegate-token-file'), 'GITSPACES_DELEGATE_TOKEN');
  const issuer = flag(argv, '--issuer') ?? `http://127.0.0.1:${port}`;
  if (!delegateToken) throw new Error('a delegate token is required: --delegate-token-file FILE or $GITSPACES_DELEGATE_TOKEN');
  const tokenTtl = flag(argv, '--token-ttl');
  const refreshTtl = flag(argv, '--refresh-ttl');
  return {
    dbPath: flag(argv, '--db') ?? 'control-plane.db',
    port,
    ...(flag(argv, '--address') ? { address: flag(argv, '--address') } : {}),
    issuer,
    ...(flag(argv, '--audience') ? { audience: flag(argv, '--audience') } : {}),
    delegateToken,
    users: users(argv),
    ...(tokenTtl !== undefined ? { tokenTtlSeconds: durationFlag('--token-ttl', tokenTtl, 60, 24 * 3600) } : {}),
    ...(refreshTtl !== undefined ? { refreshTtlSeconds: durationFlag('--refresh-ttl', refreshTtl, 60, 30 * 24 * 3600) } : {}),
    ...(flag(argv, '--redeliver-ms') ? { redeliverMs: Number(flag(argv, '--redeliver-ms')) } : {}),
    ...tlsFiles(flag(argv, '--tls-cert'), flag(argv, '--tls-key')),
  };
}

export async function runControlPlane(argv: string[]): Promise<void> {
  const cp = new ControlPlane(controlPlaneOptions(argv));
  const stop = () => {
    void cp.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  await cp.start();
  process.stdout.write(`control plane listening on ${cp.port}\n`);
}
