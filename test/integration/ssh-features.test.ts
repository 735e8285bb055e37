// What desktop IDEs and terminals do over SSH, with the stock OpenSSH client through the gateway
// (`gitspaces ssh` as ProxyCommand) to the real agent (local provider): -L, -W and -D to ports of
// the Gitspace (and nothing else), -R back to the client, sftp (OpenSSH's sftp-server), scp both
// ways and in both protocols, rsync, -A with `git clone` from an OpenSSH sshd that knows only the
// client's key, exit status, keepalives, and no process left when a client goes away; then
// window-change and signals with ssh2's client, straight to the agent; and VS Code Remote-SSH's
// connection sequence.
import { expect } from 'chai';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { AGENT_ACTIVITY_PATH, AGENT_HTTP_PORT, SECRET_HEADER, type Gitspace } from '../../src/api/index.ts';
import type { Operator } from '../../src/controllers/operator.ts';
import { Gateway } from '../../src/gateway/server.ts';
import { LocalProvider } from '../../src/providers/local/provider.ts';
import { KubeClient } from '../../src/runtime/kube.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { freePort } from '../cluster/cluster.ts';
import { testCluster } from '../cluster/current.ts';
import { makeRepo, makeSshKeyFile, sshExec, type SshKey } from '../support/fixtures.ts';
import { startGitSshd } from '../support/git-sshd.ts';
import { gitspaceManifest, infraManifest, k8s } from '../support/gitspaces.ts';
import { hopTokenOf } from '../support/hop.ts';
import { TestIssuer } from '../support/issuer.ts';
import { startInProcessOperator } from '../support/provider-double.ts';
import { ROOT, type Manifest } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

const INFRA = 'sshf';
const DOMAIN = 'gitspaces.localhost';
const HOST = `sshf-app--default.${DOMAIN}`;
const OWNER = 'alice@example.com';

interface Ran { code: number | null; out: string; err: string }

/** Runs a command to completion (stdin `input`), collecting its output. */
function runTool(cmd: string, args: string[], env: NodeJS.ProcessEnv, input?: string): Promise<Ran> {
  const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  child.stdin.end(input ?? '');
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, out, err })));
}

