// The GCE rows of `npm run bench:start`: apply a Gitspace → usable IDE with instances that boot like
// VMs (containers with systemd as PID 1, test/fakes/vm-host.ts) created by the real operator
// through the real GCE client against our GCE fake, their startup script fetching the agent bundle
// from the real gateway (or finding it baked in), the operator enrolling the agent, and Chromium
// loading the workbench through that gateway. The setup is cloud-images.test.ts's
// (test/support/gce-vms.ts), on a control plane, Docker network and container names of its own.
// Five kinds, each with its phases:
//  - stock cold start: stock Debian 12 (no code-server, so `ide: ssh`), bundle downloaded at boot;
//  - baked cold start: the baked image (bundle and code-server in it), `ide: vscode-web`;
//  - pool claim: the baked image, an infra with a warm pool of one VM, booted before the apply;
//  - dev container cold start: the image baked with Docker, a repository whose Dockerfile builds
//    FROM an image in a registry on this host: `devcontainer up` pulls it, then builds (`ide: ssh`);
//  - dev container pool claim: the same, from a warm pool whose VM pulled that image while it waited
//    (prePullImages).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { AGENT_HTTP_PORT, HOP_KEY_FIELD, HOP_KEY_SECRET, hopToken, LABELS, SECRET_HEADER, type AgentHealth, type Gitspace } from '../src/api/index.ts';
import { agentBundleOption } from '../src/cli/operator.ts';
import { createOperator, type Operator } from '../src/controllers/operator.ts';
import { Gateway } from '../src/gateway/server.ts';
import { gceLabelKey } from '../src/providers/gcp/labels.ts';
import type { GcpProvider } from '../src/providers/gcp/provider.ts';
import { KubeClient } from '../src/runtime/kube.ts';
import { createLogger } from '../src/runtime/log.ts';
import { TestCluster } from '../test/cluster/cluster.ts';
import type { GceFake } from '../test/fakes/gce/server.ts';
import { ContainerVms, VM_LABEL } from '../test/fakes/vm-host.ts';
import { sharedDocker, type Docker } from '../test/support/docker.ts';
import { makeDevcontainerRepo, makeRepo } from '../test/support/fixtures.ts';
import { dockerBakedImage, gceOnContainers, gcpProviderSpec, STOCK_TAG, vmImages, type VmNetwork } from '../test/support/gce-vms.ts';
import { imageTrusting, pushImage, startRegistry, type TestRegistry } from '../test/support/registry.ts';
import { serveRepoPrivately, type GitHttpServer } from '../test/support/git-http.ts';
import type { TestIssuer } from '../test/support/issuer.ts';

/** Our own network (172.27–172.30 belong to tests on the same dockerd); its gateway address is this machine. */
const NET: VmNetwork = { name: 'gs-bench-gce', prefix: '172.31', host: '172.31.0.1' };
/** Every container this bench makes is named `<PREFIX>-<instance name>`. */
const PREFIX = 'gsbench-gce';
const PROJECT = 'bench-vms';
const ZONE = 'europe-west1-b';
const STOCK_IMAGE = `projects/${PROJECT}/global/images/debian-12`;
const BAKED_IMAGE = `projects/${PROJECT}/global/images/gitspaces-baked`;
const DOCKER_IMAGE = `projects/${PROJECT}/global/images/gitspaces-docker`;
const DOCKER_TAG = 'gitspaces-test/debian-12:bench-docker';
/** Chromium resolves *.localhost to loopback, where the gateway listens (on every address). */
const DOMAIN = 'gitspaces.localhost';
const NS = 'default';
const GIT_USER = 'bot';
const GIT_TOKEN = 'bench-git-token';
const START_TIMEOUT_MS = 5 * 60_000;

