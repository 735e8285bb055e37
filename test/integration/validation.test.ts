/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return --
   the table's mutations poke into untyped manifests on purpose */
// Bad input is rejected by the real API server with a message that names the offending field.
// Each row: a valid base manifest, one mutation, the field the error must name and what it says.
import { expect } from 'chai';
import { testCluster } from '../cluster/current.ts';
import { clone, resourcePath, statusMessage, type Manifest } from '../support/resources.ts';

type Obj = Record<string, unknown>;
type Spec = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- test mutations poke anywhere

const gitspace = (): Manifest => ({
  apiVersion: 'gitspaces.dev/v1alpha1',
  kind: 'Gitspace',
  metadata: { name: 'valid', namespace: 'default' },
  spec: {
    infraRef: { name: 'local' },
    owner: 'alice@example.com',
    repository: { url: 'https://github.com/acme/app.git', ref: 'main' },
    machineType: 'small',
    ide: { type: 'vscode-web' },
  },
});

const gcpInfra = (): Manifest => ({
  apiVersion: 'gitspaces.dev/v1alpha1',
  kind: 'GitspaceInfra',
  metadata: { name: 'valid-gcp' },
  spec: {
    provider: {
      gcp: {
        project: 'acme-devenvs',
        subnetworks: [{ region: 'europe-west1', name: 'sub' }],
        zones: ['europe-west1-b'],
      },
    },
    image: 'projects/acme-devenvs/global/images/family/ubuntu',
    machineTypes: [{ name: 'standard', providerType: 'e2-standard-4' }],
    allowedNamespaces: {}, gateway: { domain: 'gitspaces.example.com', egressRanges: ['10.8.0.0/14'] },
    pool: [{ machineType: 'standard', zone: 'europe-west1-b', minReady: 1, max: 2 }],
    auth: { issuer: 'https://login.example.com', audience: 'gitspaces' },
  },
});

const awsInfra = (): Manifest => ({
  apiVersion: 'gitspaces.dev/v1alpha1',
  kind: 'GitspaceInfra',
  metadata: { name: 'valid-aws' },
  spec: {
    provider: {
      aws: {
        region: 'eu-west-1',
        subnets: [{ zone: 'eu-west-1a', subnetId: 'subnet-0a1b2c3d4e5f60718' }],
        securityGroupIds: ['sg-0123456789abcdef0'],
      },
    },
    image: 'ami-0abcdef1234567890',
    machineTypes: [{ name: 'standard', providerType: 't3.large' }],
    allowedNamespaces: {}, gateway: { domain: 'gitspaces.example.org', egressRanges: ['10.8.0.0/14'] },
  },
});

const localInfra = (): Manifest => ({
  apiVersion: 'gitspaces.dev/v1alpha1',
  kind: 'GitspaceInfra',
  metadata: { name: 'valid-local' },
  spec: { provider: { local: {} }, machineTypes: [{ name: 'small', providerType: 'local' }], allowedNamespaces: {}, gateway: { domain: 'gitspaces.localhost' } },
});

interface Row {
  name: string;
  base: () => Manifest;
  /** Mutation for a create. */
  create?: (m: Manifest, spec: Spec) => void;
  /** Mutation for an update of a created base object. */
  update?: (m: Manifest, spec: Spec) => void;
  /** The field the message must name, as the API server prints it. */
  field: string;
  /** What the message must say about it. */
  says: RegExp;
  /** Ask for strict field validation, as kubectl apply does. */
  strict?: boolean;
}

