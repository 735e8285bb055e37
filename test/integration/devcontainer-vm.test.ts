// Dev containers on VMs that run Docker, end to end on the GCE fake's instances (containers with
// systemd and a Docker of their own, test/fakes/vm-host.ts) booted from the image baked with Docker
// (images/bake.sh's default): the agent runs the reference CLI on the VM's Docker, as the VM's
// gitspace user, so updateRemoteUserUID maps the container user to it; ssh through the gateway
// lands in the container; a VM restart starts the same container. A warm pool pulls the images its
// entry names from a registry (Debian's docker-registry, on this host) before any Gitspace claims
// one of its VMs, so the claim starts without a pull.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LABELS, type Gitspace, type GitspaceInfra } from '../../src/api/index.ts';
import { agentBundleOption } from '../../src/cli/operator.ts';
import { createOperator, type Operator } from '../../src/controllers/operator.ts';
import { Gateway } from '../../src/gateway/server.ts';
import { gceLabelKey } from '../../src/providers/gcp/labels.ts';
import type { GcpProvider } from '../../src/providers/gcp/provider.ts';
import { KubeClient } from '../../src/runtime/kube.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { testCluster } from '../cluster/current.ts';
import type { GceFake } from '../fakes/gce/server.ts';
import type { ContainerVms } from '../fakes/vm-host.ts';
import { sharedDocker, type Docker } from '../support/docker.ts';
import { makeDevcontainerRepo, makeSshKeyFile, sshViaGateway, type SshKey } from '../support/fixtures.ts';
import { dockerBakedImage, gceOnContainers, gcpProviderSpec, instanceVms, STOCK_TAG, vmImages } from '../support/gce-vms.ts';
import { serveRepoPrivately, type GitHttpServer } from '../support/git-http.ts';
import { k8s } from '../support/gitspaces.ts';
import { TestIssuer } from '../support/issuer.ts';
import { imageTrusting, pushImage, startRegistry, type TestRegistry } from '../support/registry.ts';
import type { Manifest } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

const PROJECT = 'acme-devcontainers';
const ZONE = 'europe-west1-c';
const IMAGE = `projects/${PROJECT}/global/images/gitspaces-docker`;
/** Stock Debian 12 (no Docker), trusting the test registry. */
const STOCK_IMAGE = `projects/${PROJECT}/global/images/debian-12`;
const NET = { name: 'gs-test-dcvm', prefix: '172.26', host: '172.26.0.1' };
const NS = 'default';
const OWNER = 'dev@example.com';
const GIT_USER = 'bot';
const GIT_TOKEN = 'dc-git-token-7d1e';
const CREDS = 'dc-git-creds';