export const GCE_KINDS = ['stock cold start', 'baked cold start', 'pool claim', 'dev container cold start', 'dev container pool claim'] as const;
export type GceKind = (typeof GCE_KINDS)[number];
const KIND: Record<GceKind, { infra: string; ide: 'ssh' | 'vscode-web'; devcontainer?: true }> = {
  'stock cold start': { infra: 'gce-stock', ide: 'ssh' },
  'baked cold start': { infra: 'gce-baked', ide: 'vscode-web' },
  'pool claim': { infra: 'gce-pool', ide: 'vscode-web' },
  'dev container cold start': { infra: 'gce-dc', ide: 'ssh', devcontainer: true },
  'dev container pool claim': { infra: 'gce-dc-pool', ide: 'ssh', devcontainer: true },
};
const POOLS = [KIND['pool claim'].infra, KIND['dev container pool claim'].infra];

/** Milliseconds after the apply; NaN when it does not apply (no workbench for ssh, or before the apply for a pool VM). */
export interface GcePhases {
  /** The cloud's creationTimestamp (status.instance.createdAt): when the insert reached the fake. */
  inserted: number;
  created: number;
  booted: number;
  agentUp: number;
  claimed: number;
  clone: number;
  /** The agent's container step (`devcontainer up`) finished. */
  container: number;
  ideReady: number;
  workbench: number;
}

export interface GceRow { kind: GceKind; p: GcePhases; pooled: boolean }

