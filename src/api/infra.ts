// GitspaceInfra: where and how Gitspace VMs run (cluster-scoped, like a StorageClass).
import { conditions, DNS_LABEL, DURATION, idleDuration, retentionDuration, objectName, observedGeneration, secretKeyRef } from './common.ts';
import { array, boolean, enumeration, integer, object, record, string, withRules, type Infer } from './schema.ts';
import type { ObjectMeta } from './meta.ts';
import { API_VERSION, GITSPACE_INFRA } from './constants.ts';
import { poolSchedules } from './pool-schedule.ts';

const GCP_REGION = '^[a-z]+-[a-z]+[0-9]+$';
const GCP_ZONE = '^[a-z]+-[a-z]+[0-9]+-[a-z]$';
const AWS_REGION = '^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+$';
const AWS_ZONE = '^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+[a-z]$';

const gcpProvider = withRules(
  object(
    {
      project: string({
        description: 'GCP project id the VMs are created in.',
        minLength: 6,
        maxLength: 30,
        pattern: '^[a-z][-a-z0-9]{4,28}[a-z0-9]$',
      }),
      network: string({
        description: 'VPC network name or self link.',
        minLength: 1,
        maxLength: 1024,
        default: 'default',
      }),
      subnetworks: array(
        object(
          {
            region: string({ description: 'GCP region, e.g. europe-west1.', maxLength: 63, pattern: GCP_REGION }),
            name: string({ description: 'Subnetwork name or self link in that region.', minLength: 1, maxLength: 1024 }),
          },
          { description: 'The subnetwork used for VMs in one region.', required: ['region', 'name'] },
        ),
        { description: 'One subnetwork per region used by spec.provider.gcp.zones.', minItems: 1, maxItems: 32, listType: 'map', listMapKeys: ['region'] },
      ),
      zones: array(string({ description: 'A GCP zone, e.g. europe-west1-b.', maxLength: 63, pattern: GCP_ZONE }), {
        description: 'Zones VMs may be placed in, in order of preference (the next is tried when one is exhausted).',
        minItems: 1,
        maxItems: 32,
        listType: 'set',
      }),
      serviceAccount: string({
        description: 'Email of the service account attached to the VMs. None when empty.',
        format: 'email',
        maxLength: 254,
      }),
      credentialsSecretRef: secretKeyRef(
        'Secret holding a service account key (JSON) for the Compute API. Without it the operator uses ambient credentials (workload identity).',
      ),
    },
    { description: 'Run Gitspace VMs on Google Compute Engine.', required: ['project', 'subnetworks', 'zones'] },
  ),
  {
    rule: "self.zones.all(z, self.subnetworks.exists(s, z.startsWith(s.region + '-')))",
    message: 'every zone needs a subnetwork for its region',
    fieldPath: '.zones',
  },
);

const awsProvider = withRules(
  object(
    {
      region: string({ description: 'AWS region, e.g. eu-west-1.', maxLength: 32, pattern: AWS_REGION }),
      subnets: array(
        object(
          {
            zone: string({ description: 'Availability zone, e.g. eu-west-1a.', maxLength: 32, pattern: AWS_ZONE }),
            subnetId: string({ description: 'Subnet id in that zone.', maxLength: 32, pattern: '^subnet-([0-9a-f]{8}|[0-9a-f]{17})$' }),
          },
          { description: 'The subnet used for VMs in one availability zone.', required: ['zone', 'subnetId'] },
        ),
        {
          description: 'One subnet per availability zone, in order of preference (the next is tried when one has no capacity).',
          minItems: 1,
          maxItems: 32,
          listType: 'map',
          listMapKeys: ['zone'],
        },
      ),
      securityGroupIds: array(string({ description: 'A security group id.', maxLength: 32, pattern: '^sg-([0-9a-f]{8}|[0-9a-f]{17})$' }), {
        description: 'Security groups attached to the VMs; they should admit the agent port from the gateway only.',
        minItems: 1,
        maxItems: 5,
        listType: 'set',
      }),
      instanceProfile: string({
        description: 'IAM instance profile name or ARN attached to the VMs. None when empty.',
        maxLength: 2048,
        pattern: '^(arn:aws[a-z-]*:iam::[0-9]{12}:instance-profile/)?[\\w+=,.@/-]{1,128}$',
      }),
      credentialsSecretRef: secretKeyRef(
        'Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Without it the default credential chain (IRSA, instance role) is used.',
      ),
    },
    { description: 'Run Gitspace VMs on Amazon EC2.', required: ['region', 'subnets', 'securityGroupIds'] },
  ),
  {
    rule: 'self.subnets.all(s, s.zone.startsWith(self.region))',
    message: 'every subnet zone must be in spec.provider.aws.region',
    fieldPath: '.subnets',
  },
);