describe('dev containers on VMs with Docker (GCE fake, baked image): the container, its user and a warm pool\'s pre-pulled images', function () {
  this.timeout(15 * 60_000);
  let work: string;
  let docker: Docker;
  let vms: ContainerVms;
  let gce: GceFake;
  let gcp: GcpProvider;
  let issuer: TestIssuer;
  let gw: Gateway;
  let registry: TestRegistry;
  let op: Operator;
  let key: SshKey;
  let keyFile: string;
  const servers: GitHttpServer[] = [];
  const prefix = `gsdc${String(process.pid)}`;
  /** The stock image as the registry serves it (VMs reach this host at NET.host). */
  let registryImage: string;

  const infra = (name: string, o: { image?: string; pool?: Record<string, unknown>[]; installDocker?: boolean } = {}): Manifest => ({
    apiVersion: 'gitspaces.dev/v1alpha1',
    kind: 'GitspaceInfra',
    metadata: { name },
    spec: {
      provider: gcpProviderSpec(PROJECT, ZONE),
      image: o.image ?? IMAGE,
      machineTypes: [{ name: 'small', providerType: 'e2-standard-2', diskSizeGB: 20 }],
      allowedNamespaces: {}, gateway: { domain: 'gitspaces.test', egressRanges: ['172.16.0.0/12'] },
      auth: { issuer: issuer.url, audience: issuer.audience },
      vm: { agentBundleBaseURL: `http://${NET.host}:${String(gw.port)}/.gitspaces/agent`, ...(o.installDocker ? { installDocker: true } : {}) },
      ...(o.pool ? { pool: o.pool } : {}),
    },
  });

  const gitspace = (name: string, infraName: string, server: GitHttpServer): Manifest => ({
    apiVersion: 'gitspaces.dev/v1alpha1',
    kind: 'Gitspace',
    metadata: { name, namespace: NS },
    spec: {
      infraRef: { name: infraName }, owner: OWNER, ide: { type: 'ssh' }, machineType: 'small', sshPublicKeys: [key.publicLine], idleTimeout: '0',
      repository: { url: server.url.replace('0.0.0.0', NET.host), credentialsSecretRef: { name: CREDS } },
    },
  });

  const serve = async (repo: string, dir: string) => {
    const s = await serveRepoPrivately(repo, dir, GIT_USER, GIT_TOKEN, '0.0.0.0');
    servers.push(s);
    return s;
  };

  const ssh = async (name: string, command: string) =>
    sshViaGateway({ gateway: `http://127.0.0.1:${String(gw.port)}`, host: `${name}--${NS}.gitspaces.test`, keyFile, token: await issuer.token(OWNER), command });

  const get = async (name: string) => (await testCluster().request('GET', `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces/${name}`)).json as Gitspace;
  const ref = (name: string): Manifest => ({ apiVersion: 'gitspaces.dev/v1alpha1', kind: 'Gitspace', metadata: { name, namespace: NS } });
  const running = async (name: string) => {
    const g = await k8s.waitFor(ref(name), (x) => x.status?.phase === 'Running' || x.status?.phase === 'Failed', 5 * 60_000);
    expect(g.status?.phase, g.status?.message).to.equal('Running');
    return g;
  };
  const vmOf = (inst: string) => `${prefix}-${inst}`;
  const containersOn = async (vm: string, inst: string) =>
    (await vms.exec(vm, ['docker', 'ps', '-aq', '--filter', `label=${LABELS.devcontainerInstance}=${inst}`])).stdout.trim().split('\n').filter(Boolean);

  before(async function () {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-dcvm-'));
    ({ key, keyFile } = makeSshKeyFile(work));
    docker = await sharedDocker();
    vms = await instanceVms(docker, prefix, [NET]);
    const { bundle } = await vmImages(docker);
    const baked = await dockerBakedImage(docker, join(bundle.dir, bundle.manifest.files.x64?.file ?? ''));
    // The registry on this host, in plain HTTP: the VMs' Docker is told so (as a platform team's
    // image would trust its registry), a layer over the baked image made anew each run.
    registry = await startRegistry(join(work, 'registry'));
    registryImage = `${NET.host}:${String(registry.port)}/dev/base:1`;
    await pushImage(docker, STOCK_TAG, registry, 'dev/base:1');
    const tag = await imageTrusting(docker, baked, `${NET.host}:${String(registry.port)}`, `gitspaces-test/debian-12:baked-docker-${prefix}`);
    const stock = await imageTrusting(docker, STOCK_TAG, `${NET.host}:${String(registry.port)}`, `gitspaces-test/debian-12:stock-${prefix}`);

    issuer = await TestIssuer.start();
    gw = new Gateway({ client: new KubeClient(testCluster().access()), log: createLogger({ component: 'gateway' }, 'error'), audit: () => undefined, port: 0, address: '0.0.0.0', agentBundles: bundle.dir, jwksCooldownMs: 0, authFailureBurst: 1_000, drainDelayMs: 0 });
    await gw.start();
    ({ gce, gcp } = await gceOnContainers({ project: PROJECT, zone: ZONE, vms, net: NET, namePrefix: prefix, images: { [IMAGE]: tag, [STOCK_IMAGE]: stock } }));
    op = createOperator({
      client: new KubeClient(testCluster().access()),
      log: createLogger({ component: 'operator' }, 'error'),
      providerFor: (_i: GitspaceInfra) => gcp,
      namespace: NS,
      sweep: false,
      ...agentBundleOption(bundle.dir),
    });
    await op.manager.start();
    await testCluster().request('POST', `/api/v1/namespaces/${NS}/secrets`, { body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: CREDS }, type: 'gitspaces.dev/git-credentials', stringData: { username: GIT_USER, password: GIT_TOKEN } } });
  });

  after(async () => {
    try {
      for (const i of ['dc-docker', 'dc-pool', 'dc-stock']) await k8s.cleanUpInfra(i).catch(() => undefined);
      await testCluster().request('DELETE', `/api/v1/namespaces/${NS}/secrets/${CREDS}`);
    } finally {
      await op.manager.stop();
      await gw.stop();
      await issuer.stop();
      for (const s of servers) await s.close();
      await registry.stop();
      await gce.stop();
      await gcp.close();
      await vms.removeAll(`${prefix}-`);
      await docker.run(['rmi', `gitspaces-test/debian-12:baked-docker-${prefix}`, `gitspaces-test/debian-12:stock-${prefix}`]).catch(() => undefined);
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('runs the repository\'s dev container on the VM\'s Docker, its user mapped to gitspace\'s uid, ssh lands in it, and a restart keeps it', async () => {
    await k8s.apply(infra('dc-docker'));
    const git = await serve(makeDevcontainerRepo(join(work, 'dc'), STOCK_TAG, STOCK_TAG), join(work, 'dc'));
    await k8s.apply(gitspace('dc-gce', 'dc-docker', git));
    const inst = await eventually('an instance for dc-gce', 120_000, async () => (await get('dc-gce')).status?.instance?.name || undefined);
    const vm = vmOf(inst);
    await eventually('the VM\'s Docker to answer', 180_000, async () => (await vms.exec(vm, ['docker', 'info']).catch(() => ({ code: 1 }))).code === 0);
    await vms.loadImage(vm, STOCK_TAG);
    const g = await running('dc-gce');
    const [id] = await containersOn(vm, inst);
    expect(id, 'a container labelled with the instance on the VM\'s Docker').to.be.a('string');
    expect(g.status?.conditions?.find((c) => c.type === 'ContainerReady')).to.include({ status: 'True', reason: 'Up' });

    // Through the gateway with the stock ssh client: the container's user (its uid now gitspace's),
    // its workspace, its toolchain and env; what it writes in the workspace belongs to gitspace on the VM.
    const r = await ssh('dc-gce', 'id -un; id -u; pwd; which only-in-container; echo $IN_CONTAINER; echo from-container > made-here; echo kept > ~/kept');
    expect(r.out.trim().split('\n'), r.err).to.deep.equal(['dev', '1000', '/workspaces/private', '/usr/local/bin/only-in-container', 'yes']);
    const onVm = await vms.exec(vm, ['stat', '-c', '%U %u', '/home/gitspace/private/made-here', '/home/gitspace/private/.hooks']);
    expect(onVm.stdout.trim().split('\n'), onVm.stderr).to.deep.equal(['gitspace 1000', 'gitspace 1000']);
    expect((await vms.exec(vm, ['cat', '/home/gitspace/private/.hooks'])).stdout).to.equal('postCreate dev 1000\n');
    expect((await vms.exec(vm, ['which', 'only-in-container'])).code, 'the tool is the container\'s only').to.not.equal(0);

    // A VM restart: Docker comes up with the VM, and `devcontainer up` starts the same container.
    await k8s.patch(ref('dc-gce'), { spec: { state: 'Stopped' } });
    await k8s.waitPhase(ref('dc-gce'), 'Stopped', 3 * 60_000);
    await k8s.patch(ref('dc-gce'), { spec: { state: 'Running' } });
    await running('dc-gce');
    expect(await containersOn(vm, inst)).to.deep.equal([id]);
    const again = await ssh('dc-gce', 'cat ~/kept ~/starts');
    expect(again.out, again.err).to.equal('kept\npostStart\npostStart\n');
    await k8s.deleteAndWait(ref('dc-gce'));
  });

  it('a warm pool VM pulls its entry\'s images while unclaimed; the Gitspace that claims it builds without pulling', async () => {
    await k8s.apply(infra('dc-pool', { pool: [{ machineType: 'small', zone: ZONE, minReady: 1, max: 1, prePullImages: [registryImage] }] }));
    // The pool VM, booted and unclaimed, has the image before any Gitspace exists.
    const pooled = await eventually('a pool VM with the image pulled', 5 * 60_000, async () => {
      for (const i of gce.instances.values()) {
        if (!i.labels[gceLabelKey(LABELS.pool)]) continue;
        if ((await vms.exec(vmOf(i.name), ['docker', 'image', 'inspect', registryImage]).catch(() => ({ code: 1 }))).code === 0) return i.name;
      }
      return undefined;
    }, 1_000);
    const ip = gce.instances.get(`${ZONE}/${pooled}`)?.networkIP ?? '';
    const byVm = () => registry.requests().filter((r) => r.from === ip).map((r) => r.what);
    const pulled = byVm();
    // A pull: the tag resolved, then the image's config and its layer fetched.
    expect(pulled[0], pulled.join('\n')).to.match(/^(HEAD|GET) manifests dev\/base:1$/);
    expect(pulled.filter((w) => w.startsWith('GET blobs')), pulled.join('\n')).to.have.length(2);

    const git = await serve(makeDevcontainerRepo(join(work, 'pool'), registryImage), join(work, 'pool'));
    await k8s.apply(gitspace('dc-claim', 'dc-pool', git));
    const g = await running('dc-claim');
    expect(g.status?.instance).to.include({ name: pooled, pooled: true });
    expect(g.status?.conditions?.find((c) => c.type === 'ContainerReady')).to.include({ status: 'True', reason: 'Up' });
    const r = await ssh('dc-claim', 'id -un; which only-in-container');
    expect(r.out, r.err).to.equal('dev\n/usr/local/bin/only-in-container\n');
    // The claimed VM asked the registry nothing more (the pool's replacement VM pulls for itself).
    expect(byVm(), 'no pull after the claim').to.deep.equal(pulled);
    await k8s.deleteAndWait(ref('dc-claim'));
  });

  it('on a stock image without Docker, an infra with vm.installDocker installs the distribution\'s Docker at first need and runs the dev container', async () => {
    await k8s.apply(infra('dc-stock', { image: STOCK_IMAGE, installDocker: true }));
    const git = await serve(makeDevcontainerRepo(join(work, 'stock'), registryImage), join(work, 'stock'));
    await k8s.apply(gitspace('dc-onstock', 'dc-stock', git));
    const g = await running('dc-onstock');
    const vm = vmOf(g.status?.instance?.name ?? '');
    expect(g.status?.conditions?.find((c) => c.type === 'ContainerReady')).to.include({ status: 'True', reason: 'Up' });
    const r = await ssh('dc-onstock', 'id -un; id -u; which only-in-container');
    expect(r.out, r.err).to.equal('dev\n1000\n/usr/local/bin/only-in-container\n');
    // Debian's docker.io, not docker-compose (no compose file), and the developer in its group.
    const pkgs = await vms.exec(vm, ['sh', '-c', 'dpkg -s docker.io >/dev/null && echo docker.io; dpkg -s docker-compose >/dev/null 2>&1 && echo docker-compose; id -nG gitspace']);
    expect(pkgs.stdout.trim().split('\n')[0]).to.equal('docker.io');
    expect(pkgs.stdout).to.not.include('docker-compose');
    expect(pkgs.stdout.trim().split('\n')[1]?.split(' ')).to.include('docker');
    const journal = await vms.exec(vm, ['sh', '-c', 'journalctl -u gitspaces-agent --no-pager | grep -c "Docker installed"']);
    expect(journal.stdout.trim()).to.equal('1');
    await k8s.deleteAndWait(ref('dc-onstock'));
  });
});
