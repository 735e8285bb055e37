// Whether a stopped GCE spot VM was preempted, the way GCE records it: an instance whose
// scheduling says SPOT (or preemptible) shows only TERMINATED; the preemption itself is a zone
// operation of type compute.instances.preempted targeting the instance (what `gcloud compute
// operations list --filter=operationType=compute.instances.preempted` reads). The instance was
// preempted last when such an operation is later than its lastStartTimestamp.
import type { ZoneOperationsClient } from '@google-cloud/compute';
import type { Instance } from '../types.ts';
import { callError } from './errors.ts';

const BASE = 'https://www.googleapis.com/compute/v1';
export const PREEMPTED_OPERATION = 'compute.instances.preempted';
/** Answers kept (one per instance and stop): enough for every stopped VM of a large infra. */
const MEMO_MAX = 8192;

/** The fields of a GCE instance this needs. */
export interface GceSchedulingView {
  id?: string | number | null;
  name?: string | null;
  selfLink?: string | null;
  creationTimestamp?: string | null;
  lastStartTimestamp?: string | null;
  lastStopTimestamp?: string | null;
  scheduling?: { provisioningModel?: string | null; preemptible?: boolean | null } | null;
}

interface OperationView {
  operationType?: string | null;
  insertTime?: string | null;
}

/** The scheduling block of a spot VM that stops (keeping its disk) when preempted. */
export const SPOT_SCHEDULING = { provisioningModel: 'SPOT', instanceTerminationAction: 'STOP', automaticRestart: false, onHostMaintenance: 'TERMINATE' } as const;
/** The scheduling block of a standard VM (GCE's defaults), for a spot VM made standard again. */
export const STANDARD_SCHEDULING = { provisioningModel: 'STANDARD', automaticRestart: true, onHostMaintenance: 'MIGRATE', preemptible: false } as const;

export function isSpot(g: GceSchedulingView): boolean {
  return g.scheduling?.provisioningModel === 'SPOT' || g.scheduling?.preemptible === true;
}

/**
 * The latest preemption's time when it came after the instance last started, else undefined
 * (pure: the operations are those the filter returned for this instance).
 */
export function lastPreemption(g: GceSchedulingView, ops: OperationView[]): string | undefined {
  const since = Date.parse(g.lastStartTimestamp ?? g.creationTimestamp ?? '');
  let latest: { at: number; iso: string } | undefined;
  for (const op of ops) {
    if (op.operationType !== PREEMPTED_OPERATION) continue;
    const at = Date.parse(op.insertTime ?? '');
    if (Number.isNaN(at)) continue;
    if (!latest || at > latest.at) latest = { at, iso: new Date(at).toISOString() };
  }
  if (!latest) return undefined;
  return Number.isNaN(since) || latest.at >= since ? latest.iso : undefined;
}

export class GcePreemptions {
  private readonly ops: ZoneOperationsClient;
  private readonly project: string;
  /** By instance id and lastStopTimestamp: one lookup per stop, not one per list. */
  private readonly memo = new Map<string, string | null>();

  constructor(ops: ZoneOperationsClient, project: string) {
    this.ops = ops;
    this.project = project;
  }

  /** The instance with stopReason/preemptedAt when the cloud preempted it; others unchanged. */
  async annotate(g: GceSchedulingView, inst: Instance): Promise<Instance> {
    if (inst.state !== 'stopped' || !isSpot(g)) return inst;
    const key = `${inst.id}|${g.lastStopTimestamp ?? ''}`;
    let at = this.memo.get(key);
    if (at === undefined) {
      at = (await this.lookup(g, inst)) ?? null;
      // Without a stop time GCE may still be finishing the stop: look again next time.
      if (g.lastStopTimestamp) this.remember(key, at);
    }
    return at ? { ...inst, stopReason: 'preempted', preemptedAt: at } : inst;
  }

  private remember(key: string, at: string | null): void {
    if (this.memo.size >= MEMO_MAX) this.memo.delete(this.memo.keys().next().value ?? '');
    this.memo.set(key, at);
  }

  private async lookup(g: GceSchedulingView, inst: Instance): Promise<string | undefined> {
    const link = g.selfLink ?? `${BASE}/projects/${this.project}/zones/${inst.zone}/instances/${inst.name}`;
    const filter = `operationType="${PREEMPTED_OPERATION}" AND targetLink="${link}"`;
    const found: OperationView[] = [];
    try {
      for await (const op of this.ops.listAsync({ project: this.project, zone: inst.zone, filter }, { autoPaginate: false })) found.push(op);
    } catch (e) {
      throw callError(e, `list the preemptions of ${inst.name}`);
    }
    return lastPreemption(g, found);
  }
}