const localProvider = object(
  {
    baseDir: string({
      description: "Directory holding each instance's work directory (its 'disk'). Defaults to a directory under the operator's cache.",
      maxLength: 4096,
      pattern: '^/',
    }),
  },
  { description: 'Run Gitspaces as sandboxed processes on the operator host, for development and tests.' },
);

const provider = withRules(
  object(
    { gcp: gcpProvider, aws: awsProvider, local: localProvider },
    { description: 'The cloud the VMs run in: exactly one of gcp, aws or local.' },
  ),
  {
    rule: '[has(self.gcp), has(self.aws), has(self.local)].filter(x, x).size() == 1',
    message: 'exactly one of gcp, aws or local must be set',
  },
  {
    rule: 'has(self.gcp) == has(oldSelf.gcp) && has(self.aws) == has(oldSelf.aws) && has(self.local) == has(oldSelf.local)',
    message: 'the provider kind is immutable; create a new GitspaceInfra instead',
  },
);

const machineType = object(
  {
    name: string({ description: 'Name Gitspaces use in spec.machineType.', minLength: 1, maxLength: 63, pattern: DNS_LABEL }),
    providerType: string({
      description: 'The provider machine/instance type, e.g. e2-standard-4 or t3.large.',
      minLength: 1,
      maxLength: 128,
      pattern: '^[a-zA-Z0-9][-a-zA-Z0-9._]*$',
    }),
    diskSizeGB: integer({ description: 'Boot disk size in GB.', minimum: 10, maximum: 65536, default: 50 }),
    vcpus: integer({ description: 'vCPUs of the provider type, for spec.quotas maxVCPUs (required by them).', minimum: 1, maximum: 1024 }),
    diskType: string({ description: 'Provider disk type, e.g. pd-balanced or gp3. Provider default when empty.', maxLength: 64, pattern: '^[a-z0-9][-a-z0-9]*$' }),
    spot: boolean({
      description:
        'Spot VMs (GCE provisioningModel SPOT, EC2 spot with stop on interruption): cheaper, but the cloud may stop the VM at any time; the disk is kept. A preempted Gitspace shows as Stopped with reason Preempted until it is started again (wake or spec.state). Applies to VMs created after the change.',
      default: false,
    }),
  },
  { description: 'A machine type Gitspaces may ask for.', required: ['name', 'providerType'] },
);

const gateway = object(
  {
    domain: string({
      description: 'Base domain; each Gitspace is served at <name>--<namespace>.<domain> (wildcard DNS and certificate).',
      minLength: 1,
      maxLength: 200,
      pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?\\.)*[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
    }),
    tlsSecretRef: object(
      {
        name: objectName('Name of the kubernetes.io/tls Secret.'),
        namespace: objectName('Namespace of the Secret. Defaults to the namespace the operator runs in.'),
      },
      {
        description:
          "The wildcard certificate users are served (by the gateway's own TLS or the Ingress in front of it): links are https, and the infra controller checks it (present, valid now, covering *.<domain>) in GatewayReady. Plain HTTP links when unset (development only).",
        required: ['name'],
      },
    ),
    port: integer({
      description:
        "The port users reach the gateway on, when it is not the scheme's own (443 with tlsSecretRef, else 80): e.g. a NodePort, or a development gateway. Links in Gitspace status and the default agent bundle URL carry it.",
      minimum: 1,
      maximum: 65535,
    }),
    allowPublicPorts: boolean({
      description: "Whether a Gitspace's ports may be public (reachable without a token). Off: a port marked public is served as shared (any valid token of the issuer).",
      default: false,
    }),
    egressRanges: withRules(
      array(string({ description: 'A CIDR, e.g. 10.8.0.0/14.', maxLength: 43 }), {
        description:
          'Where the gateway and the operator connect to VMs from (the cluster\'s pod/node ranges or its NAT). The operator keeps a firewall rule (GCE) / security group (EC2) that admits the agent ports from these ranges only. Required for gcp and aws.',
        minItems: 1,
        maxItems: 64,
        listType: 'set',
      }),
      { rule: 'self.all(r, isCIDR(r))', message: 'every entry must be a CIDR such as 10.8.0.0/14' },
      // 0.0.0.0/0, ::/0 and their halves (0.0.0.0/1 + 128.0.0.0/1) alike: nothing wider than a /8 (IPv6 /16).
      {
        rule: 'self.all(r, !isCIDR(r) || cidr(r).prefixLength() >= (cidr(r).ip().family() == 4 ? 8 : 16))',
        message: 'every range must be a /8 or narrower (IPv6: /16): a wider one (0.0.0.0/0, ::/0, halves of them) opens the VM agents to (nearly) everyone',
      },
    ),
  },
  { description: 'The authenticated gateway in front of every Gitspace of this infra.', required: ['domain'] },
);

