// Every name that appears on the wire or in the cluster lives here, once.

export const GROUP = 'gitspaces.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
/**
 * `kubectl get gitspaces-all`: the category both kinds share. Not `gitspaces`: a category named
 * like a resource's plural makes `kubectl get gitspaces` list the infras as well.
 */
export const CATEGORY = 'gitspaces-all';

export const GITSPACE = {
  kind: 'Gitspace',
  listKind: 'GitspaceList',
  plural: 'gitspaces',
  singular: 'gitspace',
  shortNames: ['gs'],
  scope: 'Namespaced',
} as const;

export const GITSPACE_INFRA = {
  kind: 'GitspaceInfra',
  listKind: 'GitspaceInfraList',
  plural: 'gitspaceinfras',
  singular: 'gitspaceinfra',
  shortNames: ['gsi'],
  scope: 'Cluster',
} as const;

/** Annotations users and the delegate set on a Gitspace. */
export const GITSPACE_ANNOTATIONS = {
  /** An RFC 3339 time: a Gitspace the idle timeout stopped before that time starts again. */
  wake: `${GROUP}/wake`,
  /** Any new value (up to 128 characters, e.g. a time) rebuilds the dev container once. */
  rebuild: `${GROUP}/rebuild`,
  /**
   * The control-plane user whose task the delegate applied (see isRequester for what a value may
   * be). Trusted only when the same field manager set it as made the change (REQUEST_SOURCES).
   */
  requestedBy: `${GROUP}/requested-by`,
} as const;

/** Annotations the delegate puts on the Gitspaces it manages. */
export const DELEGATE_ANNOTATIONS = {
  task: `${GROUP}/task`,
  revision: `${GROUP}/revision`,
  /** What the task asked for: Running, Stopped or Deleted (set just before a delete). */
  want: `${GROUP}/task-want`,
} as const;

/** The field manager of the delegate's writes: managedFields then tell its changes from others'. */
export const DELEGATE_FIELD_MANAGER = 'gitspaces-delegate';
/**
 * The field managers of the operator's and the gateway's other writes (from their User-Agent), so
 * managedFields show that neither ever writes a Gitspace's or an infra's spec.
 */
export const OPERATOR_FIELD_MANAGER = 'gitspaces-operator';
export const GATEWAY_FIELD_MANAGER = 'gitspaces-gateway';

/** status.lastRequest: what was asked, and who asked as far as it can honestly be known. */
export const REQUEST_ACTIONS = ['start', 'stop', 'delete'] as const;
export type RequestAction = (typeof REQUEST_ACTIONS)[number];
/** control-plane: a delegate task; kubernetes: any other API client; operator: its idle stop. */
export const REQUEST_SOURCES = ['control-plane', 'kubernetes', 'operator'] as const;
export const MAX_REQUESTED_BY = 256;
/** A field manager name (the API server allows 128 characters). */
export const MAX_FIELD_MANAGER = 128;
const REQUESTER = new RegExp(`^[A-Za-z0-9][A-Za-z0-9._@|:+=~/-]{0,${String(MAX_REQUESTED_BY - 1)}}$`);

/**
 * Whether a value may name a requester (a control-plane user, a JWT sub): bounded, and printable
 * without spaces, quotes or markup, since it ends up in Events and status that people read.
 */
export function isRequester(v: unknown): v is string {
  return typeof v === 'string' && REQUESTER.test(v);
}

/** Labels put on cloud VMs and Kubernetes objects we own. */
export const LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  infra: `${GROUP}/infra`,
  gitspaceUID: `${GROUP}/gitspace-uid`,
  gitspaceName: `${GROUP}/gitspace-name`,
  gitspaceNamespace: `${GROUP}/gitspace-namespace`,
  controlPlaneId: `${GROUP}/control-plane-id`,
  /** On a warm-pool VM not yet claimed: its machine type name, and the pool's zone. */
  pool: `${GROUP}/pool`,
  poolZone: `${GROUP}/pool-zone`,
  /** On a dev container: the instance whose agent made it (`devcontainer up --id-label`). */
  devcontainerInstance: `${GROUP}/instance`,
  /**
   * A random nonce per instance: with the operator's enrolment key it gives the instance's
   * one-time enrolment token (the nonce alone is useless; its hash is in the boot facts).
   */
  enrolment: `${GROUP}/enrolment`,
} as const;

export const MANAGED_BY = 'gitspaces-operator';

/**
 * Secret types a tenant's Gitspace may name. Only a Secret made for the purpose is read: a
 * Gitspace must not be a way to send any Secret of its namespace (a service-account token, say)
 * to a host of its author's choosing.
 */
export const SECRET_TYPES = {
  /** Keys `password` or `token`, and optionally `username`. */
  gitCredentials: `${GROUP}/git-credentials`,
} as const;

export const FINALIZERS = {
  gitspace: `${GROUP}/instance`,
  infra: `${GROUP}/infra`,
} as const;

export const PHASES = ['Pending', 'Provisioning', 'Starting', 'Running', 'Stopping', 'Stopped', 'Archived', 'Deleting', 'Failed'] as const;
export type Phase = (typeof PHASES)[number];

export const DESIRED_STATES = ['Running', 'Stopped'] as const;

export const IDE_TYPES = ['vscode-web', 'vscode', 'cursor', 'windsurf', 'jetbrains', 'ssh'] as const;
export const JETBRAINS_PRODUCTS = [
  'intellij', 'pycharm', 'goland', 'webstorm', 'clion', 'phpstorm', 'rubymine', 'rider',
] as const;

export const PORT_VISIBILITIES = ['private', 'shared', 'public'] as const;
export const PORT_PROTOCOLS = ['http', 'https'] as const;

export const GITSPACE_CONDITIONS = ['InstanceProvisioned', 'InstanceReady', 'IDEReady', 'Ready'] as const;
export const INFRA_CONDITIONS = ['Ready', 'CredentialsValid', 'NetworkReady', 'GatewayReady', 'PoolReady'] as const;

/** Gitspace names become part of a DNS label `<name>--<namespace>.<domain>`; see gitspace.ts. */
export const MAX_GITSPACE_NAME = 40;
/**
 * A Gitspace's name and namespace together, at most: its port hosts' first label,
 * `<port>--<name>--<namespace>`, must be a DNS label (63) with a five-digit port.
 */
export const MAX_NAME_AND_NAMESPACE = 54;

/** An SSH public key line as status carries it (what a hostile agent can send is checked against it). */
export const SSH_HOST_KEY_PATTERN = '^(ecdsa-sha2-nistp(256|384|521)|ssh-ed25519|ssh-rsa) [A-Za-z0-9+/]{16,1000}={0,2}$';
const SSH_HOST_KEY = new RegExp(SSH_HOST_KEY_PATTERN);

/** Whether a value (from an agent, status or the gateway) is an SSH public key line. */
export function isSshHostKey(v: unknown): v is string {
  return typeof v === 'string' && SSH_HOST_KEY.test(v);
}

/** A sharedWith entry naming a group of the issuer's groups claim: group:<name>. */
export const GROUP_PREFIX = 'group:';

/** Why the operator stopped a Gitspace whose spec still says Running (status.autoStopped.reason). */
export const AUTO_STOP_REASONS = ['Idle', 'MaxRunTime', 'Failed', 'Preempted'] as const;
export type AutoStopReason = (typeof AUTO_STOP_REASONS)[number];
