// A Compute Engine instance as the runner sees it: our state names, the private address, the boot
// disk's size, our labels and whether it is a spot VM.
import { LABELS } from '../../api/index.ts';
import type { Instance, InstanceState } from '../types.ts';
import { ourLabels } from './labels.ts';
import { isSpot, type GceSchedulingView } from './preemption.ts';

export interface GceInstance extends GceSchedulingView {
  id?: string | number | null;
  name?: string | null;
  zone?: string | null;
  status?: string | null;
  machineType?: string | null;
  creationTimestamp?: string | null;
  labels?: Record<string, string> | null;
  labelFingerprint?: string | null;
  networkInterfaces?: { networkIP?: string | null }[] | null;
  disks?: { boot?: boolean | null; source?: string | null; diskSizeGb?: string | number | null }[] | null;
}

/** The last segment of a GCE resource URL (zone, machine type, disk). */
export const last = (s: string | null | undefined) => (s ?? '').split('/').pop() ?? '';

function stateOf(status: string | null | undefined): InstanceState {
  switch (status) {
    case 'PROVISIONING':
    case 'STAGING':
    case 'REPAIRING':
      return 'pending';
    case 'RUNNING':
      return 'running';
    case 'STOPPING':
    case 'SUSPENDING':
      return 'stopping';
    case 'TERMINATED':
    case 'SUSPENDED':
    case 'STOPPED':
      return 'stopped';
    default:
      return 'pending';
  }
}

/** The boot disk's own name (resize needs it), when the instance lists one. */
export function bootDiskName(g: GceInstance): string | undefined {
  const source = g.disks?.find((d) => d.boot)?.source;
  return source ? last(source) : undefined;
}

export function toInstance(g: GceInstance, agentPort: number): Instance {
  const ip = g.networkInterfaces?.[0]?.networkIP ?? undefined;
  const diskSize = Number(g.disks?.find((d) => d.boot)?.diskSizeGb ?? NaN);
  return {
    id: String(g.id ?? ''),
    name: g.name ?? '',
    zone: last(g.zone),
    state: stateOf(g.status),
    ...(ip ? { privateIP: ip } : {}),
    agentPort,
    machineType: last(g.machineType),
    ...(Number.isFinite(diskSize) ? { diskSizeGB: diskSize } : {}),
    createdAt: g.creationTimestamp ?? '',
    labels: ourLabels(g.labels ?? {}, Object.values(LABELS)),
    ...(g.labelFingerprint ? { labelFingerprint: g.labelFingerprint } : {}),
    spot: isSpot(g),
  };
}
