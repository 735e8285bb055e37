// Stock and baked cloud images, end to end with instances that boot like VMs (containers with
// systemd, test/fakes/vm-host.ts): the real operator creates them through the real GCE client
// (against our GCE fake) and through moto (whose instances our companion boots), their startup
// script downloads the agent bundle from the real gateway and checks its sha256, installs a systemd
// unit, and the operator enrols each VM over the agent port. Then: `ssh … id` through the gateway
// is `gitspace`, not root; the agent's files are closed to that user; no secret is in metadata or
// UserData; stop/start resumes the same disk and agent on both clouds (EC2 runs UserData only on
// the first boot); a guessed or replayed claim from another instance is refused; a bad bundle or
// an image without curl fails the Gitspace with a reason that says so.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateSecurityGroupCommand, CreateSubnetCommand, CreateVpcCommand, DescribeImagesCommand, DescribeInstanceAttributeCommand } from '@aws-sdk/client-ec2';
import { AGENT_HTTP_PORT, CLAIM_PATH, LABELS, type BootFacts, type Gitspace, type GitspaceInfra } from '../../src/api/index.ts';
import { enrolmentToken, sha256hex } from '../../src/controllers/enrolment.ts';
import { createOperator, type Operator } from '../../src/controllers/operator.ts';
import { Gateway } from '../../src/gateway/server.ts';
import { AwsProvider } from '../../src/providers/aws/provider.ts';
import { gceLabelKey } from '../../src/providers/gcp/labels.ts';
import type { GcpProvider } from '../../src/providers/gcp/provider.ts';
import type { VmProvider } from '../../src/providers/types.ts';
import { KubeClient } from '../../src/runtime/kube.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { agentBundleOption } from '../../src/cli/operator.ts';
import { testCluster } from '../cluster/current.ts';
import type { GceFake } from '../fakes/gce/server.ts';
import { Ec2Vms } from '../fakes/ec2-vms.ts';
import type { ContainerVms } from '../fakes/vm-host.ts';
import { sharedDocker, type Docker } from '../support/docker.ts';
import { makeRepo, makeSshKeyFile, sshViaGateway, type SshKey } from '../support/fixtures.ts';
import { BAKED_TAG, gceOnContainers, gcpProviderSpec, instanceVms, STOCK_TAG, vmImages } from '../support/gce-vms.ts';
import { serveRepoPrivately, type GitHttpServer } from '../support/git-http.ts';
import { k8s } from '../support/gitspaces.ts';
import { TestIssuer } from '../support/issuer.ts';
import { motoPeer, type MotoPeer } from '../support/moto.ts';
import type { Manifest } from '../support/resources.ts';
import { hopTokenOf } from '../support/hop.ts';
import { eventually } from '../support/wait.ts';

const PROJECT = 'acme-vms';
const ZONE = 'europe-west1-b';
const STOCK_IMAGE = `projects/${PROJECT}/global/images/debian-12`;
const BAKED_IMAGE = `projects/${PROJECT}/global/images/gitspaces-baked`;
const NOCURL_IMAGE = `projects/${PROJECT}/global/images/debian-12-minimal`;
const NOCURL_TAG = 'gitspaces-test/debian-12:no-curl';
/** Two Docker networks, one per cloud; each network's gateway address is this host. */
const GCE_NET = { name: 'gs-test-gce', prefix: '172.28', host: '172.28.0.1' };
const EC2_NET = { name: 'gs-test-ec2', prefix: '172.29', host: '172.29.0.1' };
const NS = 'default';
const OWNER = 'dev@example.com';
const GIT_USER = 'bot';
const GIT_TOKEN = 'git-token-that-must-not-leak-7f3a';

/** The boot facts a startup script carries (base64 between its GITSPACES_BOOT markers). */
function bootFactsIn(text: string): BootFacts {
  const b64 = /GITSPACES_BOOT'(?:\\n|\n)([\s\S]*?)(?:\\n|\n)GITSPACES_BOOT/.exec(text)?.[1] ?? '';
  return JSON.parse(Buffer.from(b64.replace(/\\n|\n/g, ''), 'base64').toString('utf8')) as BootFacts;
}

