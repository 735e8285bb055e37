// The Gitspace lifecycle end to end with the real operator process, the real API server and the
// local provider: apply → Running with the repository cloned and a working SSH login → Stopped →
// Running (the same instance, work kept) → delete → nothing left.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GitspaceInfra } from '../../src/api/index.ts';
import { testCluster } from '../cluster/current.ts';
import { makeRepo, makeSshKey, sshExec, type SshKey } from '../support/fixtures.ts';
import { serveRepoPrivately } from '../support/git-http.ts';
import { startOperator, type OperatorProcess } from '../support/operator.ts';
import { resourcePath, statusMessage } from '../support/resources.ts';
import { eventually, rejection } from '../support/wait.ts';
import { gitspaceManifest, infraManifest, k8s } from '../support/gitspaces.ts';
import { hopTokenOf } from '../support/hop.ts';

describe('Gitspace lifecycle (operator process, local provider)', function () {
  this.timeout(120_000);
  let work: string;
  let repo: string;
  let key: SshKey;
  let op: OperatorProcess;
  const infraName = 'lifecycle';

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-lifecycle-'));
    repo = makeRepo(work);
    key = makeSshKey();
    await k8s.apply(infraManifest(infraName, join(work, 'instances')));
    op = await startOperator({ kubeconfig: testCluster().kubeconfigPath, logDir: work });
  });

  after(async () => {
    try {
      await k8s.cleanUpInfra(infraName);
    } finally {
      await op.kill('SIGTERM');
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('goes Running with the repository cloned and an SSH login in the checkout, then stops, resumes and is deleted without leftovers', async () => {
    const m = gitspaceManifest('life', { infra: infraName, repo, key, ref: 'feature/x' });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 60_000);
    const st = running.status!;
    expect(st.observedGeneration).to.equal(running.metadata.generation);
    expect(st.conditions?.filter((c) => c.status === 'True').map((c) => c.type).sort()).to.deep.equal(['IDEReady', 'InstanceProvisioned', 'InstanceReady', 'Ready']);
    // The repository's devcontainer.json names an image; this "VM" has no container runtime: said so.
    expect(st.conditions?.find((c) => c.type === 'ContainerReady')).to.deep.include({ status: 'False', reason: 'NoContainerRuntime', message: 'devcontainer.json asks for a container and this VM has no container runtime: image not applied; the VM image is used' });
    expect(st.instance?.provider).to.equal('local');
    expect(st.instance?.name).to.equal(`gs-${running.metadata.uid ?? ''}`);
    expect(st.instance?.privateIP).to.match(/^127\.10\.\d+\.\d+$/);
    expect(st.route).to.include({ host: 'life--default.gitspaces.localhost', path: '/gitspaces/default/life/', upstream: `http://${st.instance?.privateIP ?? ''}:47100` });
    expect(st.urls?.ssh).to.include('life--default.gitspaces.localhost');
    const ip = st.instance!.privateIP!;

    // A real login: the shell starts in the checkout of the asked ref, with devcontainer env applied
    // and postCreateCommand run.
    const r = await sshExec(ip, 47122, key, 'pwd; git rev-parse --abbrev-ref HEAD; cat FEATURE.md; cat .post-create; echo "GREETING=$GREETING"; echo "TEAM=$TEAM"');
    expect(r.code, r.stderr).to.equal(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).to.match(/\/home\/repo$/);
    expect(lines.slice(1)).to.deep.equal(['feature/x', 'on the feature branch', 'created', 'GREETING=hello from devcontainer', 'TEAM=platform']);
    // With a PTY, as a terminal has.
    const tty = await sshExec(ip, 47122, key, 'tty; stty size', true);
    expect(tty.stdout).to.match(/\/dev\/pts\/\d+/);
    expect(tty.stdout).to.include('30 100');
    // The agent's HTTP port answers only with the Gitspace's hop token (derived from the hop key).
    const token = await hopTokenOf(running);
    expect((await fetch(`http://${ip}:47100/healthz`)).status).to.equal(401);
    expect((await fetch(`http://${ip}:47100/healthz`, { headers: { 'x-gitspaces-secret': 'wrong' } })).status).to.equal(401);
    const health = await fetch(`http://${ip}:47100/healthz`, { headers: { 'x-gitspaces-secret': token } });
    expect(health.status).to.equal(200);
    const h = (await health.json()) as { state: string; forwardPorts: number[]; devcontainer: { notApplied: string[]; containerBuild: string } };
    expect(h.state).to.equal('ready');
    expect(h.forwardPorts).to.deep.equal([3000, 8080]);
    expect(h.devcontainer).to.deep.include({ notApplied: ['image'], containerBuild: 'no-runtime' });
    // A wrong key is refused.
    expect((await rejection(sshExec(ip, 47122, makeSshKey(), 'true'))).message).to.match(/authentication/i);

    // Leave some work in the checkout, then stop: the process goes, the disk stays.
    expect((await sshExec(ip, 47122, key, 'echo unsaved-work > work.txt')).code).to.equal(0);
    const instDir = join(work, 'instances', st.instance!.name!);
    await k8s.patch(m, { spec: { state: 'Stopped' } });
    const stopped = await k8s.waitPhase(m, 'Stopped', 30_000);
    expect(stopped.status?.conditions?.find((c) => c.type === 'Ready')?.reason).to.equal('Stopped');
    expect(agentPids(instDir)).to.deep.equal([]);
    expect(existsSync(join(instDir, 'home/repo/work.txt'))).to.equal(true);
    await rejection(sshExec(ip, 47122, key, 'true'));

    // Running again resumes the same instance (same name and address) with the work still there.
    await k8s.patch(m, { spec: { state: 'Running' } });
    const resumed = await k8s.waitPhase(m, 'Running', 30_000);
    expect(resumed.status?.instance?.name).to.equal(st.instance?.name);
    expect(resumed.status?.instance?.privateIP).to.equal(ip);
    expect(readdirSync(join(work, 'instances'))).to.deep.equal([st.instance!.name!]);
    const again = await sshExec(ip, 47122, key, 'cat work.txt');
    expect(again.stdout.trim()).to.equal('unsaved-work');

    // Events mark the steps.
    const reasons = await k8s.eventReasons(running);
    expect(reasons).to.include.members(['InfraProvisioningStarted', 'InfraProvisioningCompleted', 'IDEReady', 'InstanceStopping', 'Stopped', 'InstanceStarting']);

    // Delete: the instance (processes, directory) goes before the Gitspace does. No Secret was made
    // for it in its namespace.
    expect((await testCluster().request('GET', '/api/v1/namespaces/default/secrets/life-gitspace-token')).status).to.equal(404);
    await k8s.deleteAndWait(m);
    expect(existsSync(instDir)).to.equal(false);
    expect(agentPids(instDir)).to.deep.equal([]);
  });

  it('clones a private repository with credentials from a Secret, which never reach the checkout or the logs', async () => {
    const token = `tok-${Date.now().toString(36)}-s3cret`;
    const server = await serveRepoPrivately(repo, work, 'x-oauth-basic', token);
    try {
      const m = gitspaceManifest('private', { infra: infraName, repo, key });
      (m.spec as { repository: object }).repository = { url: server.url, credentialsSecretRef: { name: 'git-creds' } };
      await k8s.apply(m);
      // No Secret yet: it waits and says which Secret it needs.
      const waiting = await k8s.waitFor(m, (g) => g.status?.conditions?.some((c) => c.reason === 'CredentialsSecretNotFound'), 20_000);
      expect(waiting.status?.message).to.include('spec.repository.credentialsSecretRef: Secret "git-creds" not found');
      // A Secret not made for Gitspaces (any Opaque Secret, a service-account token) is not read.
      const opaque = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'git-creds', namespace: 'default' }, stringData: { token } };
      expect((await testCluster().request('POST', '/api/v1/namespaces/default/secrets', { body: opaque })).status).to.equal(201);
      const refused = await k8s.waitFor(m, (g) => g.status?.conditions?.some((c) => c.reason === 'CredentialsSecretRefused'), 20_000);
      expect(refused.status?.message).to.equal('spec.repository.credentialsSecretRef: Secret "git-creds" has type "Opaque"; a Gitspace reads only Secrets of type gitspaces.dev/git-credentials');
      expect(server.authorised).to.equal(0);
      await testCluster().request('DELETE', '/api/v1/namespaces/default/secrets/git-creds');
      const secret = { ...opaque, type: 'gitspaces.dev/git-credentials' };
      await eventually('the Opaque Secret to be gone', 10_000, async () => (await testCluster().request('POST', '/api/v1/namespaces/default/secrets', { body: secret })).status === 201);
      const running = await k8s.waitPhase(m, 'Running', 60_000);
      expect(server.authorised).to.be.greaterThan(0);
      const ip = running.status!.instance!.privateIP!;
      const r = await sshExec(ip, 47122, key, 'cat README.md; git remote get-url origin; cat .git/config; git config --global credential.helper');
      expect(r.stdout).to.include('# sample');
      expect(r.stdout).to.include(server.url);
      expect(r.stdout, 'no token in the remote URL or .git/config').to.not.include(token);
      expect(r.stdout).to.include('store');
      const instDir = join(work, 'instances', running.status!.instance!.name!);
      expect(readFileSync(join(instDir, 'console.log'), 'utf8'), 'no token in the agent log').to.not.include(token);
      expect(readFileSync(op.log, 'utf8'), 'no token in the operator log').to.not.include(token);
      expect(execFileSync('ps', ['-eo', 'args='], { encoding: 'utf8' }), 'no token in the process list').to.not.include(token);
      await k8s.deleteAndWait(m);
      await testCluster().request('DELETE', '/api/v1/namespaces/default/secrets/git-creds');
    } finally {
      await server.close();
    }
  });

  it('serves /healthz, /readyz and controller-runtime metrics', async () => {
    for (const path of ['/healthz', '/readyz']) expect((await fetch(`http://127.0.0.1:${op.healthPort}${path}`)).status, path).to.equal(200);
    const text = await op.metrics();
    for (const name of [
      'controller_runtime_reconcile_total{controller="gitspace",result="success"}',
      'controller_runtime_reconcile_errors_total',
      'controller_runtime_reconcile_time_seconds_bucket',
      'workqueue_depth{name="gitspace"',
      'workqueue_adds_total{name="gitspace"',
      'workqueue_queue_duration_seconds_bucket',
      'workqueue_retries_total',
      'controller_runtime_max_concurrent_reconciles{controller="gitspace"} 4',
      'process_resident_memory_bytes',
    ]) expect(text, name).to.include(name);
    const successes = Number(/controller_runtime_reconcile_total\{controller="gitspace",result="success"\} (\d+)/.exec(text)?.[1]);
    expect(successes).to.be.greaterThan(0);
  });

  it('waits with a condition while its GitspaceInfra does not exist, and proceeds when it appears', async () => {
    const m = gitspaceManifest('early', { infra: 'late-infra', repo, key });
    await k8s.apply(m);
    const pending = await k8s.waitFor(m, (g) => g.status?.phase === 'Pending' && g.status.conditions?.some((c) => c.reason === 'InfraNotFound'), 20_000);
    expect(pending.status?.message).to.equal('GitspaceInfra "late-infra" does not exist; waiting for it');
    await k8s.apply(infraManifest('late-infra', join(work, 'late')));
    await k8s.waitPhase(m, 'Running', 60_000);
    await k8s.deleteAndWait(m);
    await k8s.deleteAndWait(infraManifest('late-infra', ''));
  });

  it('fails with a message naming the field when the machine type is not offered', async () => {
    const m = gitspaceManifest('bad-machine', { infra: infraName, repo, key, machineType: 'huge' });
    await k8s.apply(m);
    const failed = await k8s.waitPhase(m, 'Failed', 20_000);
    expect(failed.status?.message).to.equal('spec.machineType: "huge" is not offered by GitspaceInfra "lifecycle" (offered: small)');
    expect(failed.status?.conditions?.find((c) => c.type === 'Ready')).to.include({ status: 'False', reason: 'InvalidConfig' });
    await k8s.deleteAndWait(m);
  });

  it('fails with the failing step when the repository cannot be cloned', async () => {
    const m = gitspaceManifest('no-repo', { infra: infraName, repo: join(work, 'does-not-exist'), key });
    await k8s.apply(m);
    const failed = await k8s.waitPhase(m, 'Failed', 60_000);
    // git's first fatal line says why (its last line is advice).
    expect(failed.status?.message).to.match(/^set-up step clone: git clone file:\/\/.*does-not-exist failed: fatal: '.*does-not-exist' does not appear to be a git repository$/);
    await k8s.deleteAndWait(m);
  });

  it('reports infra conditions and Gitspace counts, and keeps an infra that is in use', async () => {
    const infra = await k8s.waitFor<GitspaceInfra>(infraManifest(infraName, ''), (i) => i.status?.provider === 'local' && i.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'), 20_000);
    expect(infra.status?.conditions?.map((c) => c.type).sort()).to.deep.equal(['CredentialsValid', 'GatewayReady', 'NetworkReady', 'PoolReady', 'Ready']);
    const m = gitspaceManifest('counted', { infra: infraName, repo, key });
    await k8s.apply(m);
    await k8s.waitPhase(m, 'Running', 60_000);
    await k8s.waitFor<GitspaceInfra>(infraManifest(infraName, ''), (i) => i.status?.gitspaces?.Running === 1, 10_000);
    // Deleting the infra while a Gitspace uses it: it stays (finalizer) and says why.
    const del = await testCluster().request('DELETE', resourcePath(infraManifest(infraName, ''), true));
    expect(del.status, statusMessage(del)).to.equal(200);
    const inUse = await k8s.waitFor<GitspaceInfra>(infraManifest(infraName, ''), (i) => i.status?.conditions?.some((c) => c.reason === 'InUse'), 10_000);
    expect(inUse.metadata.deletionTimestamp).to.be.a('string');
    await k8s.deleteAndWait(m);
    await eventually('the infra to be deleted once unused', 20_000, async () => (await testCluster().request('GET', resourcePath(infraManifest(infraName, ''), true))).status === 404);
    await k8s.apply(infraManifest(infraName, join(work, 'instances')));
  });
});

/** Agent processes whose command line names this instance directory. */
export function agentPids(instDir: string): number[] {
  const out = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes(instDir) && !l.includes('ps -eo')).map((l) => Number(l.trim().split(/\s+/)[0]));
}
