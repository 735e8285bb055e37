// `npm start`: the whole product on this machine in one command. A throw-away Kubernetes control
// plane (kube-apiserver + etcd, built once into the cache), the CRDs, the reference control plane,
// the operator with the `local` provider and the gateway; then a sample repository, a
// GitspaceInfra and a Gitspace, and the lines to open it. Ctrl-C stops all of it.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binDir, freePort, TestCluster } from '../test/cluster/cluster.ts';
import { Idp } from './idp.ts';
import { DOMAIN, ROOT, Stack } from './stack.ts';

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
const say = (line: string) => { process.stdout.write(`[${elapsed().padStart(7)}] ${line}\n`); };

// The cluster module exits at once on Ctrl-C; the demo stops things in order instead.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeAllListeners(sig);

const work = mkdtempSync(join(tmpdir(), 'gitspaces-demo-'));
let cluster: TestCluster | undefined;
let stack: Stack | undefined;
let idp: Idp | undefined;
let stopping = false;
/** The demo's single sign-on user (the control plane's user too). */
const DEMO_USER = 'dev@example.com';
const DEMO_PASSWORD = 'gitspaces-demo';

async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    say('stopping: gateway, operator, control plane, the Gitspace\'s VM (agent), the cluster');
    try {
      await stack?.stop();
      await idp?.stop();
    } finally {
      await cluster?.stop();
      rmSync(work, { recursive: true, force: true });
    }
    say('stopped; nothing is left running');
  }
  process.exit(code);
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => { void stop(0); });

function sampleRepo(dir: string): string {
  mkdirSync(join(dir, '.devcontainer'), { recursive: true });
  writeFileSync(join(dir, 'README.md'), '# hello-gitspaces\n\nA sample repository made by `npm start`.\n');
  writeFileSync(join(dir, 'main.py'), 'print("hello from your Gitspace")\n');
  writeFileSync(join(dir, '.devcontainer', 'devcontainer.json'), JSON.stringify({ name: 'hello', postCreateCommand: 'echo created > .created' }, null, 2) + '\n');
  const git = (...args: string[]) => {
    const r = spawnSync('git', args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
  };
  git('init', '-q', '-b', 'main');
  git('add', '.');
  git('-c', 'user.name=demo', '-c', 'user.email=demo@example.com', 'commit', '-q', '-m', 'sample');
  return `file://${dir}`;
}

function sshKey(file: string): string {
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'gitspaces-demo', '-f', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen: ${r.stderr}`);
  return readFileSync(`${file}.pub`, 'utf8').trim();
}

try {
  say(`scratch directory ${work}`);
  say('code-server (VS Code in the browser) for the Gitspace: the first run installs it from npm into the cache, about 3 minutes, once');
  const cs = spawnSync('bash', [join(ROOT, 'scripts/fetch-code-server.sh')], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (cs.status !== 0) throw new Error('scripts/fetch-code-server.sh failed (see above)');
  say(`code-server: ${cs.stdout.trim()}`);
  say('starting a Kubernetes API server and etcd (the first run builds them from the Go module proxy: about 8 minutes, once)');
  cluster = await TestCluster.start({ detached: true, crdDir: join(ROOT, 'crds') });
  say(`API server ready at ${cluster.server}; CRDs installed (gitspaceinfras, gitspaces)`);

  const gatewayPort = Number(process.env.GITSPACES_DEMO_PORT ?? (await freePort()));
  const loginHost = `http://${DOMAIN}:${String(gatewayPort)}`;
  const clientSecret = `demo-${String(process.pid)}-${String(Date.now())}`;
  idp = await Idp.start({
    users: [{ id: DEMO_USER, password: DEMO_PASSWORD }],
    clients: [{
      client_id: 'gitspaces-gateway', client_secret: clientSecret, grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: [`${loginHost}/.gitspaces/oidc/callback`], post_logout_redirect_uris: [`${loginHost}/.gitspaces/signed-out`],
    }],
  });
  say(`identity provider (oidc-provider) at ${idp.url}: the gateway's single sign-on`);
  stack = new Stack({
    work,
    kubeconfig: cluster.kubeconfigPath,
    ports: { controlPlane: await freePort(), gateway: gatewayPort, operatorHealth: await freePort() },
    sso: { issuer: idp.url, clientId: 'gitspaces-gateway', clientSecret },
    progress: say,
  });
  await stack.start();

  const repo = sampleRepo(join(work, 'hello-gitspaces'));
  say(`sample repository ${repo}`);
  const keyFile = join(work, 'id_ed25519');
  const publicKey = sshKey(keyFile);
  say('creating Gitspace "hello" through the control plane (the delegate turns it into a Gitspace resource)');
  const g = await stack.createGitspace('hello', repo, publicKey, { onPhase: (phase) => { say(`  Gitspace default/hello: ${phase}`); } });
  say(`Gitspace default/hello is Running (${elapsed()} after start)`);

  process.stdout.write(`
  Open it in a browser (*.localhost resolves to this machine) and sign in at the demo identity
  provider as ${DEMO_USER}, password ${DEMO_PASSWORD}:
    ${g.link}
  Sign out: ${new URL('/.gitspaces/logout', g.link).toString()}

  Or without signing in, with a one-time token (exchanged for a session cookie):
    ${g.url}

  Token (a JWT from the control plane, owner ${stack.user.subject}; for API clients as "Authorization: Bearer …"):
    ${g.token}

  SSH through the gateway:
    ${g.sshCommand.replace(' gitspace@', ` -i ${keyFile} gitspace@`)}

  Look at it with kubectl:
    export KUBECONFIG=${cluster.kubeconfigPath} PATH=${binDir()}:$PATH
    kubectl get gitspaceinfras,gitspaces -A
    kubectl describe gitspace hello

  Logs: ${join(work, 'logs')}   Gateway: ${stack.gatewayURL} (hosts *.${DOMAIN})
  Press Ctrl-C to stop everything.
`);
  say('ready');
} catch (e) {
  process.stderr.write(`\nnpm start failed: ${(e as Error).message}\n`);
  await stop(1);
}
