// Dev containers for real: with a container runtime on the "VM" (the local provider, pointed at
// the test run's own Docker daemon), a devcontainer.json that names an image or a Dockerfile is
// built and started by the reference CLI (`devcontainer up`), its lifecycle commands run inside
// it, and SSH sessions (exec and a PTY shell, stock OpenSSH client) land in it as its remoteUser in
// its workspace folder, seeing its toolchain; stop/start keeps the same container; delete removes it.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { PORT_HEADER, SECRET_HEADER } from '../../src/api/index.ts';
import { testCluster } from '../cluster/current.ts';
import { sharedDocker, type Docker } from '../support/docker.ts';
import { commitAll, makeRepo, makeSshKey, sftpPut, sshExec, sshForward, type SshKey } from '../support/fixtures.ts';
import { STOCK_TAG, vmImagesScript } from '../support/gce-vms.ts';
import { gitspaceManifest, infraManifest, k8s } from '../support/gitspaces.ts';
import { hopTokenOf } from '../support/hop.ts';
import { startOperator, type OperatorProcess } from '../support/operator.ts';
import { eventually } from '../support/wait.ts';

/** An image without glibc (a static busybox): VS Code's server cannot run in it. */
const BUSYBOX_TAG = 'gitspaces-test/busybox:static';

/** A Perl server (perl-base is in every Debian image) answering every HTTP request on `address`:`port` with `body`. */
function httpStandIn(port: number, body: string, address = '0.0.0.0'): string {
  return [
    'use IO::Socket::INET;',
    `my $s = IO::Socket::INET->new(LocalAddr => '${address}', LocalPort => ${String(port)}, Listen => 5, ReuseAddr => 1) or die;`,
    `while (my $c = $s->accept) { while (<$c>) { last if /^\\r?\\n$/ } print $c "HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\n${body}\\n"; close $c }`,
    '',
  ].join('\n');
}