const selectorRequirement = withRules(
  object(
    {
      key: string({ description: 'The label key.', minLength: 1, maxLength: 317 }),
      operator: enumeration(['In', 'NotIn', 'Exists', 'DoesNotExist'] as const, { description: 'How the key relates to the values.' }),
      values: array(string({ description: 'A label value.', maxLength: 63 }), { description: 'Values for In and NotIn; empty for Exists and DoesNotExist.', maxItems: 64, listType: 'atomic' }),
    },
    { description: 'A label selector requirement.', required: ['key', 'operator'] },
  ),
  {
    rule: "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)",
    message: 'In and NotIn need values; Exists and DoesNotExist take none',
  },
);

/**
 * Which namespaces may run Gitspaces on this infra, by their labels. Absent: none (a platform
 * team opts namespaces in); `{}`: every namespace.
 */
const allowedNamespaces = object(
  {
    matchLabels: record(string({ description: 'A label value.', maxLength: 63 }), { description: 'Labels a namespace must have.', maxProperties: 64 }),
    matchExpressions: array(selectorRequirement, { description: 'Requirements a namespace\'s labels must meet (all of them).', maxItems: 32, listType: 'atomic' }),
  },
  {
    description:
      "The namespaces whose Gitspaces may use this infra, as a label selector on Namespaces (like a NetworkPolicy's namespaceSelector). Absent: no namespace may (the safe default; a Gitspace waits with NamespaceNotAllowed). {} admits every namespace.",
  },
);

/** A container image reference; never starting with '-' (it becomes an argument of `docker pull`). */
export const IMAGE_REF = '^[A-Za-z0-9][A-Za-z0-9._/:@-]*$';

const poolEntry = withRules(
  object(
    {
      machineType: string({ description: 'One of spec.machineTypes[].name.', minLength: 1, maxLength: 63, pattern: DNS_LABEL }),
      zone: string({ description: 'Zone the pooled VMs are created in.', minLength: 1, maxLength: 63 }),
      minReady: integer({ description: 'VMs kept booted and unclaimed; with schedules, the value while none of them has started in the last 8 days.', minimum: 0, maximum: 100, default: 0 }),
      max: integer({ description: 'Upper bound of pooled VMs (ready and provisioning).', minimum: 0, maximum: 1000 }),
      prePullImages: array(string({ description: 'An image reference (registry/repository:tag or @digest).', minLength: 1, maxLength: 256, pattern: IMAGE_REF }), {
        description:
          "Images each pooled VM pulls into its Docker while it waits to be claimed (the dev containers' base images): a Gitspace that claims it starts without the pull. Public images, or registries the VM's own identity can read; no credentials are sent to VMs for it.",
        maxItems: 8,
        listType: 'atomic',
      }),
      schedules: poolSchedules,
    },
    { description: 'A warm pool of pre-booted VMs for one machine type in one zone.', required: ['machineType', 'zone', 'max'] },
  ),
  { rule: 'self.minReady <= self.max', message: 'minReady must not exceed max', fieldPath: '.minReady' },
  { rule: '!has(self.schedules) || self.schedules.all(s, s.minReady <= self.max)', message: 'every schedules[].minReady must not exceed max', fieldPath: '.schedules' },
);

