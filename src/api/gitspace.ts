// Gitspace: one developer environment (namespaced).
import { conditions, DNS_LABEL, idleDuration, objectName, observedGeneration, retentionDuration } from './common.ts';
import {
  API_VERSION, DESIRED_STATES, GITSPACE, IDE_TYPES, JETBRAINS_PRODUCTS, MAX_GITSPACE_NAME, PHASES,
  MAX_FIELD_MANAGER, MAX_REQUESTED_BY, PORT_PROTOCOLS, PORT_VISIBILITIES, REQUEST_ACTIONS, REQUEST_SOURCES,
  SSH_HOST_KEY_PATTERN, AUTO_STOP_REASONS,
} from './constants.ts';
import { ACTIVITY_SOURCES } from './agent.ts';
import type { ObjectMeta } from './meta.ts';
import { array, boolean, enumeration, integer, object, record, string, withRules, type Infer } from './schema.ts';

const subject = (description: string) => string({ description, minLength: 1, maxLength: 256 });

const repository = object(
  {
    url: withRules(
      string({ description: 'Git URL to clone: https://, ssh://, git://, file:// (local provider) or scp-like user@host:path.', minLength: 1, maxLength: 2048 }),
      {
        rule: "self.matches('^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/].*$') || (isURL(self) && url(self).getScheme() in ['https', 'http', 'ssh', 'git', 'file'])",
        message: 'must be an https, http, ssh, git or file URL, or user@host:path',
      },
      { rule: 'self == oldSelf', message: 'repository.url is immutable; create a new Gitspace instead' },
      // user:password@ in any scheme, and a bare user@ on http(s), where it is a token (https://ghp_…@host).
      { rule: "!self.matches('(?i)^[a-z][a-z0-9+.-]*://[^/@]*:[^/@]*@') && !self.matches('(?i)^https?://[^/@]+@')", message: 'must not embed credentials; use repository.credentialsSecretRef' },
    ),
    ref: withRules(
      string({
        description: 'Branch, tag or commit to check out. The remote default branch when empty.',
        maxLength: 255,
        pattern: '^[^\\s\\x00-\\x1f\\x7f~^:?*\\[\\\\]+$',
      }),
      { rule: "!self.contains('..') && !self.endsWith('.lock') && !self.endsWith('/') && !self.startsWith('-')", message: 'is not a valid git ref' },
    ),
    credentialsSecretRef: object(
      {
        name: objectName('Name of a Secret in the Gitspace namespace with keys `password` (or `token`) and optional `username`.'),
      },
      { description: 'Credentials for a private repository, handed to git through a credential helper.', required: ['name'] },
    ),
  },
  { description: 'The repository to clone.', required: ['url'] },
);

const devcontainer = object(
  {
    path: withRules(
      string({
        description: 'Path of devcontainer.json inside the repository.',
        minLength: 1,
        maxLength: 1024,
        default: '.devcontainer/devcontainer.json',
      }),
      { rule: "!self.startsWith('/') && !self.split('/').exists(p, p == '..')", message: 'must be a relative path inside the repository' },
    ),
  },
  { description: 'Where the devcontainer definition is.', default: {} },
);

const ide = withRules(
  object(
    {
      type: enumeration(IDE_TYPES, {
        description: 'vscode-web runs VS Code in the browser; vscode, cursor, windsurf and jetbrains connect over SSH; ssh is a plain shell.',
        default: 'vscode-web',
      }),
      product: enumeration(JETBRAINS_PRODUCTS, { description: 'JetBrains IDE product (only with type jetbrains).' }),
    },
    { description: 'The IDE the user opens.', default: { type: 'vscode-web' } },
  ),
  {
    rule: "self.type == 'jetbrains' ? has(self.product) : !has(self.product)",
    message: 'product is required for type jetbrains and not allowed otherwise',
    fieldPath: '.product',
  },
);

const envVar = object(
  {
    name: string({ description: 'Variable name.', minLength: 1, maxLength: 256, pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }),
    value: string({ description: 'Variable value.', maxLength: 32768 }),
  },
  { description: 'An environment variable set in the development environment.', required: ['name'] },
);

