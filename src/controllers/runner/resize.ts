// Resize as pure decisions: what the instance is (machine type, boot disk, spot or standard)
// against what the Gitspace's spec.machineType names in its infra now. A stopped instance is
// resized at once; a running one keeps what it has until it next stops, and status.pendingChanges
// says so; a smaller disk is refused (both clouds only grow disks), and so is a change of spot on
// EC2 (it cannot change an instance's market). Table-tested in test/unit/runner-resize.test.ts.
import type { GitspaceStatus } from '../../api/index.ts';
import type { InstanceState, ResizeRequest } from '../../providers/types.ts';
import type { CondOut } from './decide.ts';

/** The condition that says whether the instance is what spec.machineType names. */
export const RESIZE_CONDITION = 'MachineUpToDate';

export type PendingChange = NonNullable<GitspaceStatus['pendingChanges']>[number];

export interface ResizeInput {
  instance?: { state: InstanceState; machineType: string; diskSizeGB?: number; spot?: boolean };
  /** The infra's entry spec.machineType names. */
  want: { name: string; providerType: string; diskSizeGB?: number; spot?: boolean };
  /** Whether the provider can switch a stopped instance between spot and standard. */
  spotChangeable?: boolean;
  /** The infra's machine types, to name the instance's current type in messages. */
  offered: readonly { name: string; providerType: string }[];
}

export interface ResizePlan {
  /** What to ask the provider for now: only for a stopped instance, only what differs. */
  resize?: Omit<ResizeRequest, 'requestKey'>;
  /** Changes not in effect yet (applied at the next stop, or now if stopped). */
  pending: PendingChange[];
  /** Changes that are never made: "disks only grow: 100 → 50 GB". */
  refused?: string;
  /** What the resize does, for its Event: "e2-standard-2 → e2-standard-4, disk 50 → 100 GB". */
  summary: string;
}

export function planResize(i: ResizeInput): ResizePlan {
  const inst = i.instance;
  if (!inst || inst.state === 'terminated') return { pending: [], summary: '' };
  const stopped = inst.state === 'stopped';
  const when = stopped ? 'is applied before the next start' : 'is applied at the next stop';
  const pending: PendingChange[] = [];
  const parts: string[] = [];
  const resize: Omit<ResizeRequest, 'requestKey'> = {};
  if (inst.machineType !== i.want.providerType) {
    // An entry of the same provider type names the current one; "small → large" reads better.
    const fromName = i.offered.find((m) => m.providerType === inst.machineType)?.name;
    const names = fromName ? `${fromName} → ${i.want.name} (${inst.machineType} → ${i.want.providerType})` : `${inst.machineType} → ${i.want.name} (${i.want.providerType})`;
    pending.push({ field: 'machineType', from: inst.machineType, to: i.want.providerType, message: `machineType ${names} ${when}` });
    parts.push(`${inst.machineType} → ${i.want.providerType}`);
    resize.providerType = i.want.providerType;
  }
  const refused: string[] = [];
  // Unknown on the instance (the local provider): nothing to compare, nothing to change.
  if (inst.spot !== undefined && inst.spot !== Boolean(i.want.spot)) {
    const [from, to] = inst.spot ? ['spot', 'standard'] : ['standard', 'spot'];
    if (i.spotChangeable) {
      pending.push({ field: 'spot', from, to, message: `${from} → ${to} VM ${when}` });
      parts.push(`${from} → ${to}`);
      resize.spot = Boolean(i.want.spot);
    } else {
      refused.push(`machine type ${i.want.name} is now ${to} but this cloud cannot switch an existing instance between spot and standard: it stays ${from} until it is archived or re-created`);
    }
  }
  const have = inst.diskSizeGB;
  const wantDisk = i.want.diskSizeGB;
  // Unknown on either side: nothing to compare, nothing to change.
  if (have !== undefined && wantDisk !== undefined && have !== wantDisk) {
    if (wantDisk < have) {
      refused.push(`disks only grow: ${String(have)} → ${String(wantDisk)} GB (machine type ${i.want.name}); the disk stays ${String(have)} GB`);
    } else {
      pending.push({ field: 'diskSizeGB', from: String(have), to: String(wantDisk), message: `disk ${String(have)} → ${String(wantDisk)} GB ${when}` });
      parts.push(`disk ${String(have)} → ${String(wantDisk)} GB`);
      resize.diskSizeGB = wantDisk;
    }
  }
  return {
    ...(stopped && pending.length ? { resize } : {}),
    pending,
    ...(refused.length ? { refused: refused.join('; ') } : {}),
    summary: parts.join(', '),
  };
}

/** What a resize attempt came to, for the status written after it. */
export interface ResizeOutcome {
  /** The summary of a resize that succeeded. */
  resized?: string;
  /** Why the cloud refused it (its message), and when it is tried again. */
  failure?: string;
}

/**
 * The MachineUpToDate condition for a plan, or undefined to leave conditions as they are (a
 * Gitspace that never drifted gets none).
 */
export function resizeCondition(plan: ResizePlan, outcome: ResizeOutcome, old: { status: string } | undefined): CondOut | undefined {
  if (outcome.failure) return { status: 'False', reason: 'ResizeFailed', message: outcome.failure };
  const notes = [...(plan.refused ? [plan.refused] : []), ...plan.pending.map((p) => p.message)];
  if (notes.length) return { status: 'False', reason: plan.refused ? 'ResizeRefused' : 'ResizePending', message: notes.join('; ') };
  if (outcome.resized) return { status: 'True', reason: 'Resized', message: outcome.resized };
  if (old && old.status !== 'True') return { status: 'True', reason: 'UpToDate', message: 'the instance is the machine type spec.machineType names' };
  return undefined;
}

/** How long to wait before trying a refused resize again: 5 s doubling, at most 5 minutes. */
export function resizeBackoffMs(attempts: number): number {
  return Math.min(5_000 * 2 ** Math.max(0, attempts - 1), 300_000);
}
