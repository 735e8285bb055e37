// Real VS Code in the browser through the gateway: the operator (local provider), the gateway, the
// reference control plane and the agent with code-server (installed into the cache by
// scripts/fetch-code-server.sh), driven by Debian's Chromium through playwright-core. The workbench
// shows the checkout; typing into a file and saving writes it on the Gitspace's disk; a dev
// server started by postStartCommand on a forwarded port answers at its own host with a token and
// refuses without; a public port answers without; undeclared ports are not reachable; the IDE
// host refuses a browser without a token. Screenshots go to test-artifacts/.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import type { Gitspace } from '../../src/api/index.ts';
import { DOMAIN, Stack, type OpenedGitspace } from '../../demo/stack.ts';
import { freePort } from '../cluster/cluster.ts';
import { testCluster } from '../cluster/current.ts';
import { sharedDocker, type Docker } from '../support/docker.ts';
import { commitAll, makeRepo, makeSshKey } from '../support/fixtures.ts';
import { STOCK_TAG, vmImagesScript } from '../support/gce-vms.ts';
import { ROOT } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';
import { screenshot } from '../support/screenshot.ts';

const ARTIFACTS = join(ROOT, 'test-artifacts');
const NS = 'ide';
const DEV_PORT = 3000;
const PUBLIC_PORT = 3001;
const UNDECLARED_PORT = 3002;

/** A devcontainer whose postStartCommand serves the checkout on the forwarded ports (detached). */
const DEVCONTAINER = JSON.stringify({
  forwardPorts: [DEV_PORT],
  postStartCommand: [DEV_PORT, PUBLIC_PORT, UNDECLARED_PORT].map((p) => `nohup python3 -m http.server ${String(p)} --bind 127.0.0.1 >/dev/null 2>&1 < /dev/null &`).join(' ') + ' true',
  customizations: { vscode: { settings: { 'editor.fontSize': 17, 'workbench.startupEditor': 'none' }, extensions: ['gitspaces-test.does-not-exist'] } },
});