const port = object(
  {
    port: integer({ description: 'Port inside the environment.', minimum: 1, maximum: 65535 }),
    name: string({ description: 'A short label shown to the user.', maxLength: 63, pattern: DNS_LABEL }),
    visibility: enumeration(PORT_VISIBILITIES, {
      description: 'private: owner and sharedWith; shared: any valid token of the issuer; public: no token.',
      default: 'private',
    }),
    protocol: enumeration(PORT_PROTOCOLS, { description: 'Protocol the port speaks.', default: 'http' }),
  },
  { description: 'A port published through the gateway at <port>--<name>--<namespace>.<domain>.', required: ['port'] },
);

export const gitspaceSpecSchema = object(
  {
    infraRef: withRules(
      object({ name: objectName('Name of the GitspaceInfra.') }, { description: 'The GitspaceInfra this Gitspace runs on.', required: ['name'] }),
      { rule: 'self == oldSelf', message: 'infraRef is immutable' },
    ),
    owner: withRules(subject("The user allowed through the gateway: the value of the infra's usernameClaim (sub unless it says otherwise) in their token or single sign-on."), {
      rule: "!self.startsWith('group:')",
      message: 'the owner is a user, not a group:<name>',
    }),
    sharedWith: array(subject('A user also allowed through the gateway, or group:<name> for the members of a group (the infra\'s groupsClaim).'), {
      description: 'Other users, and groups (group:<name>), allowed through the gateway.',
      maxItems: 32,
      listType: 'set',
    }),
    repository,
    devcontainer,
    ide,
    machineType: string({ description: 'One of the infra spec.machineTypes[].name.', minLength: 1, maxLength: 63, pattern: DNS_LABEL }),
    zone: string({ description: "Preferred zone; the infra's first zone with capacity when empty.", maxLength: 63, pattern: DNS_LABEL }),
    state: enumeration(DESIRED_STATES, {
      description: 'Desired state. Stopped keeps the VM and its disk; Running again resumes the same VM.',
      default: 'Running',
    }),
    idleTimeout: idleDuration("Stop the Gitspace after this much inactivity; 0 never. The infra's idleTimeout when empty."),
    deleteAfterStopped: retentionDuration("Archive the Gitspace this long after it stopped: its VM and disk are deleted (uncommitted and unpushed work with them; a warning Event comes a day before, or a tenth of it), the object stays with phase Archived, and starting it again creates a new VM from the repository. 0 never. The infra's deleteAfterStopped when empty."),
    maxRunTime: idleDuration("Stop the Gitspace this long after it started, busy or not (a warning Event comes 10 minutes before, or a sixth of it for short limits); 0 never. The infra's maxRunTime when empty."),
    sshPublicKeys: array(
      string({
        description: 'An OpenSSH public key line.',
        maxLength: 16384,
        pattern: '^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh.com|sk-ecdsa-sha2-nistp256@openssh.com) [A-Za-z0-9+/]+={0,3}( .*)?$',
      }),
      { description: 'Keys accepted for SSH into the environment.', maxItems: 32, listType: 'atomic' },
    ),
    env: array(envVar, { description: 'Environment variables.', maxItems: 64, listType: 'map', listMapKeys: ['name'] }),
    ports: array(port, {
      description: 'Extra ports to publish, besides devcontainer forwardPorts.',
      maxItems: 20,
      listType: 'map',
      listMapKeys: ['port'],
    }),
  },
  { description: 'Desired state of a Gitspace.', required: ['infraRef', 'owner', 'repository', 'machineType'] },
);

const routePort = object(
  {
    port: integer({ description: 'Port inside the environment.', minimum: 1, maximum: 65535 }),
    name: string({ description: 'Label of the port.', maxLength: 63 }),
    visibility: enumeration(PORT_VISIBILITIES, { description: 'Who may reach it.' }),
    protocol: enumeration(PORT_PROTOCOLS, { description: 'Protocol the port speaks.' }),
    host: string({ description: 'Gateway host serving this port.', maxLength: 253 }),
  },
  { description: 'A published port.', required: ['port'] },
);

