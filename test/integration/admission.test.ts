// The chart's ValidatingAdmissionPolicy against the real API server: the policy and its binding as
// `helm template` renders them, token users alice and bob (group developers), platform-admin (group
// gitspaces-admins, the admin group of this release) and the operator's ServiceAccount (a token
// from the TokenRequest API), each with RBAC to create and update Gitspaces in one namespace. What
// the policy refuses it refuses with a message naming the field and the rule; status and
// metadata-only writes pass.
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { binDir, type ClusterUser, type RawResponse } from '../cluster/cluster.ts';
import { testCluster } from '../cluster/current.ts';
import { ROOT, statusMessage, type Manifest } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

const CHART = join(ROOT, 'helm/gitspaces-operator');
const RELEASE = 'admission';
const RELEASE_NS = 'gitspaces-admission';
// 31 characters: with a 23-character name the pair is at the policy's limit of 54.
const NS = 'gitspaces-admission-policy-test';
const OPERATOR_SA = 'admission-gitspaces-operator';
const BASE = `/apis/gitspaces.dev/v1alpha1/namespaces/${NS}/gitspaces`;

const gitspace = (name: string, owner: string, extra: Record<string, unknown> = {}): Manifest => ({
  apiVersion: 'gitspaces.dev/v1alpha1',
  kind: 'Gitspace',
  metadata: { name, namespace: NS },
  spec: { infraRef: { name: 'none' }, owner, repository: { url: 'https://git.example.com/team/app.git' }, machineType: 'small', ...extra },
});

