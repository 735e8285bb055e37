// moto's standalone server (PyPI, installed once into the cache by scripts/install-moto.sh), on a
// free loopback port, as the EC2 peer for the AWS provider's tests.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { freePort } from '../cluster/cluster.ts';
import { ROOT } from './resources.ts';
import { eventually } from './wait.ts';

export interface Moto {
  endpoint: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

export async function startMoto(): Promise<Moto> {
  const r = spawnSync('bash', [join(ROOT, 'scripts/install-moto.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error('scripts/install-moto.sh failed');
  const bin = r.stdout.trim().split('\n').pop() ?? '';
  const port = await freePort();
  const child = spawn(bin, ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  const endpoint = `http://127.0.0.1:${port}`;
  await eventually('moto_server to answer', 30_000, async () => (await fetch(`${endpoint}/moto-api/`)).status === 200);
  return {
    endpoint,
    child,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((res) => child.once('exit', res));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