export const gitspaceStatusSchema = object(
  {
    phase: enumeration(PHASES, { description: 'Where the Gitspace is in its lifecycle.' }),
    message: string({ description: 'Why the Gitspace is in this phase, for humans.', maxLength: 4096 }),
    observedGeneration,
    conditions: conditions('InstanceProvisioned, InstanceReady, IDEReady and Ready.'),
    instance: object(
      {
        provider: enumeration(['gcp', 'aws', 'local'] as const, { description: 'Provider kind of the instance.' }),
        id: string({ description: 'Provider instance id.', maxLength: 256 }),
        name: string({ description: 'Deterministic instance name, recorded before the create call.', maxLength: 256 }),
        zone: string({ description: 'Zone the instance is in.', maxLength: 63 }),
        privateIP: string({ description: 'Private address the gateway dials.', maxLength: 64 }),
        machineType: string({ description: 'Provider machine type.', maxLength: 128 }),
        diskSizeGB: integer({ description: 'Boot disk size in GB, as the cloud reports it.', minimum: 0, maximum: 65536 }),
        createdAt: string({ description: 'When the instance was created.', format: 'date-time', maxLength: 64 }),
        pooled: boolean({ description: 'The instance was claimed from the warm pool rather than created for this Gitspace.' }),
      },
      { description: 'The VM behind this Gitspace.' },
    ),
    route: object(
      {
        host: string({ description: 'Gateway host, <name>--<namespace>.<domain>.', maxLength: 253 }),
        path: string({ description: 'Gateway path prefix, /gitspaces/<namespace>/<name>/.', maxLength: 512 }),
        upstream: string({ description: "The agent URL the gateway dials; never taken from a request.", maxLength: 2048 }),
        ports: array(routePort, { description: 'Published ports.', maxItems: 64, listType: 'map', listMapKeys: ['port'] }),
      },
      { description: 'How the gateway reaches this Gitspace.' },
    ),
    urls: object(
      {
        ide: string({ description: 'What the user opens: a browser URL or an IDE link.', maxLength: 4096 }),
        ssh: string({ description: 'An ssh command line that reaches the environment through the gateway.', maxLength: 4096 }),
        ports: record(string({ description: 'URL of a published port.', maxLength: 2048 }), {
          description: 'Published port URLs by port number.',
          maxProperties: 64,
        }),
      },
      { description: 'Links for the user.' },
    ),
    lastActivityTime: string({ description: 'Last user activity seen by the gateway or agent.', format: 'date-time', maxLength: 64 }),
    lastActivity: object(
      {
        at: string({ description: 'When (to the minute).', format: 'date-time', maxLength: 64 }),
        source: enumeration(ACTIVITY_SOURCES, { description: 'What it was: an SSH session, the browser IDE, a forwarded port, or a start (the API).' }),
      },
      { description: 'The last use of the Gitspace and what kind it was: what the idle timeout counts from.', required: ['at', 'source'] },
    ),
    startedAt: string({ description: 'When the Gitspace last started running: what maxRunTime counts from.', format: 'date-time', maxLength: 64 }),
    stoppedAt: string({ description: 'When it was last stopped: what deleteAfterStopped counts from.', format: 'date-time', maxLength: 64 }),
    archivedAt: string({ description: 'When its VM and disk were deleted after deleteAfterStopped (phase Archived).', format: 'date-time', maxLength: 64 }),
    failedAt: string({ description: "When it failed: its VM is stopped the infra's failedStopAfter later (disk kept).", format: 'date-time', maxLength: 64 }),
    stopsAt: string({ description: 'When the operator will stop it, if nothing changes: the earliest of the idle deadline (lastActivity + idleTimeout) and the run-time limit (startedAt + maxRunTime). Absent when neither applies.', format: 'date-time', maxLength: 64 }),
    sshHostKey: string({
      description: "The public half of the host key the Gitspace's SSH server shows (kept on its disk: the same after a stop/start), as a known_hosts key: `gitspaces ssh-config` writes it so clients check it instead of trusting on first use.",
      maxLength: 1100,
      pattern: SSH_HOST_KEY_PATTERN,
    }),
    autoStopped: object(
      {
        at: string({ description: 'When the operator stopped it.', format: 'date-time', maxLength: 64 }),
        generation: integer({ description: 'The spec generation it was stopped at: a later spec change starts it again.', minimum: 0 }),
        reason: enumeration(AUTO_STOP_REASONS, { description: 'Why: Idle (the idle timeout), MaxRunTime (the run-time limit), Failed (a failed Gitspace whose VM was stopped after a grace period, its disk kept for inspection), or Preempted (the cloud reclaimed its spot VM; at is when). Idle when absent.' }),
      },
      {
        description: `Set when the idle timeout stopped a Gitspace whose spec still says Running. The operator never writes spec (GitOps tools would fight it), so this is how the stop is remembered; a spec change or the 'gitspaces.dev/wake' annotation with a later time starts it again.`,
        required: ['at', 'generation'],
      },
    ),
    pendingChanges: array(
      object(
        {
          field: enumeration(['machineType', 'diskSizeGB', 'spot'] as const, { description: 'What differs from what spec.machineType names: the machine type, the boot disk size, or spot/standard (GCE; EC2 cannot change it).' }),
          from: string({ description: 'What the instance has now.', maxLength: 128 }),
          to: string({ description: 'What it gets.', maxLength: 128 }),
          message: string({ description: 'For humans: what changes and when.', maxLength: 512 }),
        },
        { description: 'A change waiting for the instance to stop.', required: ['field', 'from', 'to', 'message'] },
      ),
      { description: 'Changes of spec.machineType (or of its entry in the infra) that the running instance does not have yet: they are applied when it next stops.', maxItems: 3, listType: 'map', listMapKeys: ['field'] },
    ),
    lastRequest: object(
      {
        action: enumeration(REQUEST_ACTIONS, { description: 'What was asked: start or stop (a change of spec.state, or a wake), or delete.' }),
        source: enumeration(REQUEST_SOURCES, {
          description: 'Where it came from: a control-plane task applied by the delegate, another Kubernetes API client (kubectl, Argo CD, …), or the operator itself (the idle timeout).',
        }),
        by: string({
          description: 'Who asked, when that is known: the control-plane user, or the operator. Kubernetes does not record the user in the object; the API server audit log has it.',
          maxLength: MAX_REQUESTED_BY,
        }),
        via: string({
          description: "The field manager of the change (kubectl-edit, kubectl-client-side-apply, argocd-controller, gitspaces-delegate), or idle-timeout for the operator's own stop. Absent for a Kubernetes delete, which records none.",
          maxLength: MAX_FIELD_MANAGER,
        }),
        at: string({ description: 'When it was asked: the time of the change in managedFields, the deletion timestamp, or the idle stop.', format: 'date-time', maxLength: 64 }),
      },
      {
        description: 'The last start, stop or delete the operator acted on, and who asked as far as the cluster records it. Each request is recorded once, with an Event (StartRequested, StopRequested, DeleteRequested or AutoStopped).',
        required: ['action', 'source', 'at'],
      },
    ),
  },
  { description: 'Observed state of a Gitspace.' },
);

/**
 * Constraints on metadata.name (the only metadata a CRD may constrain): the name becomes part of
 * a DNS label, `<name>--<namespace>.<domain>`, so it must be short and must not contain `--`; it
 * starts with a letter so that no name reads like a port host's `<port>--` prefix.
 */
export const gitspaceNameSchema = withRules(
  string({ description: 'Name of the Gitspace.', maxLength: MAX_GITSPACE_NAME }),
  {
    rule: "self.matches('^[a-z]') && !self.contains('--') && !self.contains('.')",
    message: "must start with a letter and not contain '--' or '.' (the gateway host is <name>--<namespace>.<domain>, a port's <port>--<name>--<namespace>.<domain>)",
  },
);

export type GitspaceSpec = Infer<typeof gitspaceSpecSchema>;
export type GitspaceStatus = Infer<typeof gitspaceStatusSchema>;

export interface Gitspace {
  apiVersion: typeof API_VERSION;
  kind: typeof GITSPACE.kind;
  metadata: ObjectMeta;
  spec: GitspaceSpec;
  status?: GitspaceStatus;
}
