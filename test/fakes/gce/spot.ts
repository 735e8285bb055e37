// Spot VMs in the GCE fake, as the Compute Engine reference describes them: an insert's
// `scheduling` is checked as GCE checks it, and a preemption is a zone operation of type
// compute.instances.preempted (made by the system) that zoneOperations.list returns for the filter
// `operationType="compute.instances.preempted" AND targetLink="<instance>"`.

export const PREEMPTED_OPERATION = 'compute.instances.preempted';

export interface Scheduling {
  provisioningModel?: string;
  preemptible?: boolean;
  instanceTerminationAction?: string;
  automaticRestart?: boolean;
  onHostMaintenance?: string;
}

export function schedulingOf(body: Record<string, unknown>): Scheduling {
  const s = body.scheduling;
  return typeof s === 'object' && s !== null ? s : {};
}

export function preemptible(s: Scheduling): boolean {
  return s.provisioningModel === 'SPOT' || s.preemptible === true;
}

/** GCE's refusal of an insert's scheduling, or undefined when it is valid. */
export function schedulingError(s: Scheduling): string | undefined {
  if (s.provisioningModel !== undefined && s.provisioningModel !== 'SPOT' && s.provisioningModel !== 'STANDARD') {
    return `Invalid value for field 'resource.scheduling.provisioningModel': '${s.provisioningModel}'.`;
  }
  const action = s.instanceTerminationAction;
  if (action !== undefined && action !== 'STOP' && action !== 'DELETE') return `Invalid value for field 'resource.scheduling.instanceTerminationAction': '${action}'.`;
  if (!preemptible(s)) return undefined;
  if (s.automaticRestart === true) return "Invalid value for field 'resource.scheduling.automaticRestart': 'true'. Spot and preemptible VMs cannot be restarted automatically.";
  if (s.onHostMaintenance !== undefined && s.onHostMaintenance !== 'TERMINATE') return `Invalid value for field 'resource.scheduling.onHostMaintenance': '${s.onHostMaintenance}'. Spot and preemptible VMs must terminate on host maintenance.`;
  return undefined;
}

/** What a spot VM does when preempted: STOP (GCE's default) keeps it TERMINATED with its disk; DELETE removes it. */
export function terminationAction(s: Scheduling): 'STOP' | 'DELETE' {
  return s.instanceTerminationAction === 'DELETE' ? 'DELETE' : 'STOP';
}

/**
 * The subset of the list filter syntax used for operations: `field="value"` (or `field = value`)
 * terms on operationType, targetLink, targetId and status, joined by AND. An unknown field is an error, as in GCE.
 */
export function operationFilter(filter: string | null): ((op: Record<string, unknown>) => boolean) | string {
  if (!filter) return () => true;
  const terms: [string, string][] = [];
  for (const part of filter.split(/\s+AND\s+/)) {
    const m = /^\(?\s*([A-Za-z]+)\s*=\s*"?([^"]*?)"?\s*\)?$/.exec(part.trim());
    if (!m || !['operationType', 'targetLink', 'targetId', 'status'].includes(m[1] ?? '')) return `Invalid list filter expression '${filter}'.`;
    terms.push([m[1] ?? '', m[2] ?? '']);
  }
  return (op) => terms.every(([k, v]) => { const x = op[k]; return (typeof x === 'string' || typeof x === 'number' ? String(x) : '') === v; });
}
