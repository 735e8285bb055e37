// An image registry of the test's own (Debian's docker-registry, the CNCF distribution server, from
// scripts/test-tools.sh) on plain HTTP: no registry is reachable from this machine, and pulls are
// what warm pools save. Its access log tells which manifests were fetched, and when.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../cluster/cluster.ts';
import type { Docker } from './docker.ts';
import { eventually } from './wait.ts';

export interface RegistryRequest {
  from: string;
  what: string;
}

export interface TestRegistry {
  port: number;
  /** Manifest and blob requests so far, in order: the client's address, and `<GET|HEAD> <manifests|blobs> <repository>:<reference>`. */
  requests(): RegistryRequest[];
  stop(): Promise<void>;
}

export async function startRegistry(dir: string): Promise<TestRegistry> {
  mkdirSync(join(dir, 'data'), { recursive: true });
  const port = await freePort();
  const config = join(dir, 'config.yml');
  writeFileSync(config, [
    'version: 0.1',
    'log: { level: info, formatter: text, accesslog: { disabled: false } }',
    `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} }, delete: { enabled: true } }`,
    `http: { addr: "0.0.0.0:${String(port)}" }`,
    '',
  ].join('\n'));
  const child: ChildProcess = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const requests: RegistryRequest[] = [];
  let partial = '';
  const read = (d: Buffer) => {
    const lines = (partial + d.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      // Access log: <client> - - [<time>] "GET /v2/<repo>/manifests/<ref> HTTP/1.1" …
      const m = /^(\S+) .*"(GET|HEAD) \/v2\/(.+)\/(manifests|blobs)\/([^ ?"]+)/.exec(l);
      if (m) requests.push({ from: m[1] ?? '', what: `${m[2] ?? ''} ${m[4] ?? ''} ${m[3] ?? ''}:${m[5] ?? ''}` });
    }
  };
  child.stdout?.on('data', read);
  child.stderr?.on('data', read);
  await eventually('the registry to answer', 20_000, async () => (await fetch(`http://127.0.0.1:${String(port)}/v2/`).catch(() => undefined))?.status === 200 || undefined, 100);
  return {
    port,
    requests: () => [...requests],
    stop: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}

/** Pushes `image` (a tag in `docker`) to the registry as `<repository>`; loopback registries need no TLS. */
export async function pushImage(docker: Docker, image: string, registry: TestRegistry, repository: string): Promise<void> {
  const local = `127.0.0.1:${String(registry.port)}/${repository}`;
  await docker.run(['tag', image, local]);
  await docker.run(['push', local], { timeoutMs: 300_000 });
}

/**
 * `image` with its Docker told to pull from `registry` (host:port) over plain HTTP, as a platform
 * team's image would trust its registry, tagged `tag` (made anew each call).
 */
export async function imageTrusting(docker: Docker, image: string, registry: string, tag: string): Promise<string> {
  const name = `trust-${tag.replace(/[^a-zA-Z0-9_.-]/g, '-')}`;
  await docker.run(['rm', '-f', name]).catch(() => undefined);
  await docker.run(['run', '--name', name, image, 'sh', '-c', `mkdir -p /etc/docker && echo '{"insecure-registries":["${registry}"]}' > /etc/docker/daemon.json`]);
  await docker.run(['commit', '--change', 'CMD ["/sbin/init"]', name, tag]);
  await docker.run(['rm', '-f', name]);
  return tag;
}
