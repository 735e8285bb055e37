// `gitspaces ssh <host>`: an OpenSSH ProxyCommand. It opens an authenticated WebSocket to the
// gateway for that Gitspace host and joins it to stdin/stdout, so `ssh`, VS Code Remote-SSH,
// Cursor, Windsurf and JetBrains Gateway reach the Gitspace with no SSH port open on the VM.
//
//   Host *.gitspaces.example.com
//     ProxyCommand gitspaces ssh %h
//
// The token comes from $GITSPACES_TOKEN or the file $GITSPACES_TOKEN_FILE
// (~/.config/gitspaces/token); the gateway from --gateway / $GITSPACES_GATEWAY, else https://<host>.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { GATEWAY_SSH_PATH } from '../api/agent.ts';
import { flag } from './flags.ts';


export function token(): string {
  if (process.env.GITSPACES_TOKEN) return process.env.GITSPACES_TOKEN.trim();
  const file = process.env.GITSPACES_TOKEN_FILE ?? join(homedir(), '.config', 'gitspaces', 'token');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    throw new Error(`no token: set GITSPACES_TOKEN or write one to ${file}`);
  }
}

export async function runSsh(argv: string[]): Promise<void> {
  const host = argv.find((a) => !a.startsWith('--') && argv[argv.indexOf(a) - 1] !== '--gateway');
  if (!host) throw new Error('usage: gitspaces ssh [--gateway URL] <gitspace host>');
  const gateway = flag(argv, '--gateway') ?? process.env.GITSPACES_GATEWAY ?? `https://${host}`;
  const url = new URL(GATEWAY_SSH_PATH, gateway.replace(/^http/, 'ws'));
  const ws = new WebSocket(url, { headers: { host, authorization: `Bearer ${token()}` }, perMessageDeflate: false });
  // Listen before 'open': the server's first bytes (the SSH banner) can arrive with the handshake.
  ws.on('message', (d: Buffer) => {
    process.stdout.write(d);
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('unexpected-response', (_req, res) => {
      reject(new Error(`the gateway refused the SSH connection: ${res.statusCode ?? 0} ${res.statusMessage ?? ''}`));
    });
    ws.once('error', reject);
  });
  process.stdin.on('data', (d: Buffer) => {
    ws.send(d);
  });
  process.stdin.on('end', () => {
    ws.close();
  });
  await new Promise<void>((resolve) => ws.once('close', () => { resolve(); }));
  process.stdin.destroy();
}