describe('Admission policy (the chart\'s ValidatingAdmissionPolicy, token users, the operator\'s ServiceAccount)', function () {
  this.timeout(120_000);
  let work: string;
  let policyName = '';
  let operator: ClusterUser;
  const alice = () => testCluster().user('alice');
  const bob = () => testCluster().user('bob');
  const admin = () => testCluster().user('platform-admin');

  const create = (user: ClusterUser, m: Manifest, dryRun = false) =>
    testCluster().request('POST', `${BASE}${dryRun ? '?dryRun=All' : ''}`, { user, body: m });
  const patch = (user: ClusterUser, name: string, body: unknown, sub = '') =>
    testCluster().request('PATCH', `${BASE}/${name}${sub}`, { user, body, headers: { 'content-type': 'application/merge-patch+json' } });
  const get = async (name: string) => (await testCluster().request('GET', `${BASE}/${name}`)).json as Manifest & { metadata: { finalizers?: string[] } };
  const expectStatus = (r: RawResponse, code: number) => {
    expect(r.status, r.body).to.equal(code);
  };
  const refused = (r: RawResponse, code: number, message: string) => {
    expect(r.status, r.body).to.equal(code);
    expect(statusMessage(r)).to.include(`ValidatingAdmissionPolicy '${policyName}'`);
    expect(statusMessage(r)).to.include(message);
  };
  const apply = (objects: unknown[]) => {
    const f = join(work, `apply-${String(Math.random()).slice(2)}.yaml`);
    writeFileSync(f, objects.map((o) => stringify(o)).join('---\n'));
    const r = spawnSync(join(binDir(), 'kubectl'), ['--kubeconfig', testCluster().kubeconfigPath, 'apply', '-f', f], { encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
  };

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-admission-'));
    const helmBin = execFileSync('bash', [join(ROOT, 'scripts/fetch-helm.sh')], { encoding: 'utf8' }).trim();
    // This release's admin group, and a binding narrowed to the test's namespace so that the rest of
    // the suite (sharing the API server) never meets the policy.
    const values = join(work, 'values.yaml');
    writeFileSync(values, stringify({ admission: { adminGroups: ['gitspaces-admins'], namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS } } } }));
    const h = spawnSync(helmBin, ['template', RELEASE, CHART, '-n', RELEASE_NS, '--kube-version', '1.34.4', '-f', values], {
      encoding: 'utf8', env: { ...process.env, HELM_CACHE_HOME: join(work, 'helm-cache'), HELM_CONFIG_HOME: join(work, 'helm-config'), HELM_DATA_HOME: join(work, 'helm-data') },
    });
    expect(h.status, h.stderr).to.equal(0);
    const docs = parseAllDocuments(h.stdout).map((d) => d.toJS() as Manifest | null).filter((d): d is Manifest => d !== null);
    const policy = docs.filter((d) => d.kind === 'ValidatingAdmissionPolicy' || d.kind === 'ValidatingAdmissionPolicyBinding');
    expect(policy.map((d) => d.kind)).to.deep.equal(['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
    policyName = policy[0]?.metadata.name ?? '';
    const sa = docs.find((d) => d.kind === 'ServiceAccount' && d.metadata.name === OPERATOR_SA);
    expect(sa, 'the operator ServiceAccount rendered').to.not.equal(undefined);

    // Namespaces, the operator's ServiceAccount, and RBAC for everyone on Gitspaces in NS only.
    const rbac = [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: RELEASE_NS } },
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
      sa,
      {
        apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'gitspace-editor', namespace: NS },
        rules: [
          { apiGroups: ['gitspaces.dev'], resources: ['gitspaces'], verbs: ['get', 'list', 'create', 'update', 'patch', 'delete'] },
          { apiGroups: ['gitspaces.dev'], resources: ['gitspaces/status'], verbs: ['get', 'update', 'patch'] },
        ],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'gitspace-editor', namespace: NS },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'gitspace-editor' },
        subjects: [
          { apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'developers' },
          { apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'gitspaces-admins' },
          { kind: 'ServiceAccount', name: OPERATOR_SA, namespace: RELEASE_NS },
        ],
      },
    ];
    apply(rbac);
    apply(policy);

    const t = await testCluster().request('POST', `/api/v1/namespaces/${RELEASE_NS}/serviceaccounts/${OPERATOR_SA}/token`, {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
    });
    expect(t.status, t.body).to.equal(201);
    operator = { name: OPERATOR_SA, token: (t.json as { status: { token: string } }).status.token, groups: [] };

    // The API server loads a new policy in the background: until then everything is admitted.
    await eventually('the policy to refuse a Gitspace for someone else', 60_000, async () => (await create(alice(), gitspace('probe', 'bob'), true)).status === 403 || undefined, 500);
  });

  after(async () => {
    rmSync(work, { recursive: true, force: true });
    for (const kind of ['validatingadmissionpolicybindings', 'validatingadmissionpolicies']) {
      await testCluster().request('DELETE', `/apis/admissionregistration.k8s.io/v1/${kind}/${policyName}`);
    }
    for (const ns of [NS, RELEASE_NS]) await testCluster().request('DELETE', `/api/v1/namespaces/${ns}`);
  });

  it('lets alice create a Gitspace she owns, and refuses one she names bob as owner of', async () => {
    expectStatus(await create(alice(), gitspace('alice-app', 'alice')), 201);
    refused(await create(alice(), gitspace('for-bob', 'bob')), 403,
      'spec.owner must be the requesting user (alice), not bob: only the operator and admins');
    expect((await testCluster().request('GET', `${BASE}/for-bob`)).status).to.equal(404);
  });

  it('lets only the owner change sharedWith: bob is refused, alice is allowed', async () => {
    expectStatus(await create(alice(), gitspace('shared', 'alice', { sharedWith: ['carol'] })), 201);
    refused(await patch(bob(), 'shared', { spec: { sharedWith: ['carol', 'bob'] } }), 403,
      'spec.sharedWith may be changed only by the owner (alice) or an admin, not by bob');
    refused(await patch(bob(), 'shared', { spec: { sharedWith: null } }), 403, 'spec.sharedWith may be changed only by the owner (alice)');
    expect((await get('shared')).spec?.sharedWith).to.deep.equal(['carol']);
    // bob may still change what RBAC lets him (here: the desired state), just not who gets in.
    expectStatus(await patch(bob(), 'shared', { spec: { state: 'Stopped' } }), 200);

    expectStatus(await patch(alice(), 'shared', { spec: { sharedWith: ['carol', 'bob'] } }), 200);
    expect((await get('shared')).spec?.sharedWith).to.deep.equal(['carol', 'bob']);
    expectStatus(await patch(alice(), 'shared', { spec: { sharedWith: null } }), 200);
    expect((await get('shared')).spec).to.not.have.property('sharedWith');
    // An admin may change anyone's sharedWith.
    expectStatus(await patch(admin(), 'shared', { spec: { sharedWith: ['dave'] } }), 200);
  });

  it('refuses any change of owner, by the owner, an admin or the operator', async () => {
    expectStatus(await create(alice(), gitspace('fixed-owner', 'alice')), 201);
    for (const [who, user] of [['alice', alice()], ['platform-admin', admin()], ['the operator', operator]] as const) {
      refused(await patch(user, 'fixed-owner', { spec: { owner: 'bob' } }), 422, 'spec.owner is immutable (it is alice, not bob)');
      expect((await get('fixed-owner')).spec?.owner, who).to.equal('alice');
    }
  });

  it('lets a member of admission.adminGroups create a Gitspace for bob (and not the cluster\'s own admin, who is in no such group)', async () => {
    expectStatus(await create(admin(), gitspace('from-admin', 'bob')), 201);
    expect((await get('from-admin')).spec?.owner).to.equal('bob');
    // The test cluster's admin is system:masters, which this release's adminGroups leaves out.
    refused(await testCluster().request('POST', BASE, { body: gitspace('from-masters', 'bob') }), 403, 'spec.owner must be the requesting user (admin), not bob');
  });

  it('lets the operator\'s ServiceAccount create for anyone, write status, and add and remove its finalizer', async () => {
    expectStatus(await create(operator, gitspace('from-delegate', 'dev@example.com', { sharedWith: ['alice'] })), 201);
    expect((await get('from-delegate')).spec?.owner).to.equal('dev@example.com');
    // The delegate re-applies the control plane's spec (same owner) and may change sharedWith.
    expectStatus(await patch(operator, 'from-delegate', { spec: { owner: 'dev@example.com', sharedWith: ['alice', 'bob'] } }), 200);

    // Status (a subresource) and metadata-only writes, also on a Gitspace the operator does not own.
    expectStatus(await patch(operator, 'alice-app', { status: { phase: 'Pending', message: 'waiting' } }, '/status'), 200);
    expect((await get('alice-app')).status?.phase).to.equal('Pending');
    expectStatus(await patch(operator, 'alice-app', { metadata: { finalizers: ['gitspaces.dev/cleanup'], annotations: { 'gitspaces.dev/revision': '1' } } }), 200);
    expect((await get('alice-app')).metadata.finalizers).to.deep.equal(['gitspaces.dev/cleanup']);
    // bob's metadata-only write is RBAC's business, not the policy's.
    expectStatus(await patch(bob(), 'alice-app', { metadata: { labels: { team: 'b' } } }), 200);
    expectStatus(await testCluster().request('DELETE', `${BASE}/alice-app`, { user: alice() }), 200);
    expectStatus(await patch(operator, 'alice-app', { metadata: { finalizers: null } }), 200);
    await eventually('alice-app to be gone', 10_000, async () => (await testCluster().request('GET', `${BASE}/alice-app`)).status === 404 || undefined);
  });

  it('refuses a name and namespace longer than 54 characters together, for everyone', async () => {
    expect(NS.length).to.equal(31);
    expectStatus(await create(alice(), gitspace('a'.repeat(23), 'alice')), 201);
    const long = 'b'.repeat(24);
    for (const [user, owner] of [[alice(), 'alice'], [admin(), 'bob'], [operator, 'dev@example.com']] as const) {
      refused(await create(user, gitspace(long, owner)), 422, 'metadata.name and metadata.namespace must be at most 54 characters together (they are 55)');
    }
  });
});