describe('stock and baked cloud images: the agent installs itself, enrols, and runs the developer as gitspace', function () {
  this.timeout(20 * 60_000);
  let work: string;
  let docker: Docker;
  let vms: ContainerVms;
  let gce: GceFake;
  let gcp: GcpProvider;
  let peer: MotoPeer;
  let aws: AwsProvider;
  let companion: Ec2Vms;
  let ami: string;
  let issuer: TestIssuer;
  let gw: Gateway;
  let git: GitHttpServer;
  let badBundles: Server;
  let op: Operator;
  let key: SshKey;
  let keyFile: string;
  const prefix = `gst${String(process.pid)}`;

  const infra = (name: string, provider: Record<string, unknown>, image: string, bundleHost: string, bundleBase?: string): Manifest => ({
    apiVersion: 'gitspaces.dev/v1alpha1',
    kind: 'GitspaceInfra',
    metadata: { name },
    spec: {
      provider,
      image,
      machineTypes: [{ name: 'small', providerType: provider.gcp ? 'e2-standard-2' : 't3.medium', diskSizeGB: 20 }],
      allowedNamespaces: {}, gateway: { domain: 'gitspaces.test', egressRanges: ['172.16.0.0/12'] },
      auth: { issuer: issuer.url, audience: issuer.audience },
      vm: { agentBundleBaseURL: bundleBase ?? `http://${bundleHost}:${String(gw.port)}/.gitspaces/agent` },
    },
  });

  const gitspace = (name: string, infraName: string, ide = 'ssh'): Manifest => ({
    apiVersion: 'gitspaces.dev/v1alpha1',
    kind: 'Gitspace',
    metadata: { name, namespace: NS },
    spec: {
      infraRef: { name: infraName },
      owner: OWNER,
      repository: { url: git.url.replace('0.0.0.0', infraName.startsWith('ec2') ? EC2_NET.host : GCE_NET.host), credentialsSecretRef: { name: 'git-creds' } },
      ide: { type: ide },
      machineType: 'small',
      sshPublicKeys: [key.publicLine],
      idleTimeout: '0',
    },
  });

  /** `ssh gitspace@<host> <command>` through the gateway, as the owner. */
  const ssh = async (name: string, command: string) =>
    sshViaGateway({ gateway: `http://127.0.0.1:${String(gw.port)}`, host: `${name}--${NS}.gitspaces.test`, keyFile, token: await issuer.token(OWNER), command });

  const get = async (name: string) => (await testCluster().request('GET', `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces/${name}`)).json as Gitspace;

  async function waitPhase(name: string, phase: string, ms: number): Promise<Gitspace> {
    let last: Gitspace | undefined;
    return eventually(() => `${name} to be ${phase} (is ${last?.status?.phase ?? '-'}: ${last?.status?.message ?? ''})`, ms, async () => {
      const g = (last = await get(name));
      if (phase !== 'Failed' && g.status?.phase === 'Failed') throw new Error(`${name} failed: ${g.status.message ?? ''}`);
      return g.status?.phase === phase ? g : undefined;
    }, 500);
  }

  const setState = (name: string, state: string) => k8s.patch({ apiVersion: 'gitspaces.dev/v1alpha1', kind: 'Gitspace', metadata: { name, namespace: NS } }, { spec: { state } });

  /** The Gitspace's hop token, derived from the hop key in the operator's namespace. */
  const hopSecret = async (name: string): Promise<string> => hopTokenOf(await get(name), NS);

  async function enrolmentKey(): Promise<string> {
    const s = await testCluster().request('GET', `/api/v1/namespaces/${NS}/secrets/gitspaces-enrolment`);
    return Buffer.from((s.json as { data: { key: string } }).data.key, 'base64').toString('utf8');
  }

  const gceVm = (g: Gitspace) => gce.instances.get(`${ZONE}/${g.status?.instance?.name ?? ''}`);
  const gceContainer = (g: Gitspace) => `${prefix}-gce-${g.status?.instance?.name ?? ''}`;

  before(async function () {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-images-'));
    ({ key, keyFile } = makeSshKeyFile(work));
    docker = await sharedDocker();
    vms = await instanceVms(docker, prefix, [GCE_NET, EC2_NET]);
    // The images: stock (built once from Debian packages, cached), baked with the same bundle the
    // gateway serves (images/bake.sh, as Packer runs it), and stock without curl.
    const { bundle } = await vmImages(docker);
    // Stock less curl (two seconds; made anew each run, from the current stock image).
    await docker.run(['rm', '-f', `${prefix}-nocurl`]).catch(() => undefined);
    await docker.run(['run', '--name', `${prefix}-nocurl`, STOCK_TAG, '/bin/rm', '-f', '/usr/bin/curl']);
    await docker.run(['commit', '--change', 'CMD ["/sbin/init"]', `${prefix}-nocurl`, NOCURL_TAG]);
    await docker.run(['rm', '-f', `${prefix}-nocurl`]);

    issuer = await TestIssuer.start();
    // Listens on every address: the instances reach it at their network's gateway address.
    gw = new Gateway({ client: new KubeClient(testCluster().access()), log: createLogger({ component: 'gateway' }, 'error'), audit: () => undefined, port: 0, address: '0.0.0.0', agentBundles: bundle.dir, jwksCooldownMs: 0, authFailureBurst: 1_000, drainDelayMs: 0 });
    await gw.start();
    git = await serveRepoPrivately(makeRepo(work), work, GIT_USER, GIT_TOKEN, '0.0.0.0');
    // A "mirror" that serves something else under the bundle's name: the sha256 check must catch it.
    badBundles = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/gzip' });
      res.end('this is not the agent bundle');
    });
    await new Promise<void>((r) => badBundles.listen(0, '0.0.0.0', r));

    ({ gce, gcp } = await gceOnContainers({
      project: PROJECT, zone: ZONE, vms, net: GCE_NET, namePrefix: `${prefix}-gce`,
      images: { [STOCK_IMAGE]: STOCK_TAG, [BAKED_IMAGE]: BAKED_TAG, [NOCURL_IMAGE]: NOCURL_TAG },
    }));

    // moto's VPC is the EC2 network's range, so its private addresses are the containers'.
    peer = await motoPeer(93, ['eu-west-1a']);
    const vpc = (await peer.ec2.send(new CreateVpcCommand({ CidrBlock: `${EC2_NET.prefix}.0.0/16` }))).Vpc?.VpcId ?? '';
    const subnet = (await peer.ec2.send(new CreateSubnetCommand({ VpcId: vpc, CidrBlock: `${EC2_NET.prefix}.1.0/24`, AvailabilityZone: 'eu-west-1a' }))).Subnet?.SubnetId ?? '';
    const sg = (await peer.ec2.send(new CreateSecurityGroupCommand({ GroupName: `${prefix}-vms`, Description: 'agent port from the gateway only', VpcId: vpc }))).GroupId ?? '';
    ami = ((await peer.ec2.send(new DescribeImagesCommand({ Owners: ['amazon'] }))).Images ?? []).find((i) => /^ami-[0-9a-f]+$/.test(i.ImageId ?? ''))?.ImageId ?? '';
    companion = new Ec2Vms({ ec2: peer.ec2, vms, network: EC2_NET.name, images: { [ami]: STOCK_TAG }, namePrefix: `${prefix}-ec2` });
    companion.start(peer.proxy);
    aws = new AwsProvider({ region: 'eu-west-1', subnets: [{ zone: 'eu-west-1a', subnetId: subnet }], securityGroupIds: [sg], agentPort: AGENT_HTTP_PORT, client: { endpoint: peer.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } } });

    const providers: Record<string, VmProvider> = { 'gce-stock': gcp, 'gce-baked': gcp, 'gce-badbundle': gcp, 'gce-nocurl': gcp, 'ec2-stock': aws };
    op = createOperator({
      client: new KubeClient(testCluster().access()),
      log: createLogger({ component: 'operator' }, 'error'),
      providerFor: (i: GitspaceInfra) => providers[i.metadata.name ?? ''] ?? gcp,
      namespace: NS,
      sweep: false,
      ...agentBundleOption(bundle.dir),
    });
    await op.manager.start();
    await testCluster().request('POST', `/api/v1/namespaces/${NS}/secrets`, { body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'git-creds' }, type: 'gitspaces.dev/git-credentials', stringData: { username: GIT_USER, password: GIT_TOKEN } } });
    await k8s.apply(infra('gce-stock', gcpProviderSpec(PROJECT, ZONE), STOCK_IMAGE, GCE_NET.host));
    await k8s.apply(infra('gce-baked', gcpProviderSpec(PROJECT, ZONE), BAKED_IMAGE, GCE_NET.host));
    await k8s.apply(infra('gce-badbundle', gcpProviderSpec(PROJECT, ZONE), STOCK_IMAGE, GCE_NET.host, `http://${GCE_NET.host}:${String((badBundles.address() as { port: number }).port)}/mirror`));
    await k8s.apply(infra('gce-nocurl', gcpProviderSpec(PROJECT, ZONE), NOCURL_IMAGE, GCE_NET.host));
    await k8s.apply(infra('ec2-stock', { aws: { region: 'eu-west-1', subnets: [{ zone: 'eu-west-1a', subnetId: subnet }], securityGroupIds: [sg] } }, ami, EC2_NET.host));
  });

  after(async () => {
    try {
      for (const i of ['gce-stock', 'gce-baked', 'gce-badbundle', 'gce-nocurl', 'ec2-stock']) await k8s.cleanUpInfra(i).catch(() => undefined);
      await testCluster().request('DELETE', `/api/v1/namespaces/${NS}/secrets/git-creds`);
    } finally {
      await op.manager.stop();
      await gw.stop();
      await issuer.stop();
      await git.close();
      badBundles.close();
      await gce.stop();
      await gcp.close();
      await companion.removeAll();
      await peer.stop();
      await vms.removeAll(`${prefix}-`);
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('GCE, stock Debian image: the bundle comes from the gateway (sha256 checked), the VM is enrolled, ssh runs as gitspace, and no secret is in metadata', async () => {
    await k8s.apply(gitspace('stock-gce', 'gce-stock'));
    const g = await waitPhase('stock-gce', 'Running', 5 * 60_000);
    const vm = gceVm(g)!;
    const serial = await vms.console(gceContainer(g));
    expect(serial).to.match(/gitspaces-boot: downloading the agent bundle from http:\/\/172\.28\.0\.1:\d+\/\.gitspaces\/agent\/[^ ]+linux-x64\.tar\.gz/);
    expect(serial).to.include('gitspaces-boot: agent unit gitspaces-agent.service runs');

    // Through the gateway, as a desktop IDE's terminal: not root.
    const r = await ssh('stock-gce', 'id; ps -o user= -p $$; pwd; git -C . log --oneline | head -1; stat -c "%U %a" ~/.git-credentials');
    expect(r.code, r.err).to.equal(0);
    expect(r.out).to.match(/^uid=1000\(gitspace\) gid=1000\(gitspace\)/);
    expect(r.out).to.include('\ngitspace\n').and.include('/home/gitspace/private\n').and.include('gitspace 600');
    // On the instance: the agent is root, the user's processes are not; its files are closed to the user.
    const ps = await vms.exec(gceContainer(g), ['ps', '-eo', 'user:20,args']);
    expect(ps.stdout).to.match(/^root +\/opt\/gitspaces\/[^ ]+\/bin\/node .*main\.js --root \/var\/lib\/gitspaces$/m);
    const asUser = await vms.exec(gceContainer(g), ['cat', '/var/lib/gitspaces/agent.json'], { user: 'gitspace' });
    expect(asUser.code).to.not.equal(0);
    expect(asUser.stderr).to.include('Permission denied');
    const sudo = await vms.exec(gceContainer(g), ['sudo', '-n', 'true'], { user: 'gitspace' });
    expect(sudo.code, 'sudo is on by default').to.equal(0);

    // Metadata holds boot facts only: not the hop secret, the git token, or the enrolment token
    // (whose hash it carries), as read back through the fake's API.
    const startup = JSON.stringify(vm.body.metadata);
    const nonce = vm.labels[gceLabelKey(LABELS.enrolment)] ?? '';
    const token = enrolmentToken(await enrolmentKey(), vm.name, nonce);
    expect(bootFactsIn(startup)).to.include({ instance: vm.name, enrolmentSha256: sha256hex(token) });
    for (const secret of [await hopSecret('stock-gce'), GIT_TOKEN, token, await enrolmentKey()]) expect(startup).to.not.include(secret);
    expect(await k8s.eventReasons(g)).to.include.members(['AgentEnrolled', 'IDEReady']);
  });

  it('GCE: another instance cannot claim a claimed VM with a guessed or replayed token, and the victim keeps working', async () => {
    const g = await get('stock-gce');
    const vm = gceVm(g)!;
    const token = enrolmentToken(await enrolmentKey(), vm.name, vm.labels[gceLabelKey(LABELS.enrolment)] ?? '');
    await k8s.apply(gitspace('attacker', 'gce-stock'));
    const a = await waitPhase('attacker', 'Running', 5 * 60_000);
    const claim = (t: string) => vms.exec(gceContainer(a), ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST', '-H', `authorization: Bearer ${t}`, '-H', 'content-type: application/json', '--data', '{"secret":"0123456789abcdef0123","gitspace":{"uid":"evil"}}', `http://${vm.networkIP}:${String(AGENT_HTTP_PORT)}${CLAIM_PATH}`]);
    expect((await claim('guessed-token')).stdout).to.equal('409');
    expect((await claim(token)).stdout).to.equal('409');
    // The attacker's own spent token does not open another VM either: it is bound to its name and nonce.
    const av = gceVm(a)!;
    const own = enrolmentToken(await enrolmentKey(), av.name, av.labels[gceLabelKey(LABELS.enrolment)] ?? '');
    expect(own).to.not.equal(token);
    // The victim is unchanged.
    const r = await ssh('stock-gce', 'id -un');
    expect(r.out.trim(), r.err).to.equal('gitspace');
    expect((await get('stock-gce')).status?.phase).to.equal('Running');
    await testCluster().request('DELETE', `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces/attacker`);
  });

  it('GCE: Stopped → Running resumes the same instance, disk and agent (the unit runs it again)', async () => {
    const before = await get('stock-gce');
    expect((await ssh('stock-gce', 'echo kept > ~/work.txt')).code).to.equal(0);
    await setState('stock-gce', 'Stopped');
    await waitPhase('stock-gce', 'Stopped', 3 * 60_000);
    expect(await vms.state(gceContainer(before))).to.equal('exited');
    await setState('stock-gce', 'Running');
    const after = await waitPhase('stock-gce', 'Running', 5 * 60_000);
    expect(after.status?.instance).to.include({ id: before.status?.instance?.id, name: before.status?.instance?.name });
    const r = await ssh('stock-gce', 'cat ~/work.txt; id -un');
    expect(r.out, r.err).to.equal('kept\ngitspace\n');
    // The second boot found the bundle on the disk and did not download it again.
    expect((await vms.console(gceContainer(after))).match(/downloading the agent bundle/g)).to.have.length(1);
  });

  it('EC2 through moto, stock image: UserData runs once, and after Stopped → Running the agent is back from its systemd unit', async () => {
    await k8s.apply(gitspace('stock-ec2', 'ec2-stock'));
    const g = await waitPhase('stock-ec2', 'Running', 5 * 60_000);
    const id = g.status?.instance?.id ?? '';
    expect((await ssh('stock-ec2', 'id -un')).out.trim()).to.equal('gitspace');
    const userData = Buffer.from((await peer.ec2.send(new DescribeInstanceAttributeCommand({ InstanceId: id, Attribute: 'userData' }))).UserData?.Value ?? '', 'base64').toString('utf8');
    expect(userData).to.include('gitspaces-agent.service');
    expect(bootFactsIn(userData)).to.include({ instance: g.status?.instance?.name });
    const inst = await aws.find(g.status?.instance?.name ?? '');
    const token = enrolmentToken(await enrolmentKey(), inst?.name ?? '', inst?.labels[LABELS.enrolment] ?? '');
    expect(bootFactsIn(userData)).to.include({ enrolmentSha256: sha256hex(token) });
    for (const secret of [await hopSecret('stock-ec2'), GIT_TOKEN, token, await enrolmentKey()]) expect(userData).to.not.include(secret);

    await setState('stock-ec2', 'Stopped');
    await waitPhase('stock-ec2', 'Stopped', 3 * 60_000);
    await eventually('the EC2 container to shut down', 60_000, async () => (await vms.state(companion.name(id))) === 'exited');
    await setState('stock-ec2', 'Running');
    await waitPhase('stock-ec2', 'Running', 5 * 60_000);
    const r = await ssh('stock-ec2', 'id -un; cat /var/lib/fake-cloud/boots 2>/dev/null || sudo cat /var/lib/fake-cloud/boots');
    expect(r.out, r.err).to.equal('gitspace\n2\n');
    // cloud-init ran the UserData on the first boot only: the agent came back through systemd.
    expect((await vms.console(companion.name(id))).match(/gitspaces-boot: agent unit/g)).to.have.length(1);
  });

  it('GCE, baked image: nothing is downloaded, and code-server runs as gitspace behind the agent', async () => {
    await k8s.apply(gitspace('baked-gce', 'gce-baked', 'vscode-web'));
    const g = await waitPhase('baked-gce', 'Running', 5 * 60_000);
    const serial = await vms.console(gceContainer(g));
    expect(serial).to.not.include('downloading the agent bundle');
    expect(serial).to.include('gitspaces-boot: agent unit');
    const ps = await vms.exec(gceContainer(g), ['ps', '-eo', 'user:20,args']);
    expect(ps.stdout).to.match(/^gitspace +\S*node \S*code-server/m);
    expect(ps.stdout).to.not.match(/^root +\S*node \S*code-server/m);
    expect(g.status?.conditions?.find((c) => c.type === 'IDEReady')?.status).to.equal('True');
  });

  it('a bundle whose sha256 does not match fails the Gitspace with AgentInstallFailed naming the URL and the expected hash', async () => {
    await k8s.apply(gitspace('bad-bundle', 'gce-badbundle'));
    const g = await waitPhase('bad-bundle', 'Failed', 4 * 60_000);
    expect(g.status?.conditions?.find((c) => c.type === 'Ready')).to.include({ reason: 'AgentInstallFailed' });
    expect(g.status?.message).to.match(/the agent bundle from http:\/\/172\.28\.0\.1:\d+\/mirror\/[^ ]+ has sha256 [0-9a-f]{64}, expected [0-9a-f]{64}/);
  });

  it('an image without curl fails the Gitspace with ImageUnsupported naming what is missing', async () => {
    await k8s.apply(gitspace('no-curl', 'gce-nocurl'));
    const g = await waitPhase('no-curl', 'Failed', 4 * 60_000);
    expect(g.status?.conditions?.find((c) => c.type === 'Ready')).to.include({ reason: 'ImageUnsupported' });
    expect(g.status?.message).to.include('the image lacks: curl');
  });
});