const rows: Row[] = [
  // --- Gitspace: required fields, enums, formats ------------------------------------------------
  { name: 'missing owner', base: gitspace, create: (_, s) => delete s.owner, field: 'spec.owner', says: /Required value/ },
  { name: 'missing repository', base: gitspace, create: (_, s) => delete s.repository, field: 'spec.repository', says: /Required value/ },
  { name: 'missing infraRef', base: gitspace, create: (_, s) => delete s.infraRef, field: 'spec.infraRef', says: /Required value/ },
  { name: 'empty owner', base: gitspace, create: (_, s) => (s.owner = ''), field: 'spec.owner', says: /at least 1 chars/ },
  { name: 'unknown IDE', base: gitspace, create: (_, s) => (s.ide = { type: 'emacs' }), field: 'spec.ide.type', says: /Unsupported value: "emacs"/ },
  { name: 'jetbrains without product', base: gitspace, create: (_, s) => (s.ide = { type: 'jetbrains' }), field: 'spec.ide.product', says: /product is required for type jetbrains/ },
  { name: 'product on vscode-web', base: gitspace, create: (_, s) => (s.ide = { type: 'vscode-web', product: 'goland' }), field: 'spec.ide.product', says: /not allowed otherwise/ },
  { name: 'unknown JetBrains product', base: gitspace, create: (_, s) => (s.ide = { type: 'jetbrains', product: 'notepad' }), field: 'spec.ide.product', says: /Unsupported value: "notepad"/ },
  { name: 'repository URL that is not a URL', base: gitspace, create: (_, s) => (s.repository.url = 'not a url'), field: 'spec.repository.url', says: /must be an https, http, ssh, git or file URL/ },
  { name: 'repository URL with ftp scheme', base: gitspace, create: (_, s) => (s.repository.url = 'ftp://example.com/r.git'), field: 'spec.repository.url', says: /must be an https, http, ssh, git or file URL/ },
  { name: 'credentials in the repository URL', base: gitspace, create: (_, s) => (s.repository.url = 'https://bob:hunter2@github.com/acme/app.git'), field: 'spec.repository.url', says: /must not embed credentials/ },
  { name: 'a token as the user of an https URL', base: gitspace, create: (_, s) => (s.repository.url = 'https://ghp_0123456789abcdef@github.com/acme/app.git'), field: 'spec.repository.url', says: /must not embed credentials/ },
  { name: 'credentials in an upper-case scheme', base: gitspace, create: (_, s) => (s.repository.url = 'HTTPS://bob:hunter2@github.com/acme/app.git'), field: 'spec.repository.url', says: /must not embed credentials/ },
  { name: 'a password in an ssh URL', base: gitspace, create: (_, s) => (s.repository.url = 'ssh://git:hunter2@github.com/acme/app.git'), field: 'spec.repository.url', says: /must not embed credentials/ },
  { name: 'a git ref with a control character', base: gitspace, create: (_, s) => (s.repository.ref = 'main\u001b[31m'), field: 'spec.repository.ref', says: /should match/ },
  { name: 'bad git ref', base: gitspace, create: (_, s) => (s.repository.ref = 'feature..x'), field: 'spec.repository.ref', says: /not a valid git ref/ },
  { name: 'git ref with a space', base: gitspace, create: (_, s) => (s.repository.ref = 'my branch'), field: 'spec.repository.ref', says: /should match/ },
  { name: 'bad desired state', base: gitspace, create: (_, s) => (s.state = 'Paused'), field: 'spec.state', says: /Unsupported value: "Paused"/ },
  { name: 'idleTimeout not a duration', base: gitspace, create: (_, s) => (s.idleTimeout = 'forever'), field: 'spec.idleTimeout', says: /should match/ },
  { name: 'idleTimeout too short', base: gitspace, create: (_, s) => (s.idleTimeout = '1m'), field: 'spec.idleTimeout', says: /between 5m and 168h/ },
  { name: 'idleTimeout too long', base: gitspace, create: (_, s) => (s.idleTimeout = '400h'), field: 'spec.idleTimeout', says: /between 5m and 168h/ },
  { name: 'port out of range', base: gitspace, create: (_, s) => (s.ports = [{ port: 70000 }]), field: 'spec.ports[0].port', says: /less than or equal to 65535/ },
  { name: 'port zero', base: gitspace, create: (_, s) => (s.ports = [{ port: 0 }]), field: 'spec.ports[0].port', says: /greater than or equal to 1/ },
  { name: 'duplicate port', base: gitspace, create: (_, s) => (s.ports = [{ port: 3000 }, { port: 3000 }]), field: 'spec.ports[1]', says: /Duplicate value/ },
  { name: 'bad port visibility', base: gitspace, create: (_, s) => (s.ports = [{ port: 3000, visibility: 'everyone' }]), field: 'spec.ports[0].visibility', says: /Unsupported value: "everyone"/ },
  { name: 'bad env var name', base: gitspace, create: (_, s) => (s.env = [{ name: '1BAD', value: 'x' }]), field: 'spec.env[0].name', says: /should match/ },
  { name: 'duplicate env var', base: gitspace, create: (_, s) => (s.env = [{ name: 'A', value: '1' }, { name: 'A', value: '2' }]), field: 'spec.env[1]', says: /Duplicate value/ },
  { name: 'not an ssh public key', base: gitspace, create: (_, s) => (s.sshPublicKeys = ['hello world']), field: 'spec.sshPublicKeys[0]', says: /should match/ },
  { name: 'devcontainer path escaping the repo', base: gitspace, create: (_, s) => (s.devcontainer = { path: '../../etc/passwd' }), field: 'spec.devcontainer.path', says: /relative path inside the repository/ },
  { name: 'absolute devcontainer path', base: gitspace, create: (_, s) => (s.devcontainer = { path: '/etc/passwd' }), field: 'spec.devcontainer.path', says: /relative path inside the repository/ },
  { name: 'machineType not a DNS label', base: gitspace, create: (_, s) => (s.machineType = 'Large_Type'), field: 'spec.machineType', says: /should match/ },
  { name: 'sharedWith duplicates', base: gitspace, create: (_, s) => (s.sharedWith = ['bob', 'bob']), field: 'spec.sharedWith[1]', says: /Duplicate value/ },
  { name: "name with '--'", base: gitspace, create: (m) => (m.metadata.name = 'my--space'), field: 'metadata.name', says: /not contain '--'/ },
  { name: 'name that reads like a port host (starts with a digit)', base: gitspace, create: (m) => (m.metadata.name = '3000'), field: 'metadata.name', says: /must start with a letter/ },
  { name: 'name too long for a DNS label', base: gitspace, create: (m) => (m.metadata.name = 'a'.repeat(41)), field: 'metadata.name', says: /may not be more than 40 bytes|at most 40/ },
  { name: 'unknown field (typo)', base: gitspace, create: (_, s) => (s.ownr = 'alice'), field: 'spec.ownr', says: /unknown field/, strict: true },
  // --- Gitspace: immutable fields -------------------------------------------------------------
  { name: 'repository.url changed', base: gitspace, update: (_, s) => (s.repository.url = 'https://github.com/acme/other.git'), field: 'spec.repository.url', says: /repository.url is immutable/ },
  { name: 'infraRef changed', base: gitspace, update: (_, s) => (s.infraRef = { name: 'other' }), field: 'spec.infraRef', says: /infraRef is immutable/ },
  // --- GitspaceInfra ---------------------------------------------------------------------------
  { name: 'two providers', base: gcpInfra, create: (_, s) => (s.provider.local = {}), field: 'spec.provider', says: /exactly one of gcp, aws or local/ },
  { name: 'no provider', base: localInfra, create: (_, s) => (s.provider = {}), field: 'spec.provider', says: /exactly one of gcp, aws or local/ },
  { name: 'gcp without image', base: gcpInfra, create: (_, s) => delete s.image, field: 'spec.image', says: /image is required for the gcp and aws providers/ },
  { name: 'aws image that is not an AMI', base: awsInfra, create: (_, s) => (s.image = 'ubuntu-24.04'), field: 'spec.image', says: /AMI id/ },
  { name: 'gcp image in the wrong form', base: gcpInfra, create: (_, s) => (s.image = 'ubuntu-2404'), field: 'spec.image', says: /projects\/<project>\/global\/images/ },
  { name: 'pool minReady above max', base: gcpInfra, create: (_, s) => (s.pool[0].minReady = 5), field: 'spec.pool[0].minReady', says: /minReady must not exceed max/ },
  { name: 'negative pool size', base: gcpInfra, create: (_, s) => (s.pool[0].max = -1), field: 'spec.pool[0].max', says: /greater than or equal to 0/ },
  { name: 'pool of an unknown machine type', base: gcpInfra, create: (_, s) => (s.pool[0].machineType = 'huge'), field: 'spec.pool', says: /must name one of spec.machineTypes/ },
  { name: 'a pre-pull image that would be a docker option', base: gcpInfra, create: (_, s) => (s.pool[0].prePullImages = ['--help']), field: 'spec.pool[0].prePullImages[0]', says: /should match/ },
  { name: 'more than 8 pre-pull images', base: gcpInfra, create: (_, s) => (s.pool[0].prePullImages = Array.from({ length: 9 }, (_x, i) => `registry.example/img:${String(i)}`)), field: 'spec.pool[0].prePullImages', says: /must have at most 8 items/ },
  { name: 'pool zone outside the gcp zones', base: gcpInfra, create: (_, s) => (s.pool[0].zone = 'europe-west1-d'), field: 'spec.pool', says: /one of spec.provider.gcp.zones/ },
  { name: 'gcp zone without a subnetwork', base: gcpInfra, create: (_, s) => s.provider.gcp.zones.push('us-central1-a'), field: 'spec.provider.gcp.zones', says: /needs a subnetwork for its region/ },
  { name: 'bad gcp project id', base: gcpInfra, create: (_, s) => (s.provider.gcp.project = 'Acme'), field: 'spec.provider.gcp.project', says: /should match|at least 6 chars/ },
  { name: 'aws subnet outside the region', base: awsInfra, create: (_, s) => (s.provider.aws.subnets[0].zone = 'us-east-1a'), field: 'spec.provider.aws.subnets', says: /must be in spec.provider.aws.region/ },
  { name: 'bad aws subnet id', base: awsInfra, create: (_, s) => (s.provider.aws.subnets[0].subnetId = 'sub-123'), field: 'spec.provider.aws.subnets[0].subnetId', says: /should match/ },
  { name: 'aws without security groups', base: awsInfra, create: (_, s) => (s.provider.aws.securityGroupIds = []), field: 'spec.provider.aws.securityGroupIds', says: /at least 1 items/ },
  { name: 'no machine types', base: localInfra, create: (_, s) => (s.machineTypes = []), field: 'spec.machineTypes', says: /at least 1 items/ },
  { name: 'disk too small', base: localInfra, create: (_, s) => (s.machineTypes[0].diskSizeGB = 1), field: 'spec.machineTypes[0].diskSizeGB', says: /greater than or equal to 10/ },
  { name: 'namespace selector: In without values', base: localInfra, create: (_, s) => (s.allowedNamespaces = { matchExpressions: [{ key: 'team', operator: 'In' }] }), field: 'spec.allowedNamespaces.matchExpressions[0]', says: /In and NotIn need values/ },
  { name: 'namespace selector: unknown operator', base: localInfra, create: (_, s) => (s.allowedNamespaces = { matchExpressions: [{ key: 'team', operator: 'Like', values: ['a'] }] }), field: 'spec.allowedNamespaces.matchExpressions[0].operator', says: /supported values/ },
  { name: 'both a JWKS URI and a static key set', base: gcpInfra, create: (_, s) => (s.auth = { ...(s.auth as object), jwksURI: 'https://login.example.com/keys', jwksSecretRef: { name: 'jwks' } }), field: 'spec.auth.jwksSecretRef', says: /set jwksURI or jwksSecretRef, not both/ },
  { name: 'cloud infra without egress ranges', base: gcpInfra, create: (_, s) => delete s.gateway.egressRanges, field: 'spec.gateway.egressRanges', says: /required for the gcp and aws providers/ },
  { name: 'egress ranges open to everyone', base: awsInfra, create: (_, s) => (s.gateway.egressRanges = ['0.0.0.0/0']), field: 'spec.gateway.egressRanges', says: /must be a \/8 or narrower/ },
  { name: 'egress ranges open to every IPv6 address', base: awsInfra, create: (_, s) => (s.gateway.egressRanges = ['10.8.0.0/14', '::/0']), field: 'spec.gateway.egressRanges', says: /must be a \/8 or narrower/ },
  { name: 'egress ranges open to everyone in two halves', base: awsInfra, create: (_, s) => (s.gateway.egressRanges = ['0.0.0.0/1', '128.0.0.0/1']), field: 'spec.gateway.egressRanges', says: /must be a \/8 or narrower/ },
  { name: 'infra name too long for its firewall rule', base: gcpInfra, create: (m) => (m.metadata.name = `i${'x'.repeat(46)}`), field: 'metadata.name', says: /at most 46|may not be more than 46/ },
  { name: 'infra name with a dot (not a GCE name)', base: gcpInfra, create: (m) => (m.metadata.name = 'gcp.europe'), field: 'metadata.name', says: /must be a DNS label/ },
  { name: 'gateway port out of range', base: localInfra, create: (_, s) => (s.gateway.port = 65536), field: 'spec.gateway.port', says: /less than or equal to 65535/ },
  { name: 'gateway port zero', base: localInfra, create: (_, s) => (s.gateway.port = 0), field: 'spec.gateway.port', says: /greater than or equal to 1/ },
  { name: 'egress range not a CIDR', base: awsInfra, create: (_, s) => (s.gateway.egressRanges = ['pods']), field: 'spec.gateway.egressRanges', says: /must be a CIDR/ },
  { name: 'plain-http issuer on a public host', base: localInfra, create: (_, s) => (s.auth = { issuer: 'http://login.example.com', audience: 'g' }), field: 'spec.auth.issuer', says: /must be an https URL/ },
  { name: 'infra idleTimeout too short', base: localInfra, create: (_, s) => (s.idleTimeout = '30s'), field: 'spec.idleTimeout', says: /between 5m and 168h/ },
  { name: 'provider kind changed', base: localInfra, update: (_, s) => (s.provider = gcpInfra().spec!.provider, s.image = gcpInfra().spec!.image), field: 'spec.provider', says: /provider kind is immutable/ },
];