const httpsURL = (description: string) =>
  withRules(string({ description, minLength: 1, maxLength: 2048 }), {
    rule: "isURL(self) && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && url(self).getHostname() in ['localhost', '127.0.0.1', '::1']))",
    message: 'must be an https URL (http only for localhost)',
  });

/** A JWT claim name: letters, digits and a few separators (no dots: nested claims are not read). */
const CLAIM_NAME = '^[A-Za-z_][A-Za-z0-9_:/-]*$';

const oidc = object(
  {
    issuer: httpsURL("The OpenID provider browsers sign in with, when it is not auth.issuer (say, tokens for API clients come from a control plane and people sign in with the company's provider): its usernameClaim must name users as the tokens do."),
    clientSecretRef: object(
      {
        name: objectName('Name of the Secret: keys client-id and client-secret (none for a public client, which then relies on PKCE alone).'),
      },
      {
        description:
          "The gateway's OAuth client at the issuer: a Secret in the gateway's namespace named in the chart's gateway.oidcClientSecrets (the gateway may read no other Secret). Register https://<gateway.domain>/.gitspaces/oidc/callback as its redirect URI and https://<gateway.domain>/.gitspaces/signed-out as its post-logout redirect URI.",
        required: ['name'],
      },
    ),
    scopes: array(string({ description: 'A scope.', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_:./-]+$' }), {
      description: 'Scopes asked for (openid is always added). Default: openid profile email offline_access (the refresh token that keeps a session alive all day).',
      maxItems: 16,
      listType: 'set',
    }),
    authorizationParameters: record(string({ description: 'A parameter value.', maxLength: 256 }), {
      description: "Extra parameters of the authorization request, e.g. Google's access_type: offline and prompt: consent (its way to a refresh token). The flow's own (state, nonce, PKCE, redirect_uri…) cannot be overridden.",
      maxProperties: 8,
    }),
    sessionMaxAge: withRules(string({ description: 'How long a browser session lasts at most, however often it is refreshed. Default 12h.', maxLength: 32, pattern: DURATION, default: '12h' }), {
      rule: "duration(self) >= duration('5m') && duration(self) <= duration('720h')",
      message: 'must be between 5m and 720h',
    }),
  },
  {
    description:
      "Single sign-on for browsers: a request without a session is sent through the issuer's OpenID Connect login (authorization code with PKCE; discovery from <issuer>/.well-known/openid-configuration) on the infra's gateway domain, then holds a session the gateway refreshes with the refresh token and ends at logout (/.gitspaces/logout). API clients keep using Bearer tokens.",
    required: ['clientSecretRef'],
  },
);

const auth = withRules(
  object(
    {
      issuer: httpsURL('Token issuer; the iss claim must equal it.'),
      jwksURI: httpsURL("Where the issuer's signing keys are. Defaults to <issuer>/.well-known/jwks.json."),
      jwksSecretRef: secretKeyRef(
        "A static key set instead of fetching one: a Secret holding the issuer's JWKS (JSON; key jwks.json unless `key` says otherwise), in the gateway's namespace (the default) and named in the chart's gateway.keySetSecrets: the gateway may read no other Secret.",
      ),
      audience: string({ description: 'Expected aud claim of Bearer tokens (API clients).', minLength: 1, maxLength: 256 }),
      usernameClaim: string({
        description: "The claim that names the user, matched against a Gitspace's owner and sharedWith (tokens and single sign-on alike): sub (the default), or e.g. email or preferred_username where the issuer's sub is opaque.",
        minLength: 1, maxLength: 64, pattern: CLAIM_NAME, default: 'sub',
      }),
      groupsClaim: string({
        description: "The claim listing the user's groups (an array of strings, or one string), matched against sharedWith entries group:<name>.",
        minLength: 1, maxLength: 64, pattern: CLAIM_NAME, default: 'groups',
      }),
      oidc,
    },
    { description: 'How the gateway verifies user tokens (JWT).', required: ['issuer', 'audience'] },
  ),
  { rule: '!(has(self.jwksURI) && has(self.jwksSecretRef))', message: 'set jwksURI or jwksSecretRef, not both', fieldPath: '.jwksSecretRef' },
);

const quotaLimits = (description: string) => object(
  {
    maxRunning: integer({ description: 'Gitspaces running (or starting) at once.', minimum: 0, maximum: 100_000 }),
    maxVCPUs: integer({ description: 'vCPUs of their machine types (spec.machineTypes[].vcpus), summed.', minimum: 0, maximum: 10_000_000 }),
  },
  { description: `${description} Absent fields are no limit.` },
);

