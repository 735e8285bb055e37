// What the image contains, built the way the Dockerfile builds it but without Docker: package.json
// and the lock file, `npm ci --omit=dev` (production dependencies only), dist/ compiled from src by
// tsconfig.build.json. The entrypoint (`node dist/cli/main.js`) then runs every server sub-command
// from that tree against the real API server, HOME on a scratch directory, the source tree out of reach.
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopProcess } from '../../demo/stack.ts';
import { freePort } from '../cluster/cluster.ts';
import { testCluster } from '../cluster/current.ts';
import { ROOT } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

describe('image contents (the Dockerfile\'s production tree, built without Docker)', function () {
  this.timeout(300_000);
  let app: string;
  const children: ChildProcess[] = [];

  const run = (args: string[]) => spawnSync(process.execPath, [join(app, 'dist/cli/main.js'), ...args], { cwd: app, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: app, NODE_ENV: 'production' } });
  const serve = (args: string[], env: Record<string, string> = {}) => {
    const child = spawn(process.execPath, [join(app, 'dist/cli/main.js'), ...args], { cwd: app, env: { PATH: process.env.PATH ?? '', HOME: app, NODE_ENV: 'production', KUBECONFIG: testCluster().kubeconfigPath, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    children.push(child);
    return { child, output: () => out };
  };
  const ok = async (url: string) => {
    try {
      return (await fetch(url)).ok || undefined;
    } catch {
      return undefined;
    }
  };

  before(() => {
    app = mkdtempSync(join(tmpdir(), 'gitspaces-image-'));
    for (const f of ['package.json', 'package-lock.json']) copyFileSync(join(ROOT, f), join(app, f));
    const npm = spawnSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app, encoding: 'utf8' });
    expect(npm.status, npm.stderr).to.equal(0);
    const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(app, 'dist')], { encoding: 'utf8' });
    expect(tsc.status, tsc.stdout + tsc.stderr).to.equal(0);
  });

  after(async () => {
    for (const c of children) await stopProcess(c);
    rmSync(app, { recursive: true, force: true });
  });

  it('has no dev dependencies and the entrypoint the Dockerfile names', () => {
    for (const dev of ['typescript', 'mocha', 'eslint', 'chai', 'node', 'playwright-core']) expect(existsSync(join(app, 'node_modules', dev)), dev).to.equal(false);
    expect(existsSync(join(app, 'dist/cli/main.js'))).to.equal(true);
    const help = run(['help']);
    expect(help.status, help.stderr).to.equal(0);
    expect(help.stdout).to.include('operator').and.include('gateway').and.include('control-plane');
    const crds = run(['crds']);
    expect(crds.status, crds.stderr).to.equal(0);
    expect(crds.stdout).to.include('name: gitspaces.gitspaces.dev').and.include('name: gitspaceinfras.gitspaces.dev');
    const bad = run(['nope']);
    expect(bad.status).to.equal(2);
    expect(bad.stderr).to.include('unknown command "nope"');
  });

  it('starts the operator, the gateway and the control plane from it, each ready and each stopping on SIGTERM', async () => {
    const [opPort, gwPort, cpPort] = [await freePort(), await freePort(), await freePort()];
    const op = serve(['operator', '--health-port', String(opPort), '--leader-elect', '--lease-duration-ms', '3000'], { POD_NAMESPACE: 'default' });
    const gw = serve(['gateway', '--port', String(gwPort), '--address', '127.0.0.1', '--drain-delay-ms', '0']);
    const cp = serve(['control-plane', '--port', String(cpPort), '--address', '127.0.0.1', '--db', join(app, 'cp.db')], { GITSPACES_DELEGATE_TOKEN: 'image-test-token' });
    for (const [name, url, p] of [['operator', `http://127.0.0.1:${opPort}/readyz`, op], ['gateway', `http://127.0.0.1:${gwPort}/readyz`, gw], ['control plane', `http://127.0.0.1:${cpPort}/healthz`, cp]] as const) {
      await eventually(`${name} ready from the image tree`, 30_000, () => ok(url)).catch((e: unknown) => { throw new Error(`${(e as Error).message}\n${p.output()}`); });
    }
    expect(await (await fetch(`http://127.0.0.1:${opPort}/metrics`)).text()).to.include('gitspaces_');
    for (const p of [op, gw, cp]) {
      const exited = new Promise<number | null>((r) => p.child.once('exit', (code) => { r(code); }));
      p.child.kill('SIGTERM');
      expect(await exited, p.output()).to.equal(0);
    }
  });
});