describe('dev containers with the reference CLI on a Docker daemon (operator process, local provider)', function () {
  this.timeout(600_000);
  let work: string;
  let key: SshKey;
  let docker: Docker;
  let op: OperatorProcess;
  const infra = 'devcontainers';
  const containersOf = async (instance: string) => (await docker.run(['ps', '-aq', '--filter', `label=gitspaces.dev/instance=${instance}`])).split('\n').filter(Boolean);

  /** A Gitspace with the browser IDE on `repo`, Running: its instance, address and dev container. */
  async function upWithBrowserIde(name: string, repo: string) {
    const m = gitspaceManifest(name, { infra, repo, key });
    (m.spec as { ide: object }).ide = { type: 'vscode-web' };
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 300_000);
    const inst = running.status?.instance?.name ?? '';
    const [id] = await containersOf(inst);
    return { m, running, inst, ip: running.status?.instance?.privateIP ?? '', id };
  }

  before(async function () {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-devcontainer-'));
    key = makeSshKey();
    docker = await sharedDocker();
    // A Debian image built from packages (no registry here), the base of the dev containers.
    await vmImagesScript(docker, ['stock']);
    await k8s.apply(infraManifest(infra, join(work, 'instances')));
    const prev = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = docker.host;
    try {
      op = await startOperator({ kubeconfig: testCluster().kubeconfigPath, logDir: work });
    } finally {
      if (prev === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = prev;
    }
  });
  after(async () => {
    try {
      await k8s.cleanUpInfra(infra);
    } finally {
      await op.kill('SIGTERM');
      await docker.stop();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('builds the Dockerfile, runs the hooks inside, and puts SSH sessions in the container as its user in its workspace', async () => {
    const repoDir = mkdtempSync(join(work, 'repo-'));
    const repo = makeRepo(repoDir, `{
      "build": { "dockerfile": "Dockerfile" },
      "containerEnv": { "IN_CONTAINER": "yes" },
      "remoteUser": "dev",
      "initializeCommand": "echo initialize $(hostname) >> .hooks",
      "onCreateCommand": "echo onCreate $(hostname) $(id -un) $PWD >> ~/.hooks",
      "updateContentCommand": "echo updateContent $(hostname) >> ~/.hooks",
      "postCreateCommand": "echo postCreate $(hostname) >> ~/.hooks",
      "postStartCommand": { "mark": "echo postStart $(hostname) >> ~/.hooks", "serve": "setsid perl /usr/local/bin/serve.pl >/dev/null 2>&1 </dev/null &" },
      "forwardPorts": [8000, 8001],
      "customizations": { "vscode": { "settings": { "editor.fontSize": 17 } } }
    }`);
    // The toolchain only the container has, and its user.
    writeFileSync(join(repo, '.devcontainer/Dockerfile'), [
      `FROM ${STOCK_TAG}`,
      'RUN useradd --create-home --shell /bin/bash dev && printf "#!/bin/sh\\necho container-tool\\n" > /usr/local/bin/only-in-container && chmod +x /usr/local/bin/only-in-container',
      'COPY serve.pl /usr/local/bin/serve.pl',
      // OpenSSH's sftp-server (it needs only libc; the host is Debian 12 as the image is).
      'COPY sftp-server /usr/lib/openssh/sftp-server',
      '',
    ].join('\n'));
    // A dev server in the container (perl-base is in every Debian image): a forwarded port.
    writeFileSync(join(repo, '.devcontainer/serve.pl'), httpStandIn(8000, 'from the container'));
    copyFileSync('/usr/lib/openssh/sftp-server', join(repo, '.devcontainer/sftp-server'));
    // A server only the container's own loopback hears (as VS Code's server listens).
    writeFileSync(join(repo, '.devcontainer/loopback.pl'), httpStandIn(8001, 'from the container\'s loopback', '127.0.0.1'));
    commitAll(repo);
    const { m, running, inst, ip, id } = await upWithBrowserIde('dc', repo);
    expect(id, 'a container labelled with the instance').to.be.a('string');
    const hostname = (await docker.run(['inspect', '-f', '{{.Config.Hostname}}', id ?? ''])).trim();
    const image = (await docker.run(['inspect', '-f', '{{.Config.Image}}', id ?? ''])).trim();
    expect(running.status?.conditions?.find((c) => c.type === 'ContainerReady')).to.deep.include({ status: 'True', reason: 'Up', message: `container ${(id ?? '').slice(0, 12)} from ${image}: dev in /workspaces/repo` });

    // initializeCommand on the host (in the checkout); the others in the container, as its user
    // (whose home they write to: the checkout belongs to the VM's user, root in this test).
    const hostHooks = () => readFileSync(join(work, 'instances', inst, 'home/repo/.hooks'), 'utf8').trim().split('\n');
    const containerHooks = async () => (await docker.run(['exec', id ?? '', 'cat', '/home/dev/.hooks'])).trim().split('\n');
    expect(hostHooks()).to.have.length(1);
    expect(hostHooks()[0]).to.match(/^initialize /).and.not.include(hostname);
    expect(await containerHooks()).to.deep.equal([`onCreate ${hostname} dev /workspaces/repo`, `updateContent ${hostname}`, `postCreate ${hostname}`, `postStart ${hostname}`]);

    // The browser IDE runs in the container as its user, on the workspace, with the devcontainer's
    // settings; the agent serves its workbench; what it was given from the VM is read-only there.
    const ps = await docker.run(['exec', id ?? '', 'ps', '-eo', 'user:16,args']);
    expect(ps.split('\n').some((l) => l.startsWith('dev ') && l.includes('/opt/gitspaces/code-server/') && l.includes('/workspaces/repo')), ps).to.equal(true);
    const settings = JSON.parse(await docker.run(['exec', id ?? '', 'cat', '/home/dev/.local/share/code-server/user-data/User/settings.json'])) as Record<string, unknown>;
    expect(settings['editor.fontSize']).to.equal(17);
    const token0 = await hopTokenOf(running);
    const workbench = await fetch(`http://${ip}:47100/?folder=${encodeURIComponent('/workspaces/repo')}`, { headers: { [SECRET_HEADER]: token0 } });
    expect(workbench.status).to.equal(200);
    expect(await workbench.text()).to.include('workbench');
    expect((await docker.exec(['exec', id ?? '', 'touch', '/opt/gitspaces/node/x'])).code).to.not.equal(0);
    expect((await docker.exec(['exec', id ?? '', 'touch', '/opt/gitspaces/code-server/x'])).code).to.not.equal(0);

    // The forwarded port reaches the server in the container (as the gateway asks the agent).
    const token = await hopTokenOf(running);
    let last = '';
    const served = await eventually(() => `the container's port 8000 through the agent; last: ${last}`, 20_000, async () => {
      const res = await fetch(`http://${ip}:47100/`, { headers: { [SECRET_HEADER]: token, [PORT_HEADER]: '8000' } });
      const body = await res.text();
      last = `${String(res.status)} ${body}`;
      return res.status === 200 ? body : undefined;
    });
    expect(served).to.equal('from the container\n');
    // And so does an SSH port forward (ssh -L localhost:8000) to it; and to a server on the
    // container's own loopback, which a session started (setsid: it outlives the session).
    expect(await sshForward(ip, 47122, key, 8000, 'GET / HTTP/1.0\r\n\r\n')).to.include('from the container');
    expect((await sshExec(ip, 47122, key, 'setsid perl .devcontainer/loopback.pl >/dev/null 2>&1 < /dev/null & sleep 0.5; echo started')).stdout).to.equal('started\n');
    const loopback = await eventually('the loopback-only server through ssh -L', 20_000, async () => {
      const out = await sshForward(ip, 47122, key, 8001, 'GET / HTTP/1.0\r\n\r\n').catch(() => '');
      return out.includes('200 OK') ? out : undefined;
    });
    expect(loopback).to.include('from the container\'s loopback');
    // The same port published through the gateway (as the gateway asks the agent) reaches it too.
    const published = await fetch(`http://${ip}:47100/`, { headers: { [SECRET_HEADER]: token, [PORT_HEADER]: '8001' } });
    expect(await published.text()).to.equal('from the container\'s loopback\n');

    const r = await sshExec(ip, 47122, key, 'id -un; pwd; hostname; only-in-container; echo "IN_CONTAINER=$IN_CONTAINER TEAM=$TEAM"');
    expect(r.code, `${r.stdout}\n${r.stderr}`).to.equal(0);
    expect(r.stdout.trim().split('\n')).to.deep.equal(['dev', '/workspaces/repo', hostname, 'container-tool', 'IN_CONTAINER=yes TEAM=platform']);
    // The workspace is the checkout on the VM's disk.
    const mounts = JSON.parse(await docker.run(['inspect', '-f', '{{json .Mounts}}', id ?? ''])) as { Source: string; Destination: string }[];
    expect(mounts).to.deep.include.members([{ ...mounts.find((x) => x.Destination === '/workspaces/repo'), Source: join(work, 'instances', inst, 'home/repo'), Destination: '/workspaces/repo' }]);
    // A client that goes away takes its session's processes in the container with it (docker exec
    // would leave them running).
    for (const pty of [false, true]) {
      const marker = `sleep ${String(5000 + Math.floor(Math.random() * 999))}`;
      const c = new ssh2.Client();
      await new Promise<void>((resolve, reject) => {
        c.on('ready', () => {
          c.exec(marker, pty ? { pty: { rows: 24, cols: 80, term: 'xterm' } } : {}, (err) => (err ? reject(err) : resolve()));
        }).on('error', reject).connect({ host: ip, port: 47122, username: 'dev', privateKey: key.privateKey });
      });
      const inContainer = async () => (await docker.exec(['exec', id ?? '', 'pgrep', '-f', `^${marker}$`])).stdout.trim();
      await eventually(`${marker} to run in the container`, 20_000, async () => (await inContainer()) !== '' || undefined);
      await new Promise((r) => setTimeout(r, 1_000));
      expect(await inContainer(), 'still running while its client is there').to.not.equal('');
      c.end();
      await eventually(`${marker} (pty: ${String(pty)}) to end with its session`, 20_000, async () => (await inContainer()) === '' || undefined);
    }
    // SFTP is the container's sftp-server, as its user, on its paths (the workspace is the checkout).
    const listed = await sftpPut(ip, 47122, key, '/home/dev/via-sftp.txt', 'written over sftp\n');
    expect(listed).to.include('via-sftp.txt').and.include('.hooks');
    expect(await docker.run(['exec', id ?? '', 'stat', '-c', '%U %s', '/home/dev/via-sftp.txt'])).to.equal('dev 18\n');
    // ssh -A: the client's agent, reachable in the container (git push over SSH from there).
    const agentOut = execFileSync('ssh-agent', ['-s'], { encoding: 'utf8' });
    const sock = /SSH_AUTH_SOCK=([^;]+);/.exec(agentOut)?.[1] ?? '';
    const agentPid = Number(/SSH_AGENT_PID=(\d+);/.exec(agentOut)?.[1] ?? '0');
    try {
      const keyFile = join(work, 'agent_key');
      writeFileSync(keyFile, key.privateKey, { mode: 0o600 });
      execFileSync('ssh-add', ['-q', keyFile], { env: { ...process.env, SSH_AUTH_SOCK: sock } });
      const listed = await sshExec(ip, 47122, key, 'hostname; ssh-add -l', false, { agent: sock });
      expect(listed.stdout.split('\n')[0], listed.stderr).to.equal(hostname);
      expect(listed.stdout, listed.stderr).to.match(/^256 SHA256:\S+ .*\(ECDSA\)$/m);
    } finally {
      if (agentPid) process.kill(agentPid, 'SIGTERM');
    }
    const tty = await sshExec(ip, 47122, key, 'tty; stty size; hostname', true);
    expect(tty.stdout).to.match(/\/dev\/pts\/\d+/);
    expect(tty.stdout).to.include('30 100');
    expect(tty.stdout).to.include(hostname);

    // Stop and start: the same container, only postStartCommand (and initialize) again.
    await k8s.patch(m, { spec: { state: 'Stopped' } });
    await k8s.waitPhase(m, 'Stopped', 60_000);
    expect((await docker.run(['inspect', '-f', '{{.State.Running}}', id ?? ''])).trim()).to.equal('false');
    await k8s.patch(m, { spec: { state: 'Running' } });
    await k8s.waitPhase(m, 'Running', 120_000);
    expect(await containersOf(inst)).to.deep.equal([id]);
    expect(hostHooks()).to.have.length(2);
    expect((await containerHooks()).slice(4)).to.deep.equal([`postStart ${hostname}`]);
    // The address may change with a restart; the port follows it.
    await eventually('the container\'s port 8000 after the restart', 20_000, async () => {
      const res = await fetch(`http://${ip}:47100/`, { headers: { [SECRET_HEADER]: token, [PORT_HEADER]: '8000' } }).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    });

    // A changed devcontainer.json is rebuilt on a new gitspaces.dev/rebuild value: a new container
    // replaces the old one and gets the create hooks; once per value.
    const config = join(work, 'instances', inst, 'home/repo/.devcontainer/devcontainer.json');
    writeFileSync(config, readFileSync(config, 'utf8').replace('"IN_CONTAINER": "yes"', '"IN_CONTAINER": "rebuilt"'));
    await k8s.patch(m, { metadata: { annotations: { 'gitspaces.dev/rebuild': 'one' } } });
    const rebuilt = await k8s.waitFor(m, (g) => g.status?.phase === 'Running' && !(g.status.conditions?.find((c) => c.type === 'ContainerReady')?.message ?? '').includes((id ?? '').slice(0, 12)), 120_000);
    const [newId] = await containersOf(inst);
    expect(newId).to.not.equal(id);
    expect(await containersOf(inst)).to.deep.equal([newId]);
    expect(rebuilt.status?.conditions?.find((c) => c.type === 'ContainerReady')?.message).to.include(`container ${(newId ?? '').slice(0, 12)}`);
    const inNew = await sshExec(ip, 47122, key, 'echo "IN_CONTAINER=$IN_CONTAINER"; head -1 ~/.hooks | cut -d" " -f1');
    expect(inNew.stdout.trim().split('\n')).to.deep.equal(['IN_CONTAINER=rebuilt', 'onCreate']);
    expect(await k8s.eventReasons(rebuilt)).to.include('ContainerRebuildStarted');
    // The IDE moved with it.
    expect(await docker.run(['exec', newId ?? '', 'ps', '-eo', 'args'])).to.include('/opt/gitspaces/code-server/');
    expect((await fetch(`http://${ip}:47100/?folder=${encodeURIComponent('/workspaces/repo')}`, { headers: { [SECRET_HEADER]: token0 } })).status).to.equal(200);
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await containersOf(inst)).to.deep.equal([newId]);

    await k8s.deleteAndWait(m);
    await eventually('the container to be removed with the instance', 30_000, async () => (await containersOf(inst)).length === 0);
  });

  it('fails the container step with the build\'s own words when the Dockerfile does not build', async () => {
    const repo = makeRepo(mkdtempSync(join(work, 'repo-')), '{ "build": { "dockerfile": "Dockerfile" } }');
    mkdirSync(join(repo, '.devcontainer'), { recursive: true });
    writeFileSync(join(repo, '.devcontainer/Dockerfile'), `FROM ${STOCK_TAG}\nRUN echo the-build-broke && exit 7\n`);
    commitAll(repo);
    const m = gitspaceManifest('dc-broken', { infra, repo, key });
    await k8s.apply(m);
    const failed = await k8s.waitPhase(m, 'Failed', 300_000);
    const message = failed.status?.message ?? '';
    expect(message, message).to.match(/^set-up step container: devcontainer up failed: /);
    expect(message, message).to.match(/exit code: 7|returned a non-zero code: 7|the-build-broke/);
  });

  it('fails the container step naming a feature its registry cannot give', async () => {
    const repo = makeRepo(mkdtempSync(join(work, 'repo-')), `{ "image": "${STOCK_TAG}", "features": { "ghcr.io/devcontainers/features/node:1": {} } }`);
    const m = gitspaceManifest('dc-feature', { infra, repo, key });
    await k8s.apply(m);
    const failed = await k8s.waitPhase(m, 'Failed', 300_000);
    const message = failed.status?.message ?? '';
    expect(message, message).to.match(/^set-up step container: devcontainer up failed: /);
    expect(message, message).to.include('ghcr.io/devcontainers/features/node:1');
  });

  it('brings up a dockerComposeFile environment: SSH and the browser IDE in its service, its other services beside it', async () => {
    const repo = makeRepo(mkdtempSync(join(work, 'repo-')), `{
      "dockerComposeFile": "compose.yml",
      "service": "app",
      "runServices": ["app", "db"],
      "workspaceFolder": "/workspaces/repo",
      "forwardPorts": ["db:5000"],
      "postCreateCommand": "echo postCreate $(hostname) >> /tmp/hooks"
    }`);
    writeFileSync(join(repo, '.devcontainer/compose.yml'), [
      'version: "3"',
      'services:',
      '  app:',
      `    image: ${STOCK_TAG}`,
      '    command: sleep infinity',
      '    volumes: ["..:/workspaces/repo"]',
      '    environment: { FROM_COMPOSE: "yes" }',
      '  db:',
      `    image: ${STOCK_TAG}`,
      '    volumes: [".:/db:ro"]',
      '    command: ["perl", "/db/db.pl"]',
      '',
    ].join('\n'));
    // A stand-in database that speaks just enough HTTP to be a forwarded port.
    writeFileSync(join(repo, '.devcontainer/db.pl'), httpStandIn(5000, 'db answers'));
    commitAll(repo);
    const { m, running, inst, ip, id } = await upWithBrowserIde('dc-compose', repo);
    expect(running.status?.conditions?.find((c) => c.type === 'ContainerReady')).to.include({ status: 'True', reason: 'Up' });
    const service = (await docker.run(['inspect', '-f', '{{index .Config.Labels "com.docker.compose.service"}}', id ?? ''])).trim();
    expect(service).to.equal('app');

    const r = await sshExec(ip, 47122, key, 'pwd; echo "$FROM_COMPOSE"; cat /tmp/hooks; curl -s http://db:5000/');
    const hostname = (await docker.run(['inspect', '-f', '{{.Config.Hostname}}', id ?? ''])).trim();
    expect(r.stdout.trim().split('\n'), r.stderr).to.deep.equal(['/workspaces/repo', 'yes', `postCreate ${hostname}`, 'db answers']);
    const token = await hopTokenOf(running);
    const workbench = await fetch(`http://${ip}:47100/?folder=${encodeURIComponent('/workspaces/repo')}`, { headers: { [SECRET_HEADER]: token } });
    expect(workbench.status).to.equal(200);
    expect(await docker.run(['exec', id ?? '', 'ps', '-eo', 'args'])).to.include('/opt/gitspaces/code-server/');
    // forwardPorts "db:5000": the port is the db service's, reached through the agent as the gateway does.
    await k8s.waitFor(m, (g) => g.status?.route?.ports?.some((p) => p.port === 5000), 30_000);
    const db = await fetch(`http://${ip}:47100/`, { headers: { [SECRET_HEADER]: token, [PORT_HEADER]: '5000' } });
    expect(await db.text()).to.equal('db answers\n');

    // The project is the instance's (this daemon serves other "VMs"), and goes with it whole, not
    // only the service the agent labelled.
    const project = (await docker.run(['inspect', '-f', '{{index .Config.Labels "com.docker.compose.project"}}', id ?? ''])).trim();
    expect(project).to.equal(inst);
    const projectContainers = async () => (await docker.run(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`])).split('\n').filter(Boolean);
    expect(await projectContainers()).to.have.length(2);
    await k8s.deleteAndWait(m);
    await eventually('the compose project to be removed with the instance', 30_000, async () => (await projectContainers()).length === 0);
    expect(await docker.run(['network', 'ls', '-q', '--filter', `label=com.docker.compose.project=${project}`])).to.equal('');
  });

  it('fails the IDE step saying why when the browser IDE cannot run in the container (an image without glibc)', async () => {
    // An image with nothing but a static busybox (Debian's busybox-static, from scripts/test-tools.sh).
    const root = mkdtempSync(join(work, 'busybox-'));
    for (const d of ['bin', 'etc', 'root', 'tmp']) mkdirSync(join(root, d));
    copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
    for (const applet of execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => a && a !== 'busybox')) symlinkSync('busybox', join(root, 'bin', applet));
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
    await docker.run(['import', '--change', 'ENV PATH=/bin', '-', BUSYBOX_TAG], { input: execFileSync('tar', ['-C', root, '-c', '.'], { maxBuffer: 64 * 1024 * 1024 }) });
    const repo = makeRepo(mkdtempSync(join(work, 'repo-')), `{ "image": "${BUSYBOX_TAG}" }`);
    const m = gitspaceManifest('dc-noglibc', { infra, repo, key });
    (m.spec as { ide: object }).ide = { type: 'vscode-web' };
    await k8s.apply(m);
    const failed = await k8s.waitPhase(m, 'Failed', 300_000);
    const message = failed.status?.message ?? '';
    expect(message, message).to.match(/^set-up step ideRun: the browser IDE cannot run in this container \(it needs glibc, as VS Code's server does\): /);
    // The container itself came up: the failure is the IDE's, and says so.
    expect(failed.status?.conditions?.find((c) => c.type === 'ContainerReady')).to.include({ status: 'True' });
  });
});