const quotas = object(
  {
    perNamespace: quotaLimits('For each namespace, over its Gitspaces on this infra.'),
    perOwner: quotaLimits('For each owner (spec.owner), over their Gitspaces on this infra in all namespaces.'),
  },
  {
    description:
      'Quotas: a Gitspace that would go over one waits (Pending, condition Ready=False reason QuotaExceeded naming the quota and the usage) and starts when capacity frees. Starts are admitted one at a time, so concurrent creates never exceed a quota.',
  },
);

const vm = object(
  {
    sudo: boolean({
      description: "Whether the developer's `gitspace` user may use sudo on the VM (as in Codespaces). Default true.",
      default: true,
    }),
    installDocker: boolean({
      description:
        "When a Gitspace's devcontainer.json asks for a container and the VM image has no Docker, install the distribution's Docker (apt: docker.io, plus docker-compose for a compose file; dnf: docker) on that VM at first need. Needs the distribution's package mirror. Default false: bake Docker into the image instead (images/bake.sh does).",
      default: false,
    }),
    agentBundleBaseURL: withRules(string({
      description:
        'Where VMs download the agent bundle from: <base>/<version>/gitspaces-agent-<version>-linux-<arch>.tar.gz (a mirror for air-gapped networks). Defaults to the gateway (https://<gateway.domain>/.gitspaces/agent). The startup script checks the sha256 the operator wrote into it, so plain http is allowed.',
      minLength: 1,
      maxLength: 2048,
    }), {
      rule: "isURL(self) && url(self).getScheme() in ['https', 'http']",
      message: 'must be an http or https URL',
    }),
  },
  { description: 'How VMs are set up: the developer user and where the agent comes from.' },
);

/**
 * Constraints on metadata.name: the infra's cloud resources are named after it, and the longest,
 * `gitspaces-<name>-agents` (GCE firewall rule, EC2 security group), must be a GCE name (a DNS
 * label, 63 at most).
 */
export const MAX_INFRA_NAME = 46;
export const infraNameSchema = withRules(
  string({ description: 'Name of the GitspaceInfra.', maxLength: MAX_INFRA_NAME }),
  {
    rule: "self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
    message: `must be a DNS label (lowercase letters, digits and '-', starting with a letter) of at most ${String(MAX_INFRA_NAME)} characters: it names the firewall rule / security group gitspaces-<name>-agents`,
  },
);