export interface GceOptions {
  rounds: number;
  browser: Browser;
  issuer: TestIssuer;
  owner: string;
  sshPublicKey: string;
  say: (line: string) => void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const conditionTrue = (g: Gitspace, type: string) => g.status?.conditions?.find((c) => c.type === type)?.status === 'True';

/**
 * The serial console's times (this machine's clock: containers share it): when the fake cloud
 * guest started the payload on the last boot, and when the startup script, having started the
 * agent's unit (`gitspaces-boot: agent unit … runs`), exited — the guest's footer right after
 * that line carries the time the line itself does not.
 */
export function consoleTimes(serial: string): { booted: number; agentUp: number } {
  const lines = serial.split('\n');
  const stamp = (l: string | undefined, what: RegExp) => {
    const m = l === undefined ? null : new RegExp(`^\\[(\\S+)\\] fake-cloud\\(gce\\): ${what.source}`).exec(l);
    return m?.[1] ? Date.parse(m[1]) : NaN;
  };
  let boot = -1;
  lines.forEach((l, i) => {
    if (!Number.isNaN(stamp(l, /boot \d+ of instance \S*: running user-data/))) boot = i;
  });
  if (boot < 0) return { booted: NaN, agentUp: NaN };
  const unit = lines.findIndex((l, i) => i > boot && /^gitspaces-boot: agent unit \S+ runs /.test(l));
  const footer = unit < 0 ? undefined : lines.slice(unit + 1).find((l) => !Number.isNaN(stamp(l, /user-data exited with code 0/)));
  return { booted: stamp(lines[boot], /boot/), agentUp: stamp(footer, /user-data exited/) };
}

/**
 * Runs the GCE rows: `rounds` of each kind. Everything it makes (its containers, its network, its
 * control plane) is gone when it returns or throws; a process exit on a signal still removes the
 * containers.
 */
export async function gceBench(o: GceOptions): Promise<{ rows: GceRow[]; floors: number[] }> {
  let dockerHost: string | undefined;
  // Registered before the dockerd is (sharedDocker), so it runs first at exit, while the daemon answers.
  const removeOnExit = () => {
    if (!dockerHost) return;
    spawnSync('bash', ['-c', `docker ps -a --filter label=${VM_LABEL} --format '{{.Names}}' | grep '^${PREFIX}-' | xargs -r docker rm -f -v`], {
      env: { ...process.env, DOCKER_HOST: dockerHost }, stdio: 'ignore', timeout: 120_000,
    });
  };
  process.on('exit', removeOnExit);
  const work = mkdtempSync(join(tmpdir(), 'gitspaces-bench-gce-'));
  let docker: Docker | undefined;
  let vms: ContainerVms | undefined;
  let cluster: TestCluster | undefined;
  let gw: Gateway | undefined;
  let git: GitHttpServer | undefined;
  let dcGit: GitHttpServer | undefined;
  let registry: TestRegistry | undefined;
  let gce: GceFake | undefined;
  let gcp: GcpProvider | undefined;
  let op: Operator | undefined;
  try {
    docker = await sharedDocker();
    dockerHost = docker.host;
    const machines = (vms = new ContainerVms(docker));
    await vms.removeAll(`${PREFIX}-`); // a killed run's
    await docker.network(NET.name, `${NET.prefix}.0.0/16`, NET.host);
    o.say('GCE fake: the agent bundle and the stock and baked Debian 12 images (built once, cached)');
    const images = await vmImages(docker);
    // The dev container kinds: a registry on this host holding their base image, and the image baked
    // with Docker, told to trust that registry.
    const reg = (registry = await startRegistry(join(work, 'registry')));
    const baseImage = `${NET.host}:${String(reg.port)}/dev/base:1`;
    await pushImage(docker, STOCK_TAG, reg, 'dev/base:1');
    await imageTrusting(docker, await dockerBakedImage(docker, join(images.bundle.dir, images.bundle.manifest.files.x64?.file ?? '')), `${NET.host}:${String(reg.port)}`, DOCKER_TAG);
    const c = (cluster = await TestCluster.start());
    const client = new KubeClient(c.access());
    const gateway = (gw = new Gateway({ client, log: createLogger({ component: 'gateway' }, 'error'), port: 0, address: '0.0.0.0', agentBundles: images.bundle.dir, jwksCooldownMs: 0, drainDelayMs: 0 }));
    await gw.start();
    const repo = (git = await serveRepoPrivately(makeRepo(work), work, GIT_USER, GIT_TOKEN, '0.0.0.0'));
    const dcRepo = (dcGit = await serveRepoPrivately(makeDevcontainerRepo(join(work, 'dc'), baseImage), join(work, 'dc'), GIT_USER, GIT_TOKEN, '0.0.0.0'));
    const fake = await gceOnContainers({ project: PROJECT, zone: ZONE, vms, net: NET, namePrefix: PREFIX, images: { [STOCK_IMAGE]: images.stock, [BAKED_IMAGE]: images.baked, [DOCKER_IMAGE]: DOCKER_TAG } });
    ({ gce, gcp } = fake);
    op = createOperator({ client, log: createLogger({ component: 'operator' }, 'error'), providerFor: () => fake.gcp, namespace: NS, sweep: false, ...agentBundleOption(images.bundle.dir) });
    await op.manager.start();

    const create = async (path: string, body: unknown) => {
      const r = await c.request('POST', path, { body });
      if (r.status !== 201) throw new Error(`POST ${path}: ${String(r.status)} ${r.body}`);
    };
    const infra = (name: string, image: string, pool: boolean, prePullImages?: string[]) => create('/apis/gitspaces.dev/v1alpha1/gitspaceinfras', {
      apiVersion: 'gitspaces.dev/v1alpha1', kind: 'GitspaceInfra', metadata: { name },
      spec: {
        provider: gcpProviderSpec(PROJECT, ZONE), image,
        machineTypes: [{ name: 'small', providerType: 'e2-standard-2', diskSizeGB: 20 }],
        allowedNamespaces: {}, gateway: { domain: DOMAIN, egressRanges: ['172.16.0.0/12'] },
        auth: { issuer: o.issuer.url, audience: o.issuer.audience },
        vm: { agentBundleBaseURL: `http://${NET.host}:${String(gateway.port)}/.gitspaces/agent` },
        ...(pool ? { pool: [{ machineType: 'small', zone: ZONE, minReady: 1, max: 1, ...(prePullImages ? { prePullImages } : {}) }] } : {}),
      },
    });
    await create(`/api/v1/namespaces/${NS}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'git-creds' }, type: 'gitspaces.dev/git-credentials', stringData: { username: GIT_USER, password: GIT_TOKEN } });
    await infra(KIND['stock cold start'].infra, STOCK_IMAGE, false);
    await infra(KIND['baked cold start'].infra, BAKED_IMAGE, false);
    await infra(KIND['pool claim'].infra, BAKED_IMAGE, true);
    await infra(KIND['dev container cold start'].infra, DOCKER_IMAGE, false);
    await infra(KIND['dev container pool claim'].infra, DOCKER_IMAGE, true, [baseImage]);

    const path = (name: string) => `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces/${name}`;
    const get = async (name: string) => (await c.request('GET', path(name))).json as Gitspace;

    /** Whether every ready VM of the dev container pool has pulled the base image. */
    const prePulled = async () => {
      for (const i of fake.gce.instances.values()) {
        if (i.labels[gceLabelKey(LABELS.infra)] !== KIND['dev container pool claim'].infra || !i.labels[gceLabelKey(LABELS.pool)]) continue;
        if ((await machines.exec(`${PREFIX}-${i.name}`, ['docker', 'image', 'inspect', baseImage]).catch(() => ({ code: 1 }))).code !== 0) return false;
      }
      return true;
    };

    /** Until every infra is Ready and each pool holds a booted VM (with its images): so nothing else boots while we measure. */
    const quiet = async () => {
      const deadline = Date.now() + START_TIMEOUT_MS;
      for (;;) {
        const items = ((await c.request('GET', '/apis/gitspaces.dev/v1alpha1/gitspaceinfras')).json as { items: { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[]; pool?: { ready?: number; provisioning?: number }[] } }[] }).items;
        const ready = items.every((i) => i.status?.conditions?.find((x) => x.type === 'Ready')?.status === 'True');
        const pools = POOLS.map((n) => items.find((i) => i.metadata.name === n)?.status?.pool?.[0]);
        if (ready && pools.every((p) => (p?.ready ?? 0) >= 1 && !p?.provisioning) && (await prePulled())) {
          await fake.gce.settled();
          return;
        }
        if (Date.now() > deadline) throw new Error(`the infras or the warm pool not ready after ${String(START_TIMEOUT_MS / 1000)} s: ${JSON.stringify(items.map((i) => i.status))}`);
        await sleep(200);
      }
    };

    /** Loads the workbench in a fresh browser context and waits until the explorer lists the checkout. */
    const workbench = async (name: string) => {
      const context = await o.browser.newContext();
      try {
        const page = await context.newPage();
        await page.goto(`http://${name}--${NS}.${DOMAIN}:${String(gateway.port)}/?token=${await o.issuer.token(o.owner)}`);
        await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'README.md' }).first().waitFor({ timeout: 120_000 });
      } finally {
        await context.close();
      }
    };

    const agentHealth = async (g: Gitspace): Promise<AgentHealth> => {
      const key = (await c.request('GET', `/api/v1/namespaces/${NS}/secrets/${HOP_KEY_SECRET}`)).json as { data: Record<string, string> };
      const token = hopToken(Buffer.from(key.data[HOP_KEY_FIELD] ?? '', 'base64').toString('utf8'), g.metadata.uid ?? '');
      const r = await fetch(`http://${g.status?.instance?.privateIP ?? ''}:${String(AGENT_HTTP_PORT)}/healthz`, { headers: { [SECRET_HEADER]: token } });
      return (await r.json()) as AgentHealth;
    };

    /** The AgentEnrolled Event's time (the recorder writes it after the claim; give it a moment). */
    const enrolledAt = async (g: Gitspace): Promise<number> => {
      const sel = encodeURIComponent(`regarding.uid=${g.metadata.uid ?? ''}`);
      for (let i = 0; i < 50; i++) {
        const items = ((await c.request('GET', `/apis/events.k8s.io/v1/namespaces/${NS}/events?fieldSelector=${sel}`)).json as { items: { reason: string; eventTime?: string }[] }).items;
        const e = items.find((x) => x.reason === 'AgentEnrolled');
        if (e?.eventTime) return Date.parse(e.eventTime);
        await sleep(100);
      }
      return NaN;
    };

    const remove = async (name: string) => {
      await c.request('DELETE', path(name));
      for (let i = 0; i < 1_200 && (await c.request('GET', path(name))).status !== 404; i++) await sleep(100);
      await fake.gce.settled();
    };

    const start = async (kind: GceKind, name: string): Promise<GceRow> => {
      const { infra: infraName, ide, devcontainer } = KIND[kind];
      const appliedAt = Date.now(); // the VMs' clock is this machine's
      const since = (t: number) => t - appliedAt;
      await create(`/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces`, {
        apiVersion: 'gitspaces.dev/v1alpha1', kind: 'Gitspace', metadata: { name, namespace: NS },
        spec: {
          infraRef: { name: infraName }, owner: o.owner,
          repository: { url: (devcontainer ? dcRepo : repo).url.replace('0.0.0.0', NET.host), credentialsSecretRef: { name: 'git-creds' } },
          ide: { type: ide }, machineType: 'small', sshPublicKeys: [o.sshPublicKey], idleTimeout: '0',
        },
      });
      const p: GcePhases = { inserted: NaN, created: NaN, booted: NaN, agentUp: NaN, claimed: NaN, clone: NaN, container: NaN, ideReady: NaN, workbench: NaN };
      let g: Gitspace;
      for (;;) {
        g = await get(name);
        const t = since(Date.now());
        if (Number.isNaN(p.created) && g.status?.instance?.id) p.created = t;
        if (Number.isNaN(p.ideReady) && conditionTrue(g, 'IDEReady')) p.ideReady = t;
        if (g.status?.phase === 'Running' && !Number.isNaN(p.ideReady)) break;
        if (g.status?.phase === 'Failed') throw new Error(`${name} failed: ${g.status.message ?? ''}`);
        if (t > START_TIMEOUT_MS) throw new Error(`${name} not Running after ${String(START_TIMEOUT_MS / 1000)} s (${g.status?.phase ?? '-'}: ${g.status?.message ?? ''})`);
        await sleep(50);
      }
      if (ide === 'vscode-web') {
        await workbench(name);
        p.workbench = since(Date.now());
      }
      const pooled = Boolean(g.status?.instance?.pooled);
      const serial = consoleTimes(await machines.console(`${PREFIX}-${g.status?.instance?.name ?? ''}`));
      // A pool VM booted and started its agent before the apply: those phases are not this start's.
      if (!pooled) {
        p.inserted = since(Date.parse(g.status?.instance?.createdAt ?? ''));
        p.booted = since(serial.booted);
        p.agentUp = since(serial.agentUp);
      }
      p.claimed = since(await enrolledAt(g));
      const steps = (await agentHealth(g)).steps;
      const finished = (step: string) => {
        const at = steps.find((s) => s.name === step && s.status === 'done')?.finishedAt;
        return at ? since(Date.parse(at)) : NaN;
      };
      p.clone = finished('clone');
      if (devcontainer) p.container = finished('container');
      return { kind, p, pooled };
    };

    const rows: GceRow[] = [];
    const floors: number[] = [];
    for (let i = 0; i < o.rounds; i++) {
      for (const kind of GCE_KINDS) {
        await quiet();
        const name = `${KIND[kind].infra}-${String(i)}`;
        const row = await start(kind, name);
        rows.push(row);
        o.say(`  ${kind} ${String(i + 1)}/${String(o.rounds)}: ${row.pooled ? 'pooled VM, ' : ''}IDE ready after ${(row.p.ideReady / 1000).toFixed(1)} s`);
        if (kind === 'pool claim') {
          // The floor here: a fresh browser on a workbench already running in a VM, through the gateway.
          const f0 = performance.now();
          await workbench(name);
          floors.push(performance.now() - f0);
        }
        await remove(name);
      }
    }
    return { rows, floors };
  } finally {
    // The operator first (it would refill the pool), then the fake removes its instances.
    await op?.manager.stop().catch(() => undefined);
    await gw?.stop().catch(() => undefined);
    await git?.close().catch(() => undefined);
    await dcGit?.close().catch(() => undefined);
    await registry?.stop().catch(() => undefined);
    await docker?.exec(['rmi', DOCKER_TAG]).catch(() => undefined);
    await gce?.stop().catch(() => undefined);
    await gcp?.close().catch(() => undefined);
    await vms?.removeAll(`${PREFIX}-`).catch((e: unknown) => { o.say(`could not remove the bench's containers: ${String(e)}`); });
    await docker?.exec(['network', 'rm', NET.name]).catch(() => undefined);
    await cluster?.stop().catch(() => undefined);
    await docker?.stop().catch(() => undefined);
    process.removeListener('exit', removeOnExit);
    rmSync(work, { recursive: true, force: true });
  }
}
