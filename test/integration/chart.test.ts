// The Helm chart against the real API server: `helm lint` and `helm template` with the value sets
// users run (defaults, GKE, EKS, minimal), every rendered object checked by a server-side dry-run,
// bad values refused by values.schema.json with a message naming the value, and the chart's RBAC
// proved by running the real operator and gateway under the chart's ServiceAccounts (tokens from
// the TokenRequest API) through a whole Gitspace lifecycle, plus what they must not be allowed.
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { Stack } from '../../demo/stack.ts';
import { binDir, freePort } from '../cluster/cluster.ts';
import { testCluster } from '../cluster/current.ts';
import { makeRepo, makeSshKey } from '../support/fixtures.ts';
import { ROOT, type Manifest } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

const CHART = join(ROOT, 'helm/gitspaces-operator');
const KUBE_VERSION = '1.34.4';

interface Rendered extends Manifest {
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
}

const infraGCP = (parseAllDocuments(readFileSync(join(ROOT, 'examples/infra-gcp.yaml'), 'utf8'))[0]?.toJS() as { spec: unknown }).spec;

const valueSets: Record<string, Record<string, unknown>> = {
  defaults: {},
  gke: {
    operator: { serviceAccount: { annotations: { 'iam.gke.io/gcp-service-account': 'gitspaces@acme.iam.gserviceaccount.com' } } },
    gateway: { ingress: { enabled: true, className: 'gce', host: '*.gitspaces.example.com', tlsSecretName: 'gitspaces-wildcard' } },
    metrics: { serviceMonitor: { enabled: true, labels: { release: 'prometheus' } } },
    argocd: { healthChecks: { enabled: true } },
    infra: { create: true, name: 'gcp-europe', spec: infraGCP },
  },
  eks: {
    image: { digest: `sha256:${'a'.repeat(64)}` },
    operator: { serviceAccount: { annotations: { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/gitspaces-operator' } } },
    gateway: { tls: { secretName: 'gateway-tls' }, service: { type: 'LoadBalancer', port: 443, annotations: { 'service.beta.kubernetes.io/aws-load-balancer-type': 'nlb' } } },
    controlPlane: { url: 'https://cp.example.com', tokenSecret: { name: 'delegate-token' }, namespace: 'devs' },
    podDisruptionBudget: { enabled: false },
    networkPolicy: { gatewayFrom: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } }] },
    admission: { adminGroups: ['kubeadm:cluster-admins'], adminUsers: ['system:serviceaccount:argocd:argocd-application-controller'], validationActions: ['Warn', 'Audit'], namespaceSelector: { matchLabels: { 'gitspaces.dev/tenants': 'true' } } },
  },
  minimal: { gateway: { enabled: false }, networkPolicy: { enabled: false }, operator: { replicas: 1 }, admission: { enabled: false } },
};

