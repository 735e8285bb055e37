// The "instances that boot like VMs" harness: Docker containers of the stock Debian 12 test image
// with systemd as PID 1 and a fake cloud guest that runs the payload as GCE (every boot) or EC2's
// cloud-init (first boot only) would. Needs the test run's own dockerd, not the Kubernetes cluster.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerVms } from '../fakes/vm-host.ts';
import { dockerInstalled, sharedDocker, type Docker } from '../support/docker.ts';
import { vmImagesScript } from '../support/gce-vms.ts';
import { eventually } from '../support/wait.ts';
import { ROOT } from '../support/resources.ts';

const PREFIX = 'gs-vmtest-';
const NETWORK = 'gs-vmtest';
const SUBNET = '172.30.77.0/24';
const GATEWAY = '172.30.77.1';

/** Runs scripts/vm-images.sh against our dockerd; resolves to the image tag it prints. */
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

describe('container VMs (test/fakes/vm-host.ts)', function () {
  this.timeout(600_000);
  let docker: Docker;
  let vms: ContainerVms;
  let stock: string;
  const timings: string[] = [];

  before(async function () {
    if (!dockerInstalled()) this.skip(); // bash scripts/test-tools.sh installs docker.io
    let t0 = Date.now();
    docker = await sharedDocker();
    timings.push(`dockerd ${seconds(Date.now() - t0)}`);
    vms = new ContainerVms(docker);
    t0 = Date.now();
    stock = await vmImagesScript(docker, ['stock']);
    timings.push(`stock image ${seconds(Date.now() - t0)}`);
    await vms.removeAll(PREFIX);
    await docker.network(NETWORK, SUBNET, GATEWAY);
  });

  after(async () => {
    if (vms) await vms.removeAll(PREFIX);
    if (timings.length > 0) console.log(`      timings: ${timings.join(', ')}`);
  });

  /** Boots (create + start) and waits for the payload's footer on the console. */
  async function bootAndWait(name: string, runs: number): Promise<number> {
    const t0 = Date.now();
    await vms.start(name);
    await eventually(`${name}'s payload to finish (run ${runs})`, 120_000, async () =>
      ((await vms.console(name)).match(/user-data exited with code/g) ?? []).length >= runs ? true : undefined, 100);
    return Date.now() - t0;
  }

  it('gce: boots systemd as PID 1, runs the startup script on every boot, keeps its disk', async () => {
    const name = `${PREFIX}gce`;
    await vms.create({
      name, image: stock, network: NETWORK, kind: 'gce', instanceId: '4711',
      userData: 'echo boot >>/root/boots\necho "startup script ran as $(id -un) on $(hostname)"\n',
    });
    expect(await vms.state(name)).to.equal('created');
    expect(await vms.console(name)).to.equal('');

    timings.push(`first boot to payload done ${seconds(await bootAndWait(name, 1))}`);
    expect(await vms.booted(name)).to.be.oneOf(['running', 'degraded']);
    expect((await vms.exec(name, ['cat', '/proc/1/comm'])).stdout.trim()).to.equal('systemd');
    const failed = await vms.exec(name, ['systemctl', '--failed', '--plain', '--no-legend']);
    expect(failed.stdout.trim(), 'failed units').to.equal('');
    expect((await vms.exec(name, ['cat', '/root/boots'])).stdout).to.equal('boot\n');
    expect(await vms.console(name)).to.match(/^\[\d{4}-\d\d-\d\dT[\d:.]+Z\] fake-cloud\(gce\): boot 1 of instance 4711: running user-data$/m)
      .and.to.contain(`startup script ran as root on ${name}`);
    expect(await vms.ip(name)).to.match(/^172\.30\.77\.\d+$/);
    // no node, no docker, no agent on the stock image
    const which = await vms.exec(name, ['bash', '-c', 'command -v node docker gitspaces-agent; ls /opt']);
    expect(which.stdout.trim()).to.equal('');
    // a user's command, as `exec --user`
    await vms.exec(name, ['useradd', '-m', 'dev']);
    expect((await vms.exec(name, ['id', '-un'], { user: 'dev' })).stdout.trim()).to.equal('dev');

    const t0 = Date.now();
    await vms.stop(name);
    timings.push(`stop ${seconds(Date.now() - t0)}`);
    expect(await vms.state(name)).to.equal('exited');
    expect(await vms.ip(name)).to.equal('');
    expect(await vms.console(name)).to.contain('startup script ran as root'); // readable while stopped

    timings.push(`second boot to payload done ${seconds(await bootAndWait(name, 2))}`);
    expect((await vms.exec(name, ['cat', '/root/boots'])).stdout).to.equal('boot\nboot\n');
    expect((await vms.exec(name, ['id', '-un'], { user: 'dev' })).stdout.trim()).to.equal('dev');
    expect(await vms.console(name)).to.contain('boot 2 of instance 4711: running user-data');

    await vms.remove(name);
    expect(await vms.state(name)).to.equal('absent');
    await vms.remove(name); // idempotent
  });

  it('ec2: runs the user-data on the first boot of the instance only', async () => {
    const name = `${PREFIX}ec2`;
    await vms.create({ name, image: stock, network: NETWORK, kind: 'ec2', instanceId: 'i-0123456789abcdef0', userData: 'echo boot >>/root/boots\necho user-data ran\n' });
    await bootAndWait(name, 1);
    expect(await vms.booted(name)).to.be.oneOf(['running', 'degraded']);
    await vms.stop(name);
    await vms.start(name);
    await vms.booted(name);
    await eventually('the second boot on the console', 60_000, async () =>
      (await vms.console(name)).includes('boot 2 of instance i-0123456789abcdef0: user-data already ran') ? true : undefined, 100);
    expect((await vms.exec(name, ['cat', '/root/boots'])).stdout).to.equal('boot\n');
    expect((await vms.console(name)).match(/user-data ran$/gm)).to.have.length(1);
    expect((await vms.exec(name, ['test', '-e', '/var/lib/cloud/instances/i-0123456789abcdef0/sem/config_scripts_user'])).code).to.equal(0);
  });

  it('an instance reaches the host at its network gateway over HTTP (how VMs fetch the agent bundle)', async () => {
    const seen: { url: string; from: string }[] = [];
    const server: Server = createServer((req, res) => {
      seen.push({ url: req.url ?? '', from: req.socket.remoteAddress ?? '' });
      res.end('bundle-bytes\n');
    });
    await new Promise<void>((res) => server.listen(0, GATEWAY, res));
    try {
      const { port } = server.address() as AddressInfo;
      const name = `${PREFIX}http`;
      await vms.create({
        name, image: stock, network: NETWORK, ip: '172.30.77.50', kind: 'gce', instanceId: '4712',
        userData: `curl -fsS --max-time 20 http://${GATEWAY}:${port}/agent/bundle.tar.gz -o /root/bundle\n`,
      });
      await bootAndWait(name, 1);
      expect(await vms.console(name)).to.contain('user-data exited with code 0');
      expect((await vms.exec(name, ['cat', '/root/bundle'])).stdout).to.equal('bundle-bytes\n');
      expect(seen).to.deep.equal([{ url: '/agent/bundle.tar.gz', from: '172.30.77.50' }]);
      expect(await vms.ip(name)).to.equal('172.30.77.50');
    } finally {
      server.close();
    }
  });

  describe('baked images (images/bake.sh)', () => {
    let dir = '';
    let bundle = '';

    before(async () => {
      // A dummy bundle of the real layout: gitspaces-agent-<version>/{bin/node,bin/gitspaces-agent,lib,node_modules}.
      dir = mkdtempSync(join(tmpdir(), 'gs-bundle-'));
      const top = join(dir, 'gitspaces-agent-0.0.0-test');
      for (const d of ['bin', 'lib', 'node_modules']) mkdirSync(join(top, d), { recursive: true });
      writeFileSync(join(top, 'bin/node'), '#!/bin/sh\necho v24.0.0-fake\n');
      writeFileSync(join(top, 'bin/gitspaces-agent'), '#!/bin/sh\necho "agent $(dirname "$0")/node $*"\n');
      writeFileSync(join(top, 'lib/main.js'), '');
      for (const f of ['bin/node', 'bin/gitspaces-agent']) chmodSync(join(top, f), 0o755);
      bundle = join(dir, 'gitspaces-agent-0.0.0-test-linux-x64.tar.gz');
      // reproducible (same bytes each run), so the baked images stay cached
      const pack = `tar -C "$1" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -c gitspaces-agent-0.0.0-test | gzip -n >"$2"`;
      await new Promise<void>((res, rej) => spawn('bash', ['-c', pack, 'pack', dir, bundle]).on('close', (c) => (c === 0 ? res() : rej(new Error(`tar exited with ${c}`)))));
    });

    after(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('bakes the agent bundle into the stock image, idempotently', async () => {
      const sha = createHash('sha256').update(readFileSync(bundle)).digest('hex');
      const baked = await vmImagesScript(docker, ['baked', '--bundle', bundle, '--no-docker', '--tag', 'gitspaces-test/debian-12:baked-dummy']);
      expect(baked).to.equal('gitspaces-test/debian-12:baked-dummy');
      const name = `${PREFIX}baked`;
      await vms.create({ name, image: baked, network: NETWORK, kind: 'gce', instanceId: '4713', userData: '/opt/gitspaces/current/bin/gitspaces-agent --version\n' });
      await bootAndWait(name, 1);
      expect(await vms.console(name)).to.contain('agent /opt/gitspaces/current/bin/node --version');
      expect((await vms.exec(name, ['cat', '/opt/gitspaces/0.0.0-test/.sha256'])).stdout.trim()).to.equal(sha);
      expect((await vms.exec(name, ['readlink', '/opt/gitspaces/current'])).stdout.trim()).to.equal('0.0.0-test');
      // bake.sh again, in the booted instance: nothing to do
      await docker.run(['cp', join(ROOT, 'images/bake.sh'), `${name}:/tmp/bake.sh`]);
      await docker.run(['cp', bundle, `${name}:/tmp/`]);
      const again = await vms.exec(name, ['bash', '/tmp/bake.sh', '--bundle', '/tmp/gitspaces-agent-0.0.0-test-linux-x64.tar.gz', '--no-docker']);
      expect(again.code, again.stderr).to.equal(0);
      expect(again.stderr).to.contain('agent 0.0.0-test already installed').and.not.contain('installing');
    });

    it('with docker.io (from Debian), the instance runs containers itself, as dev containers will', async () => {
      const baked = await vmImagesScript(docker, ['baked', '--bundle', bundle, '--tag', 'gitspaces-test/debian-12:baked-dummy-docker']);
      const name = `${PREFIX}docker`;
      await vms.create({ name, image: baked, network: NETWORK, kind: 'gce', instanceId: '4714', userData: 'docker version --format "inner docker {{.Server.Version}}"\n' });
      await bootAndWait(name, 1);
      expect(await vms.booted(name)).to.equal('running');
      expect(await vms.console(name)).to.match(/inner docker \d+\.\d+/);
      // an image made of the instance's own bash (no registry), run by the instance's dockerd
      const run = await vms.exec(name, ['bash', '-c',
        'tar -ch $(ldd /bin/bash | grep -o "/[^ ]*") /bin/bash 2>/dev/null | docker import - mini >/dev/null && docker run --rm mini /bin/bash -c "echo inner container ok"']);
      expect(run.stdout.trim(), run.stderr).to.equal('inner container ok');
    });
  });
});
