// `npm run bench:gateway`: the same load, in one run, sent directly to an upstream, through a bare
// Node proxy (the Node ceiling on this machine: see ../shared/notes/gateway-baseline.md), through
// our gateway with authentication on (a real API server supplies the route, a JWT is verified), and
// through Debian's nginx as the reverse proxy a user would otherwise pick.
//
// Prints, for each: closed-loop throughput at 64 connections (autocannon) with p50/p99 for a 64 B
// and a 64 KiB response; p50/p99 at a fixed 1 000 req/s (open loop) and the latency the proxy adds;
// WebSocket echo round trips per second over 64 connections; and the ratios to direct and to the
// bare Node proxy.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import WebSocket from 'ws';
import { AGENT_HTTP_PORT, GITSPACE_INFRAS, GITSPACES, HOP_KEY_FIELD, HOP_KEY_SECRET, SECRETS, type Gitspace } from '../src/api/index.ts';
import { KubeClient, type KubeObject } from '../src/runtime/kube.ts';
import { TestCluster } from '../test/cluster/cluster.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DURATION = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = 64;
const HOST = 'bench--default.gitspaces.localhost';
const children: ChildProcess[] = [];

function start(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /(?:listening|listening on) (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (c) => {
      reject(new Error(`${cmd} ${args.join(' ')} exited ${String(c)}`));
    });
  });
}

async function nginx(upstreamPort: number): Promise<number | undefined> {
  const r = spawnSync('bash', [join(ROOT, 'scripts/fetch-nginx.sh')], { encoding: 'utf8' });
  const bin = r.stdout.trim().split('\n').pop();
  if (r.status !== 0 || !bin) {
    process.stderr.write('nginx is not available (apt-get download nginx failed): its column is left out\n');
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), 'gitspaces-nginx-'));
  mkdirSync(join(dir, 'logs'));
  const port = await new Promise<number>((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => { res(p); });
    });
  });
  writeFileSync(join(dir, 'nginx.conf'), `worker_processes 1;
error_log ${dir}/logs/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream up { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  map $http_upgrade $conn { default upgrade; '' ''; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection $conn;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout 1h;
    }
  }
}
`);
  // Its own process group, so its workers go with it.
  const child = spawn(bin, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: 'inherit', detached: true });
  children.push(child);
  await new Promise((r) => setTimeout(r, 500));
  return port;
}

interface Load { rps: number; p50: number; p99: number; errors: number; non2xx: number }

async function load(port: number, path: string, headers: Record<string, string>, overallRate?: number): Promise<Load> {
  const r = await autocannon({
    url: `http://127.0.0.1:${port}${path}`,
    connections: CONNECTIONS,
    duration: DURATION,
    headers,
    ...(overallRate ? { overallRate } : {}),
  });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx };
}

/** Round trips per second: 64 WebSocket clients, each sends 64 bytes and waits for the echo. */
async function echo(port: number, headers: Record<string, string>): Promise<number> {
  const seconds = Math.max(3, Math.round(DURATION / 2));
  const payload = Buffer.alloc(64, 'w');
  let trips = 0;
  const clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers, perMessageDeflate: false });
    ws.once('open', () => { resolve(ws); });
    ws.once('error', reject);
    ws.once('unexpected-response', (_q, r) => { reject(new Error(`WebSocket refused: ${r.statusCode ?? 0}`)); });
  })));
  const end = Date.now() + seconds * 1000;
  await Promise.all(clients.map((ws) => new Promise<void>((resolve) => {
    ws.on('message', () => {
      trips++;
      if (Date.now() < end) ws.send(payload);
      else resolve();
    });
    ws.send(payload);
  })));
  for (const ws of clients) ws.terminate();
  return trips / seconds;
}