describe('Helm chart (helm lint/template, server-side dry-run, RBAC under its ServiceAccounts)', function () {
  this.timeout(300_000);
  let work: string;
  let helmBin: string;
  let kubectlBin: string;

  const valuesFile = (values: Record<string, unknown>): string => {
    const f = join(work, `values-${String(Math.random()).slice(2)}.yaml`);
    writeFileSync(f, stringify(values));
    return f;
  };
  const helm = (args: string[]) => spawnSync(helmBin, args, { encoding: 'utf8', env: { ...process.env, HELM_CACHE_HOME: join(work, 'helm-cache'), HELM_CONFIG_HOME: join(work, 'helm-config'), HELM_DATA_HOME: join(work, 'helm-data') } });
  const render = (release: string, namespace: string, values: Record<string, unknown>): Rendered[] => {
    const r = helm(['template', release, CHART, '-n', namespace, '--kube-version', KUBE_VERSION, '-f', valuesFile(values)]);
    expect(r.status, r.stderr).to.equal(0);
    return parseAllDocuments(r.stdout).map((d) => d.toJS() as Rendered | null).filter((d): d is Rendered => d !== null);
  };
  const kubectl = (args: string[], input?: string) =>
    spawnSync(kubectlBin, ['--kubeconfig', testCluster().kubeconfigPath, ...args], { encoding: 'utf8', ...(input !== undefined ? { input } : {}) });
  const createNamespace = (name: string) => {
    kubectl(['create', 'namespace', name]);
  };
  const byKind = (docs: Rendered[], kind: string) => docs.filter((d) => d.kind === kind);
  const one = (docs: Rendered[], kind: string, nameEnd: string): Rendered => {
    const d = docs.find((x) => x.kind === kind && x.metadata.name.endsWith(nameEnd));
    expect(d, `${kind} *${nameEnd} rendered`).to.not.equal(undefined);
    return d as Rendered;
  };
  type Container = { args: string[]; securityContext: Record<string, unknown>; readinessProbe?: unknown; livenessProbe?: unknown; image: string };
  const containerOf = (d: Rendered): Container => ((d.spec as { template: { spec: { containers: Container[] } } }).template.spec.containers[0] as Container);

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-chart-'));
    helmBin = execFileSync('bash', [join(ROOT, 'scripts/fetch-helm.sh')], { encoding: 'utf8' }).trim();
    kubectlBin = join(binDir(), 'kubectl');
    // What the value sets refer to outside the chart: the prometheus-operator's ServiceMonitor kind
    // (a stand-in CRD of that name) and the namespaces.
    const sm = {
      apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: 'servicemonitors.monitoring.coreos.com' },
      spec: { group: 'monitoring.coreos.com', scope: 'Namespaced', names: { plural: 'servicemonitors', singular: 'servicemonitor', kind: 'ServiceMonitor' },
        versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }] },
    };
    const r = kubectl(['apply', '-f', '-'], JSON.stringify(sm));
    expect(r.status, r.stderr).to.equal(0);
    expect(kubectl(['wait', '--for=condition=Established', 'crd/servicemonitors.monitoring.coreos.com', '--timeout=30s']).status).to.equal(0);
    for (const ns of ['argocd', 'chart-defaults', 'chart-gke', 'chart-eks', 'chart-minimal']) createNamespace(ns);
  });

  after(() => {
    rmSync(work, { recursive: true, force: true });
  });

  it('passes helm lint --strict with every value set', () => {
    for (const [name, values] of Object.entries(valueSets)) {
      const r = helm(['lint', CHART, '--strict', '--kube-version', KUBE_VERSION, '-f', valuesFile(values)]);
      expect(r.status, `${name}: ${r.stdout}${r.stderr}`).to.equal(0);
    }
  });

  it('renders what each value set asks for, and the API server accepts every object (server-side dry-run)', () => {
    for (const [name, values] of Object.entries(valueSets)) {
      const ns = `chart-${name}`;
      const docs = render('gitspaces', ns, values);
      const file = join(work, `${name}.yaml`);
      writeFileSync(file, docs.map((d) => stringify(d)).join('---\n'));
      const r = kubectl(['apply', '--dry-run=server', '-f', file]);
      expect(r.status, `${name}: ${r.stderr}`).to.equal(0);
      expect(r.stdout.trim().split('\n').length, `${name}: ${r.stdout}`).to.equal(docs.length);
    }

    // Defaults: two leader-elected operator replicas and the gateway, hardened, probed, spread.
    const d = render('gitspaces', 'chart-defaults', {});
    const op = one(d, 'Deployment', '-operator');
    expect(op.metadata.name).to.equal('gitspaces-operator');
    expect((op.spec as { replicas: number }).replicas).to.equal(2);
    const opc = containerOf(op);
    expect(opc.args).to.include.members(['operator', '--leader-elect']);
    expect(opc.securityContext).to.deep.include({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, runAsNonRoot: true });
    expect(opc.readinessProbe).to.not.equal(undefined);
    expect((op.spec as { template: { spec: { topologySpreadConstraints: unknown[] } } }).template.spec.topologySpreadConstraints).to.have.length(2);
    expect(containerOf(one(d, 'Deployment', '-gateway')).args[0]).to.equal('gateway');
    expect(byKind(d, 'PodDisruptionBudget')).to.have.length(2);
    expect(byKind(d, 'NetworkPolicy')).to.have.length(2);
    expect(byKind(d, 'Ingress')).to.have.length(0);
    expect(byKind(d, 'ServiceMonitor')).to.have.length(0);
    expect(byKind(d, 'GitspaceInfra')).to.have.length(0);
    // The admission policy (test/integration/admission.test.ts runs it): on, denying, fail-closed,
    // every namespace, the operator's ServiceAccount and system:masters privileged.
    type Policy = Rendered & { spec: { failurePolicy: string; variables: { name: string; expression: string }[] } };
    type PolicyBinding = Rendered & { spec: { policyName: string; validationActions: string[]; matchResources?: unknown } };
    const privileged = (p: Policy) => p.spec.variables.find((v) => v.name === 'privileged')?.expression ?? '';
    const vap = one(d, 'ValidatingAdmissionPolicy', '-gitspace-owner') as Policy;
    const vapb = one(d, 'ValidatingAdmissionPolicyBinding', '-gitspace-owner') as PolicyBinding;
    expect(vap.spec.failurePolicy).to.equal('Fail');
    expect(privileged(vap)).to.include('"system:serviceaccount:chart-defaults:gitspaces-operator"').and.include('["system:masters"]');
    expect(vapb.spec).to.deep.equal({ policyName: vap.metadata.name, validationActions: ['Deny'] });

    // GKE: workload identity, wildcard Ingress with TLS, ServiceMonitors, Argo CD checks, an infra.
    const g = render('gitspaces', 'chart-gke', valueSets.gke ?? {});
    expect(one(g, 'ServiceAccount', '-operator').metadata.annotations).to.include({ 'iam.gke.io/gcp-service-account': 'gitspaces@acme.iam.gserviceaccount.com' });
    const ing = one(g, 'Ingress', '-gateway').spec as { rules: { host: string }[]; tls: { hosts: string[]; secretName: string }[] };
    // The wildcard for Gitspaces, the domain itself for sign-in and agent bundles.
    expect(ing.rules.map((r) => r.host)).to.deep.equal(['*.gitspaces.example.com', 'gitspaces.example.com']);
    expect(ing.tls[0]).to.deep.equal({ hosts: ['*.gitspaces.example.com', 'gitspaces.example.com'], secretName: 'gitspaces-wildcard' });
    expect(byKind(g, 'ServiceMonitor').map((s) => s.metadata.labels?.release)).to.deep.equal(['prometheus', 'prometheus']);
    const cm = one(g, 'ConfigMap', '-argocd-health') as Rendered & { data: Record<string, string> };
    expect(cm.metadata.namespace).to.equal('argocd');
    expect(cm.data['resource.customizations.health.gitspaces.dev_Gitspace']).to.equal(readFileSync(join(ROOT, 'docs/argocd/gitspace-health.lua'), 'utf8'));
    const infra = one(g, 'GitspaceInfra', 'gcp-europe');
    expect(infra.metadata.annotations).to.include({ 'argocd.argoproj.io/sync-wave': '1' });

    // EKS: IRSA, delegate settings and its token Secret, TLS in the gateway, a pinned digest.
    const e = render('gitspaces', 'chart-eks', valueSets.eks ?? {});
    expect(one(e, 'ServiceAccount', '-operator').metadata.annotations).to.include({ 'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/gitspaces-operator' });
    const eop = containerOf(one(e, 'Deployment', '-operator'));
    expect(eop.image).to.equal(`ghcr.io/gitspaces/operator@sha256:${'a'.repeat(64)}`);
    expect(eop.args).to.include.members(['--control-plane-url=https://cp.example.com', '--delegate-namespace=devs', '--delegate-token-file=/var/run/secrets/gitspaces/delegate/token']);
    expect(containerOf(one(e, 'Deployment', '-gateway')).args).to.include('--tls-cert=/var/run/secrets/gitspaces/tls/tls.crt');
    expect(byKind(e, 'PodDisruptionBudget')).to.have.length(0);
    const evap = one(e, 'ValidatingAdmissionPolicy', '-gitspace-owner') as Policy;
    expect(privileged(evap)).to.include('["system:serviceaccount:argocd:argocd-application-controller"]').and.include('["kubeadm:cluster-admins"]').and.not.include('system:masters');
    expect((one(e, 'ValidatingAdmissionPolicyBinding', '-gitspace-owner') as PolicyBinding).spec).to.deep.include({
      validationActions: ['Warn', 'Audit'], matchResources: { namespaceSelector: { matchLabels: { 'gitspaces.dev/tenants': 'true' } } },
    });
    // Off: neither object.
    const m = render('gitspaces', 'chart-minimal', valueSets.minimal ?? {});
    expect(byKind(m, 'ValidatingAdmissionPolicy').length + byKind(m, 'ValidatingAdmissionPolicyBinding').length).to.equal(0);
    const eRole = one(e, 'ClusterRole', '-operator') as Rendered & { rules: { resources: string[]; verbs: string[] }[] };
    expect(eRole.rules.find((x) => x.resources.includes('gitspaces'))?.verbs).to.include.members(['create', 'delete']);
    // Without a control plane the operator may not create or delete Gitspaces.
    const dRole = one(d, 'ClusterRole', '-operator') as Rendered & { rules: { resources: string[]; verbs: string[] }[] };
    expect(dRole.rules.find((x) => x.resources.includes('gitspaces'))?.verbs).to.not.include.members(['create']);
  });

  it('grants Secrets exactly as the components use them: the gateway one Secret by name, the operator get (and its own keys)', () => {
    type Rule = { apiGroups: string[]; resources: string[]; resourceNames?: string[]; verbs: string[] };
    const rules = (d: Rendered) => (d as Rendered & { rules: Rule[] }).rules;
    const docs = render('gitspaces', 'chart-defaults', {});
    expect(rules(one(docs, 'ClusterRole', '-gateway'))).to.deep.equal([{ apiGroups: ['gitspaces.dev'], resources: ['gitspaces', 'gitspaceinfras'], verbs: ['list', 'watch'] }]);
    const gwRole = one(docs, 'Role', '-gateway');
    expect(gwRole.metadata.namespace).to.equal('chart-defaults');
    const sessions = { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch', 'create', 'update', 'delete'] };
    expect(rules(gwRole)).to.deep.equal([{ apiGroups: [''], resources: ['secrets'], resourceNames: ['gitspaces-hop-key'], verbs: ['list', 'watch'] }, sessions]);
    const keySets = render('gitspaces', 'chart-defaults', { gateway: { keySetSecrets: ['issuer-jwks'], oidcClientSecrets: ['sso-client'] } });
    expect(rules(one(keySets, 'Role', '-gateway'))).to.deep.equal([
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['gitspaces-hop-key'], verbs: ['list', 'watch'] },
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['issuer-jwks', 'sso-client'], verbs: ['get'] },
      sessions,
    ]);
    const secretRules = (d: Rendered) => rules(d).filter((r) => r.resources.includes('secrets'));
    expect(secretRules(one(docs, 'ClusterRole', '-operator'))).to.deep.equal([{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }]);
    expect(rules(one(docs, 'Role', '-operator-keys'))).to.deep.equal([{ apiGroups: [''], resources: ['secrets'], verbs: ['create', 'list', 'watch'] }]);
    // No other role of the chart mentions Secrets.
    const others = docs.filter((d) => ['ClusterRole', 'Role'].includes(d.kind) && !['gitspaces-gateway', 'gitspaces-operator', 'gitspaces-operator-keys'].includes(d.metadata.name));
    for (const d of others) expect(secretRules(d), `${d.kind} ${d.metadata.name}`).to.deep.equal([]);
  });

  it('refuses bad values with a message that names the value', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ operator: { replicas: 0 } }, "at '/operator/replicas': minimum: got 0, want 1"],
      [{ operator: { replicas: 'two' } }, "at '/operator/replicas': got string, want integer"],
      [{ opertor: {} }, "additional properties 'opertor' not allowed"],
      [{ image: { pullPolicy: 'Sometimes' } }, "at '/image/pullPolicy'"],
      [{ image: { digest: 'latest' } }, "at '/image/digest'"],
      [{ logLevel: 'verbose' }, "at '/logLevel'"],
      [{ controlPlane: { url: 'https://cp.example.com' } }, "at '/controlPlane/tokenSecret/name'"],
      [{ controlPlane: { url: 'ftp://cp', tokenSecret: { name: 't' } } }, "at '/controlPlane/url'"],
      [{ gateway: { ingress: { enabled: true } } }, "at '/gateway/ingress/host'"],
      [{ gateway: { ingress: { enabled: true, host: 'not a host' } } }, "at '/gateway/ingress/host'"],
      [{ gateway: { port: 80 } }, "at '/gateway/port'"],
      [{ gateway: { trustedProxies: ['a load balancer'] } }, "at '/gateway/trustedProxies/0'"],
      [{ gateway: { maxConnections: 0 } }, "at '/gateway/maxConnections'"],
      [{ gateway: { timeouts: { headersSeconds: 'soon' } } }, "at '/gateway/timeouts/headersSeconds'"],
      [{ infra: { create: true } }, "at '/infra/spec': missing property 'provider'"],
      [{ metrics: { serviceMonitor: { interval: 'often' } } }, "at '/metrics/serviceMonitor/interval'"],
      [{ admission: { validationActions: ['Deny', 'Warn'] } }, "at '/admission/validationActions'"],
      [{ admission: { validationActions: ['Block'] } }, "at '/admission/validationActions/0'"],
      [{ admission: { adminGroups: 'system:masters' } }, "at '/admission/adminGroups': got string, want array"],
    ];
    for (const [values, message] of cases) {
      const r = helm(['template', 'bad', CHART, '--kube-version', KUBE_VERSION, '-f', valuesFile(values)]);
      expect(r.status, JSON.stringify(values)).to.not.equal(0);
      expect(r.stderr, JSON.stringify(values)).to.include(message);
    }
    // A GitspaceInfra that passes the chart's schema but not the CRD's: the API server names the field.
    const bad = render('gitspaces', 'chart-defaults', { infra: { create: true, name: 'broken', spec: { provider: { gcp: { project: 'p' } }, machineTypes: [] } } });
    const f = join(work, 'bad-infra.yaml');
    writeFileSync(f, stringify(one(bad, 'GitspaceInfra', 'broken')));
    const r = kubectl(['apply', '--dry-run=server', '-f', f]);
    expect(r.status).to.not.equal(0);
    expect(r.stderr).to.match(/spec\.(provider\.gcp\.\w+|machineTypes|gateway)/);
  });

  describe('RBAC: the real operator and gateway under the chart\'s ServiceAccounts', () => {
    const NS = 'gitspaces-system';
    const DEV = 'rbac-dev';
    let stack: Stack | undefined;
    let notes = '';

    const saKubeconfig = async (sa: string): Promise<string> => {
      const r = await testCluster().request('POST', `/api/v1/namespaces/${NS}/serviceaccounts/${sa}/token`, {
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
      });
      expect(r.status, JSON.stringify(r.json)).to.equal(201);
      const token = (r.json as { status: { token: string } }).status.token;
      const f = join(work, `${sa}.kubeconfig`);
      writeFileSync(f, testCluster().kubeconfigYAML({ name: sa, token, groups: [] }));
      return f;
    };
    const can = (sa: string, verb: string, resource: string, ns?: string): boolean => {
      const r = kubectl(['auth', 'can-i', verb, resource, `--as=system:serviceaccount:${NS}:${sa}`, ...(ns ? ['-n', ns] : ['--all-namespaces'])]);
      return r.stdout.trim() === 'yes';
    };

    before(() => {
      createNamespace(DEV);
      // A real install (the Deployments get no Pods: this cluster has no scheduler or kubelet).
      const r = helm(['install', 'gitspaces', CHART, '-n', NS, '--create-namespace', '--kubeconfig', testCluster().kubeconfigPath,
        '--set', 'controlPlane.url=http://127.0.0.1:1', '--set', 'controlPlane.tokenSecret.name=delegate-token', '--set', `controlPlane.namespace=${DEV}`]);
      expect(r.status, r.stderr).to.equal(0);
      notes = r.stdout;
    });

    after(async () => {
      await stack?.stop();
      helm(['uninstall', 'gitspaces', '-n', NS, '--kubeconfig', testCluster().kubeconfigPath]);
    });

    it('installs with helm and prints NOTES that say what to do next', () => {
      expect(notes).to.include('STATUS: deployed');
      expect(notes).to.include('kubectl -n gitspaces-system get lease gitspaces-operator');
      expect(notes).to.include('port-forward svc/gitspaces-gateway');
      expect(notes).to.include(`creates Gitspaces in namespace\n${DEV}`);
    });

    it('installs the admission policy, which the lifecycle below then runs under (the delegate creates as the operator\'s ServiceAccount)', async () => {
      for (const kind of ['validatingadmissionpolicies', 'validatingadmissionpolicybindings']) {
        expect((await testCluster().request('GET', `/apis/admissionregistration.k8s.io/v1/${kind}/gitspaces-gitspace-owner`)).status, kind).to.equal(200);
      }
    });

    it('runs a whole lifecycle through the delegate, the runner and the gateway with no request refused', async () => {
      const dir = join(work, 'stack');
      const repo = makeRepo(work);
      stack = new Stack({
        work: dir,
        kubeconfig: testCluster().kubeconfigPath,
        operatorKubeconfig: await saKubeconfig('gitspaces-operator'),
        gatewayKubeconfig: await saKubeconfig('gitspaces-gateway'),
        operatorNamespace: NS,
        namespace: DEV,
        infraName: 'rbac',
        ports: { controlPlane: await freePort(), gateway: await freePort(), operatorHealth: await freePort() },
      });
      await stack.start();
      const g = await stack.createGitspace('rbacapp', `file://${repo}`, makeSshKey().publicLine, { ide: 'ssh' });
      expect(g.phase).to.equal('Running');

      // The gateway (reading Gitspaces, and of Secrets only the hop key by name) lets the owner in.
      // (fetch cannot set Host, so by path: /gitspaces/<namespace>/<name>/)
      const page = await fetch(`${stack.gatewayURL}/gitspaces/${DEV}/rbacapp/`, { headers: { authorization: `Bearer ${g.token}` } });
      const body = await page.text();
      expect(page.status, body).to.equal(200);
      expect(body).to.include(`Gitspace ${DEV}/rbacapp`);

      // Stop and delete through the control plane: finalizers, status, Secrets, Events.
      expect((await stack.api('POST', '/api/v1/gitspaces/rbacapp/stop')).status).to.be.oneOf([200, 202]);
      await eventually('Stopped', 60_000, async () => ((await stack?.api('GET', '/api/v1/gitspaces/rbacapp'))?.json as { status?: { phase?: string } }).status?.phase === 'Stopped' || undefined);
      expect((await stack.api('DELETE', '/api/v1/gitspaces/rbacapp')).status).to.be.oneOf([200, 202]);
      await eventually('the Gitspace to be gone', 60_000, async () => (await testCluster().request('GET', `/apis/gitspaces.dev/v1alpha1/namespaces/${DEV}/gitspaces/rbacapp`)).status === 404 || undefined);
      const secret = await testCluster().request('GET', `/api/v1/namespaces/${DEV}/secrets/rbacapp-gitspace-token`);
      expect(secret.status).to.equal(404);

      // It led through the chart's Role (Lease by name) and nothing was refused along the way.
      const lease = await testCluster().request('GET', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/gitspaces-operator`);
      expect(lease.status).to.equal(200);
      await testCluster().request('DELETE', '/apis/gitspaces.dev/v1alpha1/gitspaceinfras/rbac');
      await eventually('the infra to be gone', 60_000, async () => (await testCluster().request('GET', '/apis/gitspaces.dev/v1alpha1/gitspaceinfras/rbac')).status === 404 || undefined);
      for (const component of ['operator', 'gateway']) {
        const log = readFileSync(stack.logOf(component), 'utf8');
        expect(log, `${component} log`).to.not.match(/forbidden|"status":403|\b403\b.*(secrets|gitspaces|leases|events)/i);
      }
    });

    it('the gateway\'s own token cannot read a Secret of a tenant namespace (a real GET is 403)', async () => {
      const r = await testCluster().request('POST', `/api/v1/namespaces/${NS}/serviceaccounts/gitspaces-gateway/token`, {
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 600 } },
      });
      const token = (r.json as { status: { token: string } }).status.token;
      await testCluster().request('POST', `/api/v1/namespaces/${DEV}/secrets`, { body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'tenant-secret' }, stringData: { password: 'x' } } });
      const gateway = { name: 'gitspaces-gateway', token, groups: [] };
      expect((await testCluster().request('GET', `/api/v1/namespaces/${DEV}/secrets/tenant-secret`, { user: gateway })).status).to.equal(403);
      expect((await testCluster().request('GET', `/api/v1/namespaces/${DEV}/secrets`, { user: gateway })).status).to.equal(403);
      // What its informer does: list and watch the hop key by name in its namespace.
      const byName = `fieldSelector=${encodeURIComponent('metadata.name=gitspaces-hop-key')}`;
      expect((await testCluster().request('GET', `/api/v1/namespaces/${NS}/secrets?${byName}`, { user: gateway })).status).to.equal(200);
      expect((await testCluster().request('GET', `/api/v1/namespaces/${NS}/secrets`, { user: gateway })).status, 'every Secret of its namespace').to.equal(403);
    });

    it('allows nothing beyond what the components call', () => {
      const op = 'gitspaces-operator';
      const gw = 'gitspaces-gateway';
      // What they do need.
      expect(can(op, 'update', 'gitspaces.gitspaces.dev/status')).to.equal(true);
      expect(can(op, 'get', 'secrets', DEV)).to.equal(true);
      expect(can(op, 'create', 'secrets', NS)).to.equal(true);
      expect(can(op, 'watch', 'secrets', NS)).to.equal(true);
      expect(can(gw, 'watch', 'secrets/gitspaces-hop-key', NS)).to.equal(true);
      expect(can(op, 'update', 'leases.coordination.k8s.io/gitspaces-operator', NS)).to.equal(true);
      expect(can(gw, 'watch', 'gitspaces.gitspaces.dev')).to.equal(true);
      expect(can(gw, 'create', 'configmaps', NS), 'single sign-on sessions').to.equal(true);
      // What they must not.
      for (const [sa, verb, resource, ns] of [
        [op, 'get', 'configmaps', undefined], [op, 'create', 'pods', undefined], [op, 'delete', 'gitspaceinfras.gitspaces.dev', undefined],
        [op, 'create', 'gitspaceinfras.gitspaces.dev', undefined], [op, 'update', 'leases.coordination.k8s.io/other', NS],
        [op, 'get', 'leases.coordination.k8s.io', 'kube-system'], [op, 'create', 'deployments.apps', NS], [op, 'escalate', 'clusterroles.rbac.authorization.k8s.io', undefined],
        [gw, 'create', 'secrets', DEV], [gw, 'update', 'gitspaces.gitspaces.dev', undefined], [gw, 'patch', 'gitspaces.gitspaces.dev/status', undefined],
        [gw, 'get', 'secrets', DEV], [gw, 'list', 'secrets', undefined], [gw, 'watch', 'secrets', NS], [gw, 'get', 'secrets/gitspaces-enrolment', NS],
        [op, 'create', 'secrets', DEV], [op, 'list', 'secrets', DEV], [op, 'watch', 'secrets', undefined], [op, 'update', 'secrets', undefined],
        [op, 'patch', 'secrets', NS], [op, 'delete', 'secrets', undefined],
        [gw, 'get', 'configmaps', undefined], [gw, 'create', 'configmaps', DEV], [gw, 'create', 'events.events.k8s.io', undefined],
      ] as [string, string, string, string | undefined][]) {
        expect(can(sa, verb, resource, ns), `${sa} ${verb} ${resource}${ns ? ` in ${ns}` : ''}`).to.equal(false);
      }
    });
  });
});
