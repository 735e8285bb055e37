// Who may use an infra, against the real API server and operator process: a GitspaceInfra admits
// only the namespaces its spec.allowedNamespaces selects (none when unset), names that would make
// an over-long host are refused, a local infra is served only with --allow-local-provider, and
// GatewayReady reports the certificate the infra names and the gateway's own /readyz.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GitspaceInfra } from '../../src/api/index.ts';
import { Gateway } from '../../src/gateway/server.ts';
import { KubeClient } from '../../src/runtime/kube.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { testCluster } from '../cluster/current.ts';
import { makeRepo, makeSshKey, type SshKey } from '../support/fixtures.ts';
import { gitspaceManifest, infraManifest, k8s } from '../support/gitspaces.ts';
import { startOperator, type OperatorProcess } from '../support/operator.ts';
import { statusMessage } from '../support/resources.ts';

const condition = (o: { status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] } }, type: string) => o.status?.conditions?.find((c) => c.type === type);

async function ensureNamespace(name: string, labels: Record<string, string> = {}): Promise<void> {
  const r = await testCluster().request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } } });
  expect(r.status, statusMessage(r)).to.be.oneOf([201, 409]);
}

async function labelNamespace(name: string, labels: Record<string, string>): Promise<void> {
  const r = await testCluster().request('PATCH', `/api/v1/namespaces/${name}`, { body: { metadata: { labels } }, headers: { 'content-type': 'application/merge-patch+json' } });
  expect(r.status, statusMessage(r)).to.equal(200);
}