function get(port: number, host: string, path = '/', headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers: { host, ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('VS Code in the browser (code-server) through the gateway, in Chromium', function () {
  this.timeout(300_000);
  let work: string;
  let stack: Stack;
  let browser: Browser;
  let g: OpenedGitspace;
  let gatewayPort: number;
  let docker: Docker;
  let restoreDockerHost: () => void;
  const portHost = (p: number) => `${String(p)}--${g.id}--${NS}.${DOMAIN}`;

  before(async () => {
    const cs = spawnSync('bash', [join(ROOT, 'scripts/fetch-code-server.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    expect(cs.status, 'scripts/fetch-code-server.sh').to.equal(0);
    mkdirSync(ARTIFACTS, { recursive: true });
    work = mkdtempSync(join(tmpdir(), 'gitspaces-ide-'));
    const repo = makeRepo(work, DEVCONTAINER);
    // A Docker daemon the local "VMs" reach, for the dev-container Gitspace (the others name none).
    docker = await sharedDocker();
    await vmImagesScript(docker, ['stock']);
    const prev = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = docker.host;
    restoreDockerHost = () => {
      if (prev === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = prev;
    };
    await testCluster().request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } } });
    gatewayPort = await freePort();
    stack = new Stack({
      work: join(work, 'stack'), kubeconfig: testCluster().kubeconfigPath, namespace: NS, infraName: 'ide', allowPublicPorts: true,
      ports: { controlPlane: await freePort(), gateway: gatewayPort, operatorHealth: await freePort() },
    });
    await stack.start();
    restoreDockerHost();
    g = await stack.createGitspace('webide', `file://${repo}`, makeSshKey().publicLine, { ports: [{ port: PUBLIC_PORT, name: 'docs', visibility: 'public' }] });
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  after(async () => {
    await browser.close();
    await stack.api('DELETE', `/api/v1/gitspaces/${g.id}`).catch(() => undefined);
    await eventually('the Gitspace to be gone', 60_000, async () => (await testCluster().request('GET', `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces/${g.id}`)).status === 404 || undefined).catch(() => undefined);
    await testCluster().request('DELETE', '/apis/gitspaces.dev/v1alpha1/gitspaceinfras/ide');
    await stack.stop();
    await docker.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const gitspace = async () => (await testCluster().request('GET', `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces/${g.id}`)).json as Gitspace;

  it('opens the workbench on the checkout with the token exchange; typing and saving writes the file on the Gitspace\'s disk', async () => {
    // The link the browser opens is the one status gives (kubectl get gs's URL column), port and all.
    expect(g.link).to.equal((await gitspace()).status?.urls?.ide);
    expect(new URL(g.link).port).to.equal(String(gatewayPort));
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(g.url);
    await page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
    // The explorer lists the checkout's files.
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'README.md' }).first().waitFor({ timeout: 60_000 }).catch(async (e: unknown) => {
      await screenshot(page, join(ARTIFACTS, 'ide-workbench-failed.png'));
      throw e;
    });
    await screenshot(page, join(ARTIFACTS, 'ide-workbench.png'));

    // Open README.md, type at its end and save.
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'README.md' }).first().dblclick();
    await page.locator('.tabs-container .tab.active', { hasText: 'README.md' }).waitFor({ timeout: 30_000 });
    const editor = page.locator('.editor-group-container.active .monaco-editor .view-lines').first();
    await editor.click();
    await page.keyboard.press('Control+End');
    await page.keyboard.type('\nwritten in the browser IDE\n');
    await page.keyboard.press('Control+S');
    const checkout = decodeURIComponent(/folder=([^&]+)/.exec((await gitspace()).status?.urls?.ide ?? '')?.[1] ?? '');
    expect(checkout).to.include(join(work, 'stack', 'instances'));
    await eventually('the saved text on the Gitspace\'s disk', 20_000, () => readFileSync(join(checkout, 'README.md'), 'utf8').includes('written in the browser IDE') || undefined);
    await screenshot(page, join(ARTIFACTS, 'ide-saved.png'));
    await page.close();
  });

  it('refuses the IDE host to a browser without a token', async () => {
    const page = await browser.newPage();
    const r = await page.goto(`http://${g.host}:${String(gatewayPort)}/`);
    expect(r?.status()).to.equal(401);
    await screenshot(page, join(ARTIFACTS, 'ide-no-token.png'));
    await page.close();
  });

  it('publishes forwarded ports at their own hosts: private with a token only, public without, undeclared nowhere', async () => {
    const gs = await eventually('the forwarded ports in the route', 30_000, async () => {
      const x = await gitspace();
      return (x.status?.route?.ports?.length ?? 0) >= 2 ? x : undefined;
    });
    expect(gs.status?.route?.ports?.map((p) => [p.port, p.visibility])).to.deep.equal([[PUBLIC_PORT, 'public'], [DEV_PORT, 'private']]);
    const devLink = gs.status?.urls?.ports?.[String(DEV_PORT)];
    expect(devLink, 'with the gateway port the infra names').to.equal(`http://${portHost(DEV_PORT)}:${String(gatewayPort)}/`);

    // The dev server (postStartCommand) answers with the owner's token as a Bearer (no redirect).
    const withToken = await eventually('the dev server to answer', 30_000, async () => {
      const r = await get(gatewayPort, portHost(DEV_PORT), '/', { authorization: `Bearer ${g.token}` });
      return r.status === 200 ? r : undefined;
    });
    expect(withToken.body).to.include('README.md');
    expect((await get(gatewayPort, portHost(DEV_PORT))).status).to.equal(401);
    // A CORS preflight carries no credentials: on a private port the gateway answers it (refused),
    // it never reaches the dev server anonymously.
    const preflight = await get(gatewayPort, portHost(DEV_PORT), '/', { origin: 'http://app.example', 'access-control-request-method': 'POST' }, 'OPTIONS');
    expect(preflight.status).to.equal(403);
    expect(preflight.body).to.equal('this port does not answer cross-origin requests\n');
    // Public: no token needed.
    const open = await eventually('the public port to answer', 30_000, async () => {
      const r = await get(gatewayPort, portHost(PUBLIC_PORT));
      return r.status === 200 ? r : undefined;
    });
    expect(open.body).to.include('README.md');
    // A port nobody declared has no host, and the agent refuses it even if asked directly.
    expect((await get(gatewayPort, portHost(UNDECLARED_PORT), '/', { authorization: `Bearer ${g.token}` })).status).to.equal(404);

    // In the browser: the token exchange on the port's host, then the page.
    const page = await browser.newPage();
    const r = await page.goto(`${devLink ?? ''}?token=${g.token}`);
    expect(r?.status()).to.equal(200);
    expect(await page.content()).to.include('README.md');
    await screenshot(page, join(ARTIFACTS, 'ide-forwarded-port.png'));
    await page.close();
  });

  it('applies customizations.vscode.settings and reports extensions it could not install in a condition', async () => {
    const gs = await gitspace();
    const cond = gs.status?.conditions?.find((c) => c.type === 'ExtensionsInstalled');
    expect(cond).to.include({ status: 'False', reason: 'InstallFailed' });
    expect(cond?.message).to.include('gitspaces-test.does-not-exist');
    const checkout = decodeURIComponent(/folder=([^&]+)/.exec(gs.status?.urls?.ide ?? '')?.[1] ?? '');
    const settings = join(checkout, '..', '.local', 'share', 'code-server', 'user-data', 'User', 'settings.json');
    expect(existsSync(settings), settings).to.equal(true);
    expect(JSON.parse(readFileSync(settings, 'utf8'))).to.include({ 'editor.fontSize': 17 });
  });

  it('runs VS Code inside the dev container: its integrated terminal is the container\'s shell, with its tools and env', async () => {
    const dir = mkdtempSync(join(work, 'dc-'));
    const repo = makeRepo(dir, JSON.stringify({ build: { dockerfile: 'Dockerfile' }, containerEnv: { IN_CONTAINER: 'yes' }, customizations: { vscode: { settings: { 'workbench.startupEditor': 'none' } } } }));
    writeFileSync(join(repo, '.devcontainer/Dockerfile'), `FROM ${STOCK_TAG}\nRUN printf '#!/bin/sh\\necho container-tool\\n' > /usr/local/bin/only-in-container && chmod +x /usr/local/bin/only-in-container\n`);
    commitAll(repo);
    const dc = await stack.createGitspace('webdc', `file://${repo}`, makeSshKey().publicLine);
    const gs = (await testCluster().request('GET', `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces/webdc`)).json as Gitspace;
    expect(gs.status?.conditions?.find((c) => c.type === 'ContainerReady')?.status).to.equal('True');
    expect(gs.status?.urls?.ide).to.include(`folder=${encodeURIComponent('/workspaces/repo')}`);
    const checkout = join(work, 'stack', 'instances', gs.status?.instance?.name ?? '', 'home', 'repo');
    expect(existsSync(join(checkout, 'README.md')), checkout).to.equal(true);

    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await page.goto(dc.url);
      await page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
      await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'README.md' }).first().waitFor({ timeout: 60_000 });
      // The command palette opens a terminal, as a user would.
      await page.keyboard.press('F1');
      await page.locator('.quick-input-widget input').waitFor({ timeout: 15_000 });
      await page.keyboard.type('Terminal: Create New Terminal');
      await page.locator('.quick-input-list .monaco-list-row', { hasText: 'Create New Terminal' }).first().waitFor({ timeout: 15_000 });
      await page.keyboard.press('Enter');
      await page.locator('.terminal-wrapper.active .xterm').waitFor({ timeout: 30_000 });
      await page.locator('.terminal-wrapper.active .xterm').click();
      // (a child bash: VS Code's shell integration marks the commands of the terminal's own shell)
      await page.keyboard.type(`bash -c 'pwd; only-in-container; echo "$IN_CONTAINER"; grep -c docker /proc/1/cgroup' > from-terminal.txt\n`);
      // The terminal wrote into the workspace, which is the checkout on the VM's disk.
      const proof = await eventually('the terminal\'s output in the checkout', 30_000, () => {
        const f = join(checkout, 'from-terminal.txt');
        return existsSync(f) && readFileSync(f, 'utf8').split('\n').length >= 5 ? readFileSync(f, 'utf8') : undefined;
      });
      expect(proof.trim().split('\n').slice(0, 3)).to.deep.equal(['/workspaces/repo', 'container-tool', 'yes']);
      expect(Number(proof.trim().split('\n')[3]), 'PID 1 is in a Docker cgroup').to.be.greaterThan(0);
      await screenshot(page, join(ARTIFACTS, 'ide-container-terminal.png'));
    } catch (e) {
      await screenshot(page, join(ARTIFACTS, 'ide-container-terminal-failed.png'));
      throw e;
    } finally {
      await page.close();
      await stack.api('DELETE', '/api/v1/gitspaces/webdc').catch(() => undefined);
      // Its container goes with its "VM" (the operator removes it), before the stack stops.
      await eventually('webdc to be gone', 60_000, async () => (await testCluster().request('GET', `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces/webdc`)).status === 404 || undefined);
    }
  });
});