/** An HTTP server on loopback answering `text`; resolves to its port. */
async function textServer(text: string): Promise<{ port: number; server: Server }> {
  const port = await freePort();
  const server = createServer((req, res) => {
    req.resume();
    res.end(text);
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { port, server };
}

describe('SSH as desktop IDEs use it: forwarding, sftp, scp, rsync, agent forwarding (stock OpenSSH through the gateway)', function () {
  this.timeout(180_000);
  let work: string;
  let key: SshKey;
  let keyFile: string;
  let issuer: TestIssuer;
  let op: Operator;
  let gw: Gateway;
  let app: Manifest;
  let running: Gitspace;
  let config: string;
  let env: NodeJS.ProcessEnv;
  let dev: { port: number; server: Server };
  const background: ChildProcess[] = [];

  /** `ssh -F config gs ARGS…`, waited for. */
  const ssh = (args: string[], input?: string) => runTool('ssh', ['-F', config, ...args], env, input);
  /** `ssh -F config gs ARGS…` left running (a forward); killed after the test. */
  const sshBackground = (args: string[]) => {
    const child = spawn('ssh', ['-F', config, ...args], { env, stdio: 'ignore' });
    background.push(child);
    return child;
  };

  const audit: Record<string, unknown>[] = [];

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-sshf-'));
    ({ key, keyFile } = makeSshKeyFile(work));
    issuer = await TestIssuer.start();
    const infra = infraManifest(INFRA, join(work, 'instances'));
    (infra.spec as Record<string, unknown>).auth = { issuer: issuer.url, audience: issuer.audience };
    await k8s.apply(infra);
    const provider = new LocalProvider({ baseDir: join(work, 'instances'), agentCommand: [process.execPath, join(ROOT, 'src/cli/main.ts')] });
    op = await startInProcessOperator({ provider, realAgent: true, sweep: false });
    gw = new Gateway({ client: new KubeClient(testCluster().access()), log: createLogger({ component: 'gateway' }, 'error'), port: 0, address: '127.0.0.1', jwksCooldownMs: 0, authFailureBurst: 1_000, drainDelayMs: 0, audit: (l) => audit.push(JSON.parse(l) as Record<string, unknown>) });
    await gw.start();
    app = gitspaceManifest('sshf-app', { infra: INFRA, repo: makeRepo(work), key });
    Object.assign(app.spec as Record<string, unknown>, { owner: OWNER });
    await k8s.apply(app);
    running = await k8s.waitPhase(app, 'Running', 60_000);
    // What `gitspaces ssh-config` writes, under the alias `gs`.
    config = join(work, 'ssh_config');
    writeFileSync(config, [
      'Host gs',
      `  HostName ${HOST}`,
      '  User gitspace',
      `  ProxyCommand ${process.execPath} ${join(ROOT, 'src/cli/main.ts')} ssh --gateway http://127.0.0.1:${String(gw.port)} %h`,
      `  IdentityFile ${keyFile}`,
      '  IdentitiesOnly yes',
      '  StrictHostKeyChecking no',
      '  UserKnownHostsFile /dev/null',
      '  BatchMode yes',
      '  LogLevel ERROR',
      '  ExitOnForwardFailure yes',
      '',
    ].join('\n'));
    env = { ...process.env, GITSPACES_TOKEN: await issuer.token(OWNER) };
    dev = await textServer('dev server in the Gitspace\n');
  });

  afterEach(() => {
    for (const c of background.splice(0)) c.kill('SIGTERM');
  });

  after(async () => {
    try {
      await k8s.cleanUpInfra(INFRA);
    } finally {
      await gw.stop();
      await op.manager.stop();
      await issuer.stop();
      dev.server.close();
      rmSync(work, { recursive: true, force: true });
    }
  });

  const curl = (args: string[]) => runTool('curl', ['-s', '--max-time', '10', ...args], env);

  it('ssh -L, -W and -D reach ports of the Gitspace; other destinations are refused', async () => {
    const local = await freePort();
    sshBackground(['-N', '-L', `${String(local)}:127.0.0.1:${String(dev.port)}`, 'gs']);
    const viaL = await eventually('the -L forward to answer', 30_000, async () => {
      const r = await curl([`http://127.0.0.1:${String(local)}/`]);
      return r.code === 0 && r.out ? r.out : undefined;
    });
    expect(viaL).to.equal('dev server in the Gitspace\n');
    // A forwarded connection is use: idle auto-stop sees it.
    const lastActivity = async () => ((await (await fetch(`http://${running.status?.instance?.privateIP ?? ''}:${String(AGENT_HTTP_PORT)}${AGENT_ACTIVITY_PATH}`, { headers: { [SECRET_HEADER]: await hopTokenOf(running) } })).json()) as { lastActivityTime: string }).lastActivityTime;
    const before = await lastActivity();
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await curl([`http://127.0.0.1:${String(local)}/`])).out).to.equal('dev server in the Gitspace\n');
    expect(Date.parse(await lastActivity())).to.be.greaterThan(Date.parse(before));

    const viaW = await ssh(['-W', `localhost:${String(dev.port)}`, 'gs'], 'GET / HTTP/1.0\r\nHost: x\r\n\r\n');
    expect(viaW.out, viaW.err).to.match(/^HTTP\/1\.[01] 200/).and.include('dev server in the Gitspace');

    const socks = await freePort();
    sshBackground(['-N', '-D', `127.0.0.1:${String(socks)}`, 'gs']);
    const viaD = await eventually('the -D proxy to answer', 30_000, async () => {
      const r = await curl(['--socks5-hostname', `127.0.0.1:${String(socks)}`, `http://localhost:${String(dev.port)}/`]);
      return r.code === 0 && r.out ? r.out : undefined;
    });
    expect(viaD).to.equal('dev server in the Gitspace\n');
    // Not a way into the network the VM sits in: only the Gitspace's own ports.
    const elsewhere = await curl(['--socks5-hostname', `127.0.0.1:${String(socks)}`, 'http://10.213.0.1:80/']);
    expect(elsewhere.code, 'curl through -D to another host').to.not.equal(0);
    const refusedW = await ssh(['-W', '10.213.0.1:80', 'gs']);
    expect(refusedW.code).to.not.equal(0);
    expect(refusedW.err).to.match(/administratively prohibited|stdio forwarding failed/);
  });

  it('ssh -R: a request from inside the Gitspace reaches the client\'s side', async () => {
    const client = await textServer('on the client\'s machine\n');
    try {
      const remote = await freePort();
      sshBackground(['-N', '-R', `${String(remote)}:127.0.0.1:${String(client.port)}`, 'gs']);
      const seen = await eventually('the -R forward from inside', 30_000, async () => {
        const r = await ssh(['gs', `curl -s --max-time 5 http://127.0.0.1:${String(remote)}/`]);
        return r.code === 0 && r.out ? r.out : undefined;
      });
      expect(seen).to.equal('on the client\'s machine\n');
      // As sshd with GatewayPorts no: a request to listen on every address gets the loopback only.
      const wide = await freePort();
      sshBackground(['-N', '-R', `0.0.0.0:${String(wide)}:127.0.0.1:${String(client.port)}`, 'gs']);
      const open = (host: string) => new Promise<boolean>((resolve) => {
        const sock = connect({ host, port: wide }, () => {
          sock.destroy();
          resolve(true);
        });
        sock.on('error', () => resolve(false));
      });
      await eventually('the wide -R to listen', 30_000, async () => (await open('127.0.0.1')) || undefined);
      const outside = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
      if (outside) expect(await open(outside), `${outside}:${String(wide)}`).to.equal(false);
    } finally {
      client.server.close();
    }
  });

  it('sftp put, ls, rename and get; scp both ways (SFTP and the legacy protocol); rsync', async () => {
    const dir = mkdtempSync(join(work, 'files-'));
    const payload = Buffer.from(Array.from({ length: 300_000 }, (_x, i) => i % 251));
    writeFileSync(join(dir, 'up.bin'), payload);
    const batch = join(dir, 'batch');
    writeFileSync(batch, [`lcd ${dir}`, 'put up.bin sftp-up.bin', 'ls -l', 'rename sftp-up.bin sftp-renamed.bin', 'get sftp-renamed.bin down.bin', ''].join('\n'));
    const sftp = await runTool('sftp', ['-F', config, '-b', batch, 'gs'], env);
    expect(sftp.code, sftp.err).to.equal(0);
    expect(sftp.out).to.include('sftp-up.bin');
    expect(readFileSync(join(dir, 'down.bin')).equals(payload)).to.equal(true);
    const inside = await ssh(['gs', 'sha256sum sftp-renamed.bin; pwd']);
    expect(inside.out).to.include(execFileSync('sha256sum', [join(dir, 'up.bin')], { encoding: 'utf8' }).split(' ')[0]);

    for (const legacy of [false, true]) {
      const name = legacy ? 'scp-legacy' : 'scp-sftp';
      const upload = await runTool('scp', ['-F', config, ...(legacy ? ['-O'] : []), join(dir, 'up.bin'), `gs:${name}.bin`], env);
      expect(upload.code, `${name} up: ${upload.err}`).to.equal(0);
      const download = await runTool('scp', ['-F', config, ...(legacy ? ['-O'] : []), `gs:${name}.bin`, join(dir, `${name}-back.bin`)], env);
      expect(download.code, `${name} down: ${download.err}`).to.equal(0);
      expect(readFileSync(join(dir, `${name}-back.bin`)).equals(payload), name).to.equal(true);
    }

    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'sub'), { recursive: true });
    writeFileSync(join(tree, 'a.txt'), 'a\n');
    writeFileSync(join(tree, 'sub', 'b.txt'), 'b\n');
    const rsync = await runTool('rsync', ['-a', '-e', `ssh -F ${config}`, `${tree}/`, 'gs:synced/'], env);
    expect(rsync.code, rsync.err).to.equal(0);
    const synced = await ssh(['gs', 'cat synced/a.txt synced/sub/b.txt']);
    expect(synced.out).to.equal('a\nb\n');
  });

  it('ssh -A: git clones over SSH from inside the Gitspace with the client\'s key, which never leaves the client', async () => {
    // An OpenSSH sshd on loopback that admits only the client's key, serving a bare repository.
    const sshd = await startGitSshd(work, execFileSync('ssh-keygen', ['-y', '-f', keyFile], { encoding: 'utf8' }));
    const bare = join(work, 'origin.git');
    execFileSync('git', ['clone', '-q', '--bare', makeRepo(mkdtempSync(join(work, 'origin-'))), bare]);
    const agent = spawnSync('ssh-agent', ['-s'], { encoding: 'utf8' });
    const sock = /SSH_AUTH_SOCK=([^;]+);/.exec(agent.stdout)?.[1] ?? '';
    const agentPid = Number(/SSH_AGENT_PID=(\d+);/.exec(agent.stdout)?.[1] ?? '0');
    try {
      execFileSync('ssh-add', ['-q', keyFile], { env: { ...process.env, SSH_AUTH_SOCK: sock } });
      const clone = (dest: string) => `GIT_SSH_COMMAND="ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes" git clone -q ${sshd.url(bare)} ${dest} && git -C ${dest} log --oneline | wc -l`;
      const withAgent = await runTool('ssh', ['-F', config, '-A', 'gs', clone('cloned-with-agent')], { ...env, SSH_AUTH_SOCK: sock });
      expect(withAgent.code, `${withAgent.err}\n${sshd.log()}`).to.equal(0);
      expect(withAgent.out.trim()).to.equal('1');
      // Without -A the Gitspace has no key that sshd takes.
      const without = await runTool('ssh', ['-F', config, 'gs', clone('cloned-without')], { ...env, SSH_AUTH_SOCK: sock });
      expect(without.code).to.not.equal(0);
      expect(without.err).to.include('Permission denied');
    } finally {
      sshd.stop();
      if (agentPid) process.kill(agentPid, 'SIGTERM');
    }
  });

  it('passes the exit status, answers keepalives, and leaves no process behind a client that goes away; each connection is an audit line', async () => {
    const before = audit.length;
    expect((await ssh(['gs', 'exit 7'])).code).to.equal(7);
    await eventually('the connection\'s audit line', 10_000, () => audit.slice(before).find((l) => l.event === 'connection') ?? undefined);
    const line = audit.slice(before).find((l) => l.event === 'connection');
    expect(line).to.include({ kind: 'ssh', user: OWNER, gitspace: `${String(app.metadata.namespace)}/sshf-app`, hostKind: 'host', client: '127.0.0.1', result: 'closed' });
    expect(line?.bytesIn).to.be.greaterThan(1000);
    expect(line?.bytesOut).to.be.greaterThan(1000);
    const kept = await ssh(['-o', 'ServerAliveInterval=1', '-o', 'ServerAliveCountMax=2', 'gs', 'sleep 4; echo still here']);
    expect(kept.out, kept.err).to.equal('still here\n');
    const marker = `sleep ${String(4000 + Math.floor(Math.random() * 999))}`;
    const gone = sshBackground(['gs', `${marker}; echo never`]);
    const running = () => spawnSync('pgrep', ['-f', `^${marker}$`], { encoding: 'utf8' }).stdout.trim();
    await eventually('the command to run', 20_000, () => running() !== '' || undefined);
    gone.kill('SIGKILL');
    await eventually('no process of the closed session', 20_000, () => running() === '' || undefined);
  });

  it('follows the client\'s window size and delivers its signals (ssh2 client, straight to the agent)', async () => {
    const ip = running.status?.instance?.privateIP ?? '';
    const c = new ssh2.Client();
    await new Promise<void>((resolve, reject) => {
      c.on('ready', resolve).on('error', reject).connect({ host: ip, port: 47122, username: 'gitspace', privateKey: key.privateKey, readyTimeout: 10_000 });
    });
    try {
      const sizes = await new Promise<string>((resolve, reject) => {
        c.shell({ rows: 20, cols: 80, term: 'xterm' }, (err, stream) => {
          if (err) return reject(err);
          let out = '';
          stream.on('data', (d: Buffer) => {
            out += d.toString();
            if (out.includes('SIZE2=')) stream.end('exit\n');
          });
          stream.on('close', () => resolve(out));
          stream.write('echo SIZE1=$(stty size)\n');
          setTimeout(() => {
            stream.setWindow(33, 120, 0, 0);
            setTimeout(() => stream.write('echo SIZE2=$(stty size)\n'), 500);
          }, 500);
        });
      });
      expect(sizes).to.include('SIZE1=20 80').and.include('SIZE2=33 120');

      const signalled = await new Promise<{ code: unknown; signal: unknown }>((resolve, reject) => {
        c.exec('sleep 30; echo not interrupted', (err, stream) => {
          if (err) return reject(err);
          stream.on('exit', (code: unknown, signal: unknown) => resolve({ code, signal }));
          stream.resume();
          setTimeout(() => stream.signal('TERM'), 500);
        });
      });
      expect(signalled.signal).to.equal('SIGTERM'); // exit-signal "TERM", as ssh2's client names it
    } finally {
      c.end();
    }
  });

  it('VS Code Remote-SSH\'s sequence: a bash script over stdin starts a server in the background and says its port; a forward reaches it', async () => {
    // As the extension does: `bash` with its install script on stdin; the script starts the server
    // detached, prints a marker with the port, and exits; then a direct-tcpip channel to that port.
    const port = await freePort();
    const script = [
      'set -e',
      `nohup python3 -m http.server ${String(port)} --bind 127.0.0.1 > /tmp/vscode-server-${String(port)}.log 2>&1 < /dev/null &`,
      `for i in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/${String(port)}) 2>/dev/null && break; sleep 0.2; done`,
      `echo "listeningOn==${String(port)}=="`,
      '',
    ].join('\n');
    const started = await ssh(['-T', 'gs', 'bash'], script);
    expect(started.out, started.err).to.include(`listeningOn==${String(port)}==`);
    const local = await freePort();
    sshBackground(['-N', '-L', `${String(local)}:127.0.0.1:${String(port)}`, 'gs']);
    const listing = await eventually('the server through the forward', 30_000, async () => {
      const r = await curl([`http://127.0.0.1:${String(local)}/`]);
      return r.code === 0 && r.out ? r.out : undefined;
    });
    expect(listing).to.include('README.md');
    spawnSync('pkill', ['-f', `http.server ${String(port)}`]);
  });

  it('publishes the host key; `gitspaces ssh-config` writes it to known_hosts and ssh checks it, before and after a stop/start', async () => {
    const withKey = await k8s.waitFor(app, (g) => Boolean(g.status?.sshHostKey), 30_000);
    const knownHosts = join(work, 'known_hosts');
    const cli = await runTool(process.execPath, [join(ROOT, 'src/cli/main.ts'), 'ssh-config', '--gateway', `http://127.0.0.1:${String(gw.port)}`, '--identity-file', keyFile, '--known-hosts', knownHosts, '--command', `${process.execPath} ${join(ROOT, 'src/cli/main.ts')}`, HOST], env);
    expect(cli.code, cli.err).to.equal(0);
    expect(cli.out).to.include(`  UserKnownHostsFile ${knownHosts}\n`).and.include('  StrictHostKeyChecking yes\n');
    expect(readFileSync(knownHosts, 'utf8')).to.equal(`${HOST} ${withKey.status?.sshHostKey ?? ''}\n`);
    const strict = join(work, 'ssh_config_strict');
    writeFileSync(strict, `${cli.out}  BatchMode yes\n`);
    const connect = () => runTool('ssh', ['-F', strict, HOST, 'echo checked'], env);
    const first = await connect();
    expect(first.out, first.err).to.equal('checked\n');

    await k8s.patch(app, { spec: { state: 'Stopped' } });
    await k8s.waitPhase(app, 'Stopped', 60_000);
    await k8s.patch(app, { spec: { state: 'Running' } });
    running = await k8s.waitPhase(app, 'Running', 60_000);
    const again = await eventually('ssh with the same known_hosts after the restart', 30_000, async () => {
      const r = await connect();
      return r.code === 0 ? r : undefined;
    });
    expect(again.out).to.equal('checked\n');
    expect(running.status?.sshHostKey).to.equal(withKey.status?.sshHostKey);
    // A different key is refused: the check is real.
    writeFileSync(knownHosts, `${HOST} ${execFileSync('ssh-keygen', ['-y', '-f', keyFile], { encoding: 'utf8' }).trim().split(' ').slice(0, 2).join(' ')}\n`);
    const wrong = await connect();
    expect(wrong.code).to.not.equal(0);
    expect(wrong.err).to.match(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
  });

  it('clones an ssh:// repository with an SSH key Secret checked against its known_hosts; a wrong known_hosts fails naming the host and its key', async () => {
    const gitKey = join(work, 'git_deploy_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'deploy key', '-f', gitKey]);
    const sshd = await startGitSshd(work, readFileSync(`${gitKey}.pub`, 'utf8'));
    const bare = join(work, 'private-over-ssh.git');
    execFileSync('git', ['clone', '-q', '--bare', makeRepo(mkdtempSync(join(work, 'ssh-origin-'))), bare]);
    const secret = (name: string, knownHosts: string) => testCluster().request('POST', '/api/v1/namespaces/default/secrets', {
      body: { apiVersion: 'v1', kind: 'Secret', metadata: { name }, type: 'gitspaces.dev/git-credentials', stringData: { 'ssh-privatekey': readFileSync(gitKey, 'utf8'), known_hosts: `${knownHosts}\n` } },
    });
    try {
      await secret('git-ssh-key', sshd.knownHostsLine);
      const m = gitspaceManifest('sshf-git', { infra: INFRA, repo: bare, key });
      Object.assign((m.spec as { repository: Record<string, unknown> }).repository, { url: sshd.url(bare), credentialsSecretRef: { name: 'git-ssh-key' } });
      Object.assign(m.spec as Record<string, unknown>, { owner: OWNER });
      await k8s.apply(m);
      const g = await k8s.waitFor(m, (x) => x.status?.phase === 'Running' || x.status?.phase === 'Failed', 60_000);
      expect(g.status?.phase, `${g.status?.message ?? ''}\n${sshd.log()}`).to.equal('Running');
      const r = await sshExec(g.status?.instance?.privateIP ?? '', 47122, key, 'git log --oneline | wc -l; stat -c %a ~/.ssh/gitspaces_git_key; git config core.sshCommand; git fetch -q && echo fetched');
      const lines = r.stdout.trim().split('\n');
      expect([lines[0], lines[1], lines[3]], r.stderr).to.deep.equal(['1', '600', 'fetched']);
      // Later fetches and pushes of this checkout use the same key and check the same host key.
      expect(lines[2]).to.match(/^ssh -i \S+\/\.ssh\/gitspaces_git_key -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=\S+\/\.ssh\/gitspaces_known_hosts/);

      // known_hosts of another server: refused before anything is sent, and the failure names the host and the key it showed.
      await secret('git-ssh-wrong-host', `[127.0.0.1]:${String(sshd.port)} ${execFileSync('ssh-keygen', ['-y', '-f', gitKey], { encoding: 'utf8' }).trim().split(' ').slice(0, 2).join(' ')}`);
      const w = gitspaceManifest('sshf-git-wrong', { infra: INFRA, repo: bare, key });
      Object.assign((w.spec as { repository: Record<string, unknown> }).repository, { url: sshd.url(bare), credentialsSecretRef: { name: 'git-ssh-wrong-host' } });
      Object.assign(w.spec as Record<string, unknown>, { owner: OWNER });
      await k8s.apply(w);
      const failed = await k8s.waitPhase(w, 'Failed', 60_000);
      expect(failed.status?.message).to.include(`the SSH host key of 127.0.0.1:${String(sshd.port)} is not in the credentials Secret's known_hosts; the server shows ED25519 SHA256:`);
      await k8s.deleteAndWait(m);
      await k8s.deleteAndWait(w);
    } finally {
      sshd.stop();
      for (const n of ['git-ssh-key', 'git-ssh-wrong-host']) await testCluster().request('DELETE', `/api/v1/namespaces/default/secrets/${n}`);
    }
  });
});
