// The one interface every VM provider implements. Controllers see only this file; cloud SDKs live
// behind it. Instances are identified by a deterministic name derived from the Gitspace's UID, so
// "create" is idempotent: a second create of the same name finds the first instance.
import type { ProviderKind } from '../api/index.ts';
import type { BootFacts } from '../api/agent.ts';

export type InstanceState = 'pending' | 'running' | 'stopping' | 'stopped' | 'terminated';

export interface Instance {
  /** Provider id (GCE numeric id, EC2 i-…, local: the name). */
  id: string;
  name: string;
  zone: string;
  state: InstanceState;
  /** Address the gateway and operator dial (private IP; local: a 127.x address). */
  privateIP?: string;
  /** Port the agent listens on at privateIP. */
  agentPort: number;
  machineType: string;
  /** Boot disk size in GB, as the cloud reports it now. */
  diskSizeGB?: number;
  createdAt: string;
  labels: Record<string, string>;
  /** Optimistic-concurrency token for label changes (GCE labelFingerprint), when the cloud has one. */
  labelFingerprint?: string;
  /** A stopped spot VM that the cloud stopped (GCE preemption, EC2 spot interruption), not we. */
  stopReason?: 'preempted';
  /** When the cloud preempted it (ISO time), when the cloud says. */
  preemptedAt?: string;
  /** Whether it is a spot VM, when the cloud says (the local provider has no such thing). */
  spot?: boolean;
}

export interface CreateRequest {
  /** Deterministic instance name (see instanceName). */
  name: string;
  zone?: string;
  /** spot: a VM the cloud may stop at any time (stop, not delete: the disk is kept). */
  machineType: { providerType: string; diskSizeGB?: number; diskType?: string; spot?: boolean };
  image?: string;
  /** Labels/tags that mark the instance as ours and tie it to its Gitspace. */
  labels: Record<string, string>;
  /** The VM's non-secret boot facts (its startup payload); its configuration comes by claim. */
  agent: BootFacts;
  /**
   * The caller has just seen (in a list of every zone, made after any earlier create of this name
   * returned) that no instance of this name exists, so the provider may skip its own lookup and
   * rely on the cloud's idempotency (GCE 409 + requestId, EC2 ClientToken).
   */
  observedAbsent?: boolean;
  /**
   * Tells a new create of this name (an archived Gitspace started again) from a retry of the last
   * one: part of the cloud's idempotency key (GCE requestId, EC2 ClientToken), which would
   * otherwise answer with the deleted instance.
   */
  requestKey?: string;
}

/** What resize changes; a field left out stays as it is. */
export interface ResizeRequest {
  providerType?: string;
  /** The boot disk's new size in GB: disks only grow (both clouds refuse to shrink one). */
  diskSizeGB?: number;
  /** Spot or standard from now on (only where the provider says spotChangeable). */
  spot?: boolean;
  /**
   * Tells this wish and attempt from earlier ones: a retried call is the same cloud request (GCE
   * requestId), a new attempt or a later wish a new one.
   */
  requestKey: string;
}

/** The one firewall rule (GCE) / security group (EC2) that admits the agent ports. */
export interface NetworkRule {
  /** Rule or security group name (deterministic per infra). */
  name: string;
  /** The only sources admitted: where the gateway and the operator connect from. */
  sourceRanges: string[];
  ports: number[];
}

export interface NetworkState {
  /** Provider id of the rule (GCE firewall name, EC2 sg-…). */
  id: string;
  /** What ensureNetwork changed: nothing when the rule was already as asked. */
  action: 'none' | 'created' | 'updated';
}

/** How much of an instance's console consoleOutput returns (the startup script's verdict is at its end). */
export const CONSOLE_TAIL = 64 * 1024;

/** Unauthenticated: credentials missing, wrong, revoked or without permission — wait for a fix. */
export type ProviderErrorCode = 'NotFound' | 'QuotaExceeded' | 'Throttled' | 'InvalidConfig' | 'Unauthenticated' | 'Transient';

/** A classified provider failure: the controller maps the code to a condition and a retry policy. */
export class ProviderError extends Error {
  readonly code: ProviderErrorCode;
  /** For InvalidConfig: the spec field the user should fix. */
  readonly field: string | undefined;
  readonly retryAfterMs: number | undefined;
  constructor(code: ProviderErrorCode, message: string, opts: { field?: string; retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'ProviderError';
    this.code = code;
    this.field = opts.field;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

export type DeleteOutcome = 'gone' | 'going';

export interface VmProvider {
  readonly kind: ProviderKind;
  /**
   * Whether resize can switch a stopped instance between spot and standard (GCE setScheduling);
   * EC2 cannot change an instance's market, so there it takes a new VM.
   */
  readonly spotChangeable?: boolean;
  /** The instance with this name, in any non-terminated state, or undefined. */
  find(name: string, zone?: string): Promise<Instance | undefined>;
  /** Creates the instance, or returns the existing one of that name. */
  create(req: CreateRequest): Promise<Instance>;
  start(inst: Instance): Promise<void>;
  stop(inst: Instance): Promise<void>;
  /**
   * Deletes the instance and its disk; deleting a missing instance is not an error. Resolves to
   * 'gone' when the cloud confirmed it (GCE: the operation finished), 'going' when it is on its way.
   */
  delete(inst: Instance): Promise<DeleteOutcome>;
  /**
   * Changes a STOPPED instance's machine type and/or grows its boot disk, keeping the instance (same
   * id, same disk). The cloud refuses a running instance and a smaller disk: ProviderError.
   */
  resize(inst: Instance, req: ResizeRequest): Promise<void>;
  /** Every instance carrying these labels (one call per zone, for batched observation). */
  listOwned(labels: Record<string, string>): Promise<Instance[]>;
  /** Replaces the instance's labels/tags of ours (adopting a pool VM for a Gitspace). */
  relabel(inst: Instance, labels: Record<string, string>): Promise<void>;
  /** One cheap authenticated call: throws ProviderError('Unauthenticated') when credentials fail. */
  verify(): Promise<void>;
  /** Creates or corrects the rule that admits only `rule.sourceRanges` to the agent ports. */
  ensureNetwork(rule: NetworkRule): Promise<NetworkState>;
  /**
   * The tail of the instance's console (GCE serial port 1, EC2 console output, the local
   * instance's log), where the startup script reports why it could not start the agent.
   */
  consoleOutput?(inst: Instance): Promise<string>;
}
