// Runs the real operator (`gitspaces operator`) as a child process against the test cluster.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './resources.ts';
import { eventually } from './wait.ts';

export interface OperatorProcess {
  child: ChildProcess;
  log: string;
  /** Port of /healthz, /readyz, /metrics. */
  healthPort: number;
  kill(signal?: NodeJS.Signals): Promise<void>;
  metrics(): Promise<string>;
}

/** `allowLocal` (default true): serve local infras (`--allow-local-provider`), as most tests use them. */
export async function startOperator(o: { kubeconfig: string; logDir: string; args?: string[]; name?: string; allowLocal?: boolean }): Promise<OperatorProcess> {
  const log = join(o.logDir, `${o.name ?? 'operator'}-${Date.now()}.log`);
  const fd = openSync(log, 'a');
  const child = spawn(process.execPath, [join(ROOT, 'src/cli/main.ts'), 'operator', '--health-port', '0', ...(o.allowLocal === false ? [] : ['--allow-local-provider']), ...(o.args ?? [])], {
    env: { ...process.env, KUBECONFIG: o.kubeconfig, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const { readFileSync } = await import('node:fs');
  const healthPort = await eventually('the operator to report its health port', 20_000, () => {
    if (child.exitCode !== null) throw new Error(`operator exited (${child.exitCode}): ${readFileSync(log, 'utf8').slice(-2000)}`);
    const m = /"healthPort":(\d+)/.exec(readFileSync(log, 'utf8'));
    return m ? Number(m[1]) : undefined;
  });
  return {
    child,
    log,
    healthPort,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => { r(); }));
      child.kill(signal);
      await exited;
    },
    async metrics() {
      const r = await fetch(`http://127.0.0.1:${healthPort}/metrics`);
      return r.text();
    },
  };
}