export const infraSpecSchema = withRules(
  object(
    {
      provider,
      machineTypes: array(machineType, {
        description: 'Machine types offered to Gitspaces.',
        minItems: 1,
        maxItems: 32,
        listType: 'map',
        listMapKeys: ['name'],
      }),
      image: string({
        description: 'Boot image: a GCE image (projects/<p>/global/images/[family/]<name>) or an AMI id. Required for gcp and aws.',
        minLength: 1,
        maxLength: 1024,
      }),
      allowedNamespaces,
      gateway,
      pool: array(poolEntry, {
        description: 'Warm pools of pre-booted VMs.',
        maxItems: 64,
        listType: 'map',
        listMapKeys: ['machineType', 'zone'],
      }),
      auth,
      idleTimeout: idleDuration('Default idle time after which a Running Gitspace is stopped; 0 disables.', '1h'),
      deleteAfterStopped: retentionDuration("Default retention of stopped Gitspaces: after this long stopped, a Gitspace's VM and disk are deleted and it shows as Archived (started again, it gets a new VM from the repository). 0 (the default) never. A Gitspace's spec.deleteAfterStopped overrides it.", '0'),
      maxRunTime: idleDuration("Default run-time limit: a Running Gitspace is stopped this long after it started, busy or not (Cloud Workstations' runningTimeout); 0 (the default) never. A Gitspace's spec.maxRunTime overrides it.", '0'),
      quotas,
      failedStopAfter: idleDuration('How long the VM of a Failed Gitspace keeps running (for a look at what failed) before it is stopped; its disk is kept for inspection. 0 never stops it.', '30m'),
      vm,
    },
    { description: 'Desired state of a GitspaceInfra.', required: ['provider', 'machineTypes', 'gateway'] },
  ),
  {
    rule: 'has(self.provider.local) || has(self.image)',
    message: 'image is required for the gcp and aws providers',
    fieldPath: '.image',
    reason: 'FieldValueRequired',
  },
  {
    rule: "!has(self.quotas) || !((has(self.quotas.perNamespace) && has(self.quotas.perNamespace.maxVCPUs)) || (has(self.quotas.perOwner) && has(self.quotas.perOwner.maxVCPUs))) || self.machineTypes.all(m, has(m.vcpus))",
    message: 'a maxVCPUs quota needs vcpus on every machine type',
    fieldPath: '.machineTypes',
  },
  {
    rule: 'has(self.provider.local) || has(self.gateway.egressRanges)',
    message: 'egressRanges is required for the gcp and aws providers: the VM firewall admits the agent ports from these ranges only',
    fieldPath: '.gateway.egressRanges',
    reason: 'FieldValueRequired',
  },
  {
    rule: "!has(self.provider.aws) || !has(self.image) || self.image.matches('^ami-([0-9a-f]{8}|[0-9a-f]{17})$')",
    message: 'an aws image must be an AMI id (ami-…)',
    fieldPath: '.image',
  },
  {
    rule: "!has(self.provider.gcp) || !has(self.image) || self.image.matches('^(https://www.googleapis.com/compute/v1/)?projects/[-a-z0-9]+/global/images/(family/)?[-a-z0-9]+$')",
    message: 'a gcp image must be projects/<project>/global/images/[family/]<name>',
    fieldPath: '.image',
  },
  {
    rule: '!has(self.pool) || self.pool.all(p, self.machineTypes.exists(m, m.name == p.machineType))',
    message: 'every pool entry must name one of spec.machineTypes',
    fieldPath: '.pool',
  },
  {
    rule: '!has(self.pool) || !has(self.provider.gcp) || self.pool.all(p, p.zone in self.provider.gcp.zones)',
    message: 'every pool zone must be one of spec.provider.gcp.zones',
    fieldPath: '.pool',
  },
  {
    rule: '!has(self.pool) || !has(self.provider.aws) || self.pool.all(p, self.provider.aws.subnets.exists(s, s.zone == p.zone))',
    message: 'every pool zone must have a subnet in spec.provider.aws.subnets',
    fieldPath: '.pool',
  },
);

const poolStatus = object(
  {
    machineType: string({ description: 'Machine type of this pool.', maxLength: 63 }),
    zone: string({ description: 'Zone of this pool.', maxLength: 63 }),
    ready: integer({ description: 'Booted, unclaimed VMs.', minimum: 0 }),
    provisioning: integer({ description: 'VMs still booting.', minimum: 0 }),
    minReady: integer({ description: "The minReady in force now (the entry's schedules, else its own).", minimum: 0 }),
    nextChange: string({ description: 'When the scheduled minReady next changes (absent: no change within 400 days, or no schedules).', format: 'date-time', maxLength: 64 }),
  },
  { description: 'Observed state of one warm pool.', required: ['machineType', 'zone'] },
);

export const infraStatusSchema = object(
  {
    observedGeneration,
    provider: enumeration(['gcp', 'aws', 'local'] as const, { description: 'The provider kind in use.' }),
    conditions: conditions('Ready, CredentialsValid, NetworkReady, GatewayReady and PoolReady.'),
    pool: array(poolStatus, { description: 'Warm pool counts.', maxItems: 64, listType: 'map', listMapKeys: ['machineType', 'zone'] }),
    gitspaces: record(integer({ description: 'Gitspaces in this phase.', minimum: 0 }), {
      description: 'Gitspaces on this infra by phase.',
      maxProperties: 16,
    }),
  },
  { description: 'Observed state of a GitspaceInfra.' },
);

export type GitspaceInfraSpec = Infer<typeof infraSpecSchema>;
export type GitspaceInfraStatus = Infer<typeof infraStatusSchema>;
export type MachineType = GitspaceInfraSpec['machineTypes'][number];
export type ProviderKind = NonNullable<GitspaceInfraStatus['provider']>;

export interface GitspaceInfra {
  apiVersion: typeof API_VERSION;
  kind: typeof GITSPACE_INFRA.kind;
  metadata: ObjectMeta;
  spec: GitspaceInfraSpec;
  status?: GitspaceInfraStatus;
}