const cluster = await TestCluster.start({});
const work = mkdtempSync(join(tmpdir(), 'gitspaces-bench-gw-'));
try {
  const client = new KubeClient(cluster.access());
  // The issuer: one RSA key, its JWKS on loopback.
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench', alg: 'RS256' };
  const jwks = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}`;
  const token = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'bench' }).setIssuer(issuer).setAudience('gitspaces').setSubject('dev@example.com').setIssuedAt().setExpirationTime('2h').sign(privateKey);

  // On the agent port: the gateway dials only a Gitspace's instance address on that port.
  const upstreamPort = await start(process.execPath, [join(ROOT, 'bench/support/upstream.ts'), String(AGENT_HTTP_PORT)]);
  const barePort = await start(process.execPath, [join(ROOT, 'bench/support/bare-proxy.ts'), String(upstreamPort)]);

  // The route: a Gitspace whose instance is the upstream (a local infra's may be loopback), and the hop key.
  await client.create(GITSPACE_INFRAS, {
    apiVersion: 'gitspaces.dev/v1alpha1', kind: 'GitspaceInfra', metadata: { name: 'bench' },
    spec: { provider: { local: {} }, machineTypes: [{ name: 'small', providerType: 'local' }], allowedNamespaces: {}, gateway: { domain: 'gitspaces.localhost' }, auth: { issuer, audience: 'gitspaces' } },
  } as KubeObject);
  await client.create<Gitspace>(GITSPACES, {
    apiVersion: 'gitspaces.dev/v1alpha1', kind: 'Gitspace', metadata: { name: 'bench', namespace: 'default' },
    spec: { infraRef: { name: 'bench' }, owner: 'dev@example.com', repository: { url: 'https://github.com/acme/app.git' }, machineType: 'small' },
  });
  await client.request('PATCH', `/apis/gitspaces.dev/v1alpha1/namespaces/default/gitspaces/bench/status`, {
    body: { status: { phase: 'Running', instance: { provider: 'local', name: 'bench', privateIP: '127.0.0.1' } } },
    contentType: 'application/merge-patch+json',
  });
  await client.create(SECRETS, {
    apiVersion: 'v1', kind: 'Secret',
    metadata: { name: HOP_KEY_SECRET, namespace: 'default' },
    data: { [HOP_KEY_FIELD]: Buffer.from('bench-hop-key').toString('base64') },
  } as KubeObject);
  const gatewayPort = await start(process.execPath, [join(ROOT, 'src/cli/main.ts'), 'gateway', '--port', '0', '--address', '127.0.0.1'], { ...process.env, KUBECONFIG: cluster.kubeconfigPath, LOG_LEVEL: 'warn' });
  const nginxPort = await nginx(upstreamPort);

  const targets: [string, number, Record<string, string>][] = [
    ['direct', upstreamPort, {}],
    ['bare Node proxy', barePort, {}],
    ['gateway (JWT auth)', gatewayPort, { host: HOST, authorization: `Bearer ${token}` }],
    ...(nginxPort ? [['nginx 1.22', nginxPort, {}] as [string, number, Record<string, string>]] : []),
  ];
  // Warm up every path (connections, JWKS fetch, route) and check it answers 200.
  process.stderr.write(`warming up ${targets.map((t) => t[0]).join(', ')}…\n`);
  for (const [name, port, headers] of targets) {
    const w = await autocannon({ url: `http://127.0.0.1:${port}/small`, connections: 8, amount: 400, headers });
    if (w.non2xx > 0 || w.errors > 0) throw new Error(`${name}: warm-up saw ${w.non2xx} non-2xx and ${w.errors} errors`);
  }

  const results: Record<string, { small: Load; big: Load; fixed: Load; ws: number }> = {};
  for (const [name, port, headers] of targets) {
    process.stderr.write(`measuring ${name}…\n`);
    const small = await load(port, '/small', headers);
    const big = await load(port, '/big', headers);
    const fixed = await load(port, '/small', headers, 1_000);
    const ws = await echo(port, headers);
    results[name] = { small, big, fixed, ws };
    for (const l of [small, big, fixed]) if (l.non2xx || l.errors) process.stderr.write(`${name}: ${l.non2xx} non-2xx, ${l.errors} errors\n`);
  }

  const d = results.direct;
  const bare = results['bare Node proxy'];
  const pct = (a: number, b: number | undefined) => (b ? `${Math.round((a / b) * 100)} %` : '-');
  console.log(`\nGateway benchmark: ${CONNECTIONS} connections, ${DURATION} s per run, all processes on this machine (${String((await import('node:os')).cpus().length)} cores)\n`);
  console.log('| path | 64 B req/s | ÷ direct | ÷ bare Node | p50 / p99 ms | 64 KiB req/s | ÷ direct | ÷ bare Node | at 1 000 req/s p50 / p99 ms | p99 added | WebSocket echo/s | ÷ direct |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const [name, r] of Object.entries(results)) {
    console.log(`| ${name} | ${Math.round(r.small.rps)} | ${pct(r.small.rps, d?.small.rps)} | ${pct(r.small.rps, bare?.small.rps)} | ${r.small.p50} / ${r.small.p99} | ${Math.round(r.big.rps)} | ${pct(r.big.rps, d?.big.rps)} | ${pct(r.big.rps, bare?.big.rps)} | ${r.fixed.p50} / ${r.fixed.p99} | ${d ? `${(r.fixed.p99 - d.fixed.p99).toFixed(1)} ms` : '-'} | ${Math.round(r.ws)} | ${pct(r.ws, d?.ws)} |`);
  }
  jwks.close();
} finally {
  for (const c of children) {
    try {
      if (c.pid) process.kill(-c.pid, 'SIGKILL'); // nginx: master and workers
    } catch {
      c.kill('SIGKILL');
    }
  }
  await cluster.stop();
  rmSync(work, { recursive: true, force: true });
}
process.exit(0);