describe('tenancy: which namespaces may use an infra, names, the local provider, GatewayReady', function () {
  this.timeout(180_000);
  let work: string;
  let repo: string;
  let key: SshKey;

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-tenancy-'));
    repo = makeRepo(work);
    key = makeSshKey();
  });
  after(() => {
    rmSync(work, { recursive: true, force: true });
  });

  describe('with --allow-local-provider', () => {
    let op: OperatorProcess;
    const closed = 'tenancy-closed';
    const teams = 'tenancy-teams';
    before(async () => {
      const none = infraManifest(closed, join(work, 'closed'));
      delete (none.spec as { allowedNamespaces?: unknown }).allowedNamespaces;
      await k8s.apply(none);
      const selected = infraManifest(teams, join(work, 'teams'));
      (selected.spec as GitspaceInfra['spec']).allowedNamespaces = { matchExpressions: [{ key: 'team', operator: 'In', values: ['a', 'b'] }] };
      await k8s.apply(selected);
      await ensureNamespace('tenancy-a');
      op = await startOperator({ kubeconfig: testCluster().kubeconfigPath, logDir: work });
    });
    after(async () => {
      try {
        await k8s.cleanUpInfra(closed);
        await k8s.cleanUpInfra(teams);
      } finally {
        await op.kill('SIGTERM');
      }
    });

    it('an infra without allowedNamespaces admits no namespace: the Gitspace waits and no VM is made', async () => {
      const m = gitspaceManifest('shut', { infra: closed, repo, key });
      await k8s.apply(m);
      const g = await k8s.waitFor(m, (x) => condition(x, 'Ready')?.reason === 'NamespaceNotAllowed', 30_000);
      expect(g.status?.phase).to.equal('Pending');
      expect(g.status?.message).to.include(`GitspaceInfra "${closed}" admits no namespace: its spec.allowedNamespaces is unset`);
      expect(existsSync(join(work, 'closed')) ? readdirSync(join(work, 'closed')) : []).to.deep.equal([]);
      expect(await k8s.eventReasons(g)).to.include('NamespaceNotAllowed');
    });

    it('a namespace outside the selector waits; labelling it into the selector lets the Gitspace run', async () => {
      const m = gitspaceManifest('team-space', { infra: teams, repo, key, namespace: 'tenancy-a' });
      await k8s.apply(m);
      const waiting = await k8s.waitFor(m, (x) => condition(x, 'Ready')?.reason === 'NamespaceNotAllowed', 30_000);
      expect(waiting.status?.message).to.match(/namespace tenancy-a does not match GitspaceInfra "tenancy-teams" spec.allowedNamespaces/);
      expect(existsSync(join(work, 'teams')) ? readdirSync(join(work, 'teams')) : []).to.deep.equal([]);
      // The namespace's labels are watched: no change to the Gitspace is needed.
      await labelNamespace('tenancy-a', { team: 'b' });
      await k8s.waitPhase(m, 'Running', 90_000);
    });

    it('a name and namespace too long for a port host fail with the limit named', async () => {
      const ns = `tenancy-${'n'.repeat(42)}`; // 50 characters
      await ensureNamespace(ns, { team: 'a' });
      const m = gitspaceManifest('longer', { infra: teams, repo, key, namespace: ns });
      await k8s.apply(m);
      const g = await k8s.waitFor(m, (x) => x.status?.phase === 'Failed', 30_000);
      expect(condition(g, 'Ready')?.reason).to.equal('NameTooLong');
      expect(g.status?.message).to.include('have 56 characters, more than 54');
    });
  });

  describe('without --allow-local-provider', () => {
    let op: OperatorProcess;
    const infra = 'tenancy-local';
    before(async () => {
      await k8s.apply(infraManifest(infra, join(work, 'local')));
      op = await startOperator({ kubeconfig: testCluster().kubeconfigPath, logDir: work, allowLocal: false, name: 'operator-no-local' });
    });
    after(async () => {
      await op.kill('SIGTERM');
      // The cleanup needs an operator that may talk to the local provider.
      const cleaner = await startOperator({ kubeconfig: testCluster().kubeconfigPath, logDir: work });
      try {
        await k8s.cleanUpInfra(infra);
      } finally {
        await cleaner.kill('SIGTERM');
      }
    });

    it('a local infra is refused (its credentials condition and the Gitspace name the flag) and no process is started', async () => {
      const m = gitspaceManifest('nolocal', { infra, repo, key });
      await k8s.apply(m);
      // Refused by the provider factory (InvalidConfig, Failed) or, once the infra controller has
      // said so, by the infra's credentials condition (CredentialsInvalid, Pending): whichever is first.
      const g = await k8s.waitFor(m, (x) => ['CredentialsInvalid', 'InvalidConfig'].includes(condition(x, 'Ready')?.reason ?? ''), 30_000);
      expect(g.status?.message).to.include('this operator does not serve local infras').and.include('--allow-local-provider');
      const i = await k8s.waitFor<GitspaceInfra>(infraManifest(infra, ''), (x) => condition(x, 'CredentialsValid')?.status === 'False', 30_000);
      expect(condition(i, 'CredentialsValid')?.message).to.include('--allow-local-provider');
      expect(existsSync(join(work, 'local')) ? readdirSync(join(work, 'local')) : []).to.deep.equal([]);
    });
  });

  describe('an agent that dies while the Gitspace is starting', () => {
    let op: OperatorProcess;
    const infra = 'tenancy-exits';
    let slowRepo: string;
    before(async () => {
      // Setting up takes a while (postCreateCommand), so the agent can be killed while Starting.
      slowRepo = makeRepo(mkdtempSync(join(work, 'slow-')), '{ "postCreateCommand": "sleep 60" }');
      await k8s.apply(infraManifest(infra, join(work, 'exits')));
      op = await startOperator({ kubeconfig: testCluster().kubeconfigPath, logDir: work, name: 'operator-exits' });
    });
    after(async () => {
      try {
        await k8s.cleanUpInfra(infra);
      } finally {
        await op.kill('SIGTERM');
      }
    });

    it('fails the Gitspace with the agent\'s last line instead of starting it again', async () => {
      const m = gitspaceManifest('exits', { infra, repo: slowRepo, key });
      await k8s.apply(m);
      const starting = await k8s.waitFor(m, (x) => x.status?.phase === 'Starting' && condition(x, 'InstanceReady')?.status === 'True', 60_000);
      const dir = join(work, 'exits', starting.status?.instance?.name ?? '');
      const pid = Number(readFileSync(join(dir, 'agent.pid'), 'utf8'));
      process.kill(pid, 'SIGKILL');
      const g = await k8s.waitFor(m, (x) => x.status?.phase === 'Failed', 60_000);
      expect(condition(g, 'Ready')?.reason).to.equal('AgentExited');
      expect(g.status?.message).to.match(/^instance gs-[-0-9a-f]+: the agent was killed \(SIGKILL\); its last line: \S/);
      // Failed is where it stays: the agent is not started again (past the console's 10 s re-read).
      await new Promise((r) => setTimeout(r, 12_000));
      expect(readFileSync(join(dir, 'agent.pid'), 'utf8').trim()).to.equal(String(pid));
      expect((await k8s.get(m))?.status?.phase).to.equal('Failed');
    });
  });

  describe('GatewayReady', () => {
    let op: OperatorProcess;
    let gw: Gateway;
    let gwStopped = false;
    const infra = 'tenancy-tls';
    const domain = 'tls.example.com';
    const putTLSSecret = async (name: string, pair: { cert: string; key: string }) => {
      const body = { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: 'default' }, type: 'kubernetes.io/tls', data: { 'tls.crt': Buffer.from(pair.cert).toString('base64'), 'tls.key': Buffer.from(pair.key).toString('base64') } };
      const r = await testCluster().request('POST', '/api/v1/namespaces/default/secrets', { body });
      expect(r.status, statusMessage(r)).to.equal(201);
    };
    const selfSigned = (san: string): { cert: string; key: string } => {
      const dir = mkdtempSync(join(work, 'cert-'));
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=gitspaces', '-addext', `subjectAltName=${san}`, '-days', '30', '-keyout', join(dir, 'k'), '-out', join(dir, 'c')], { stdio: 'ignore' });
      return { cert: readFileSync(join(dir, 'c'), 'utf8'), key: readFileSync(join(dir, 'k'), 'utf8') };
    };
    const gatewayReady = (want: (c: ReturnType<typeof condition>) => boolean) =>
      k8s.waitFor<GitspaceInfra>(infraManifest(infra, ''), (x) => want(condition(x, 'GatewayReady')), 60_000).then((x) => condition(x, 'GatewayReady'));
    const setTLS = (name: string) => k8s.patch(infraManifest(infra, ''), { spec: { gateway: { tlsSecretRef: { name } } } });

    before(async () => {
      gw = new Gateway({ client: new KubeClient(testCluster().access()), log: createLogger({ component: 'gateway' }, 'error'), audit: () => undefined, port: 0, address: '127.0.0.1', drainDelayMs: 0 });
      await gw.start();
      const m = infraManifest(infra, join(work, 'tls'));
      (m.spec as GitspaceInfra['spec']).gateway = { domain, tlsSecretRef: { name: 'tenancy-missing' } };
      await k8s.apply(m);
      op = await startOperator({ kubeconfig: testCluster().kubeconfigPath, logDir: work, args: ['--gateway-url', `http://127.0.0.1:${String(gw.port)}`], name: 'operator-gateway' });
    });
    after(async () => {
      try {
        await k8s.cleanUpInfra(infra);
        for (const s of ['tenancy-wrong-host', 'tenancy-wildcard']) await testCluster().request('DELETE', `/api/v1/namespaces/default/secrets/${s}`);
      } finally {
        await op.kill('SIGTERM');
        if (!gwStopped) await gw.stop();
      }
    });

    it('is False while the certificate is missing or for other hosts, True with a valid wildcard and a ready gateway, False when the gateway stops answering', async () => {
      const missing = await gatewayReady((c) => c?.reason === 'CertificateNotFound');
      expect(missing?.status).to.equal('False');
      expect(missing?.message).to.equal('spec.gateway.tlsSecretRef: Secret default/tenancy-missing not found');

      const other = selfSigned('DNS:*.elsewhere.example.com');
      await putTLSSecret('tenancy-wrong-host', other);
      await setTLS('tenancy-wrong-host');
      const mismatch = await gatewayReady((c) => c?.reason === 'CertificateMismatch');
      expect(mismatch?.message).to.include(`does not cover *.${domain}`).and.include('DNS:*.elsewhere.example.com');

      const good = selfSigned(`DNS:*.${domain},DNS:${domain}`);
      await putTLSSecret('tenancy-wildcard', good);
      await setTLS('tenancy-wildcard');
      const ready = await gatewayReady((c) => c?.status === 'True');
      expect(ready?.reason).to.equal('Ready');
      expect(ready?.message).to.match(new RegExp(`the gateway at http://127\\.0\\.0\\.1:\\d+ is ready; certificate for \\*\\.${domain.replace(/\./g, '\\.')} valid until \\S+ \\((29|30) days\\)`));

      await gw.stop();
      gwStopped = true;
      // Re-checked within the recheck interval (30 s) while nothing else changes.
      const down = await gatewayReady((c) => c?.reason === 'GatewayUnreachable');
      expect(down?.status).to.equal('False');
      expect(down?.message).to.match(/the gateway at http:\/\/127\.0\.0\.1:\d+ did not answer \/readyz: .*ECONNREFUSED/);
    });
  });
});