describe('invalid manifests are rejected by the real API server, naming the field', () => {
  const cluster = () => testCluster();
  const created: Manifest[] = [];

  after(async () => {
    for (const m of created) await cluster().request('DELETE', resourcePath(m, true));
  });

  it(`has at least 20 rows (${rows.length})`, () => {
    expect(rows.length).to.be.greaterThanOrEqual(20);
  });

  for (const row of rows) {
    it(`rejects: ${row.name}`, async () => {
      const m = clone(row.base());
      let r;
      if (row.create) {
        row.create(m, m.spec as Spec);
        const q = `?dryRun=All${row.strict ? '&fieldValidation=Strict' : ''}`;
        r = await cluster().request('POST', resourcePath(m) + q, { body: m });
      } else {
        // Create the valid base for real (unique name), then change one field.
        m.metadata.name = `${m.metadata.name}-${created.length}-upd`;
        const c = await cluster().request('POST', resourcePath(m), { body: m });
        expect(c.status, statusMessage(c)).to.equal(201);
        created.push(m);
        // Read-modify-write, retried on conflict: an operator running meanwhile may touch it.
        for (let attempt = 0; attempt < 5; attempt++) {
          const live = (await cluster().request('GET', resourcePath(m, true))).json as Manifest;
          row.update!(live, live.spec as Spec);
          r = await cluster().request('PUT', resourcePath(live, true), { body: live });
          if (r.status !== 409) break;
        }
      }
      if (!r) throw new Error('no response');
      const msg = statusMessage(r);
      if (row.strict) {
        // Strict decoding fails before validation: 400 BadRequest naming the field in quotes.
        expect(r.status, msg).to.equal(400);
        expect(msg, 'message names the field').to.include(`"${row.field}"`);
      } else {
        expect(r.status, msg).to.equal(422);
        expect((r.json as Obj).reason, msg).to.equal('Invalid');
        // The field is named as `<path>:` in the message.
        expect(msg, 'message names the field').to.include(`${row.field}:`);
      }
      expect(msg).to.match(row.says);
    });
  }

  it('accepts each valid base unchanged (so the rows test one mutation each)', async () => {
    for (const base of [gitspace, gcpInfra, awsInfra, localInfra]) {
      const r = await cluster().request('POST', `${resourcePath(base())}?dryRun=All&fieldValidation=Strict`, { body: base() });
      expect(r.status, statusMessage(r)).to.equal(201);
    }
  });
});
