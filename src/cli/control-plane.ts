// `gitspaces control-plane`: the reference control plane (docs/delegate-protocol.md).
//   --port 8090 --db FILE --issuer URL [--audience gitspaces] [--tls-cert FILE --tls-key FILE]
//   --delegate-token-file FILE (or $GITSPACES_DELEGATE_TOKEN)
//   --user TOKEN=SUBJECT (repeatable; or $GITSPACES_USERS as TOKEN=SUBJECT,…)
import { ControlPlane } from '../controlplane/server.ts';
import { flag, secretFrom, tlsFiles } from './flags.ts';

function all(argv: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) if (argv[i] === name && argv[i + 1] !== undefined) out.push(argv[i + 1] ?? '');
  return out;
}

export async function runControlPlane(argv: string[]): Promise<void> {
  const port = Number(flag(argv, '--port') ?? 8090);
  const delegateToken = secretFrom(flag(argv, '--delegate-token-file'), 'GITSPACES_DELEGATE_TOKEN');
  const pairs = [...all(argv, '--user'), ...(process.env.GITSPACES_USERS?.split(',') ?? [])].filter(Boolean);
  const users = Object.fromEntries(pairs.map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]));
  const issuer = flag(argv, '--issuer') ?? `http://127.0.0.1:${port}`;
  if (!delegateToken) throw new Error('a delegate token is required: --delegate-token-file FILE or $GITSPACES_DELEGATE_TOKEN');
  const cp = new ControlPlane({
    dbPath: flag(argv, '--db') ?? 'control-plane.db',
    port,
    ...(flag(argv, '--address') ? { address: flag(argv, '--address') } : {}),
    issuer,
    ...(flag(argv, '--audience') ? { audience: flag(argv, '--audience') } : {}),
    delegateToken,
    users,
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
