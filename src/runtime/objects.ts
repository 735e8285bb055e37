// Helpers on any Kubernetes object: finalizers, owner references, and a status write that is
// skipped when nothing changed. Writes carry the resourceVersion they were computed from, so a
// decision made on a stale read fails with a conflict instead of overwriting newer state.
import type { KubeClient, KubeObject, Resource } from './kube.ts';

export function hasFinalizer(obj: KubeObject, f: string): boolean {
  return obj.metadata.finalizers?.includes(f) ?? false;
}

export function isDeleting(obj: KubeObject): boolean {
  return Boolean(obj.metadata.deletionTimestamp);
}

/** Adds the finalizer (one write, guarded by resourceVersion). Returns the updated object. */
export function addFinalizer<T extends KubeObject>(client: KubeClient, r: Resource, obj: T, f: string): Promise<T> {
  const finalizers = [...(obj.metadata.finalizers ?? []), f];
  return client.patch<T>(r, obj.metadata.namespace, obj.metadata.name ?? '', {
    metadata: { finalizers, resourceVersion: obj.metadata.resourceVersion },
  });
}

export function removeFinalizer<T extends KubeObject>(client: KubeClient, r: Resource, obj: T, f: string): Promise<T> {
  const finalizers = (obj.metadata.finalizers ?? []).filter((x) => x !== f);
  return client.patch<T>(r, obj.metadata.namespace, obj.metadata.name ?? '', {
    metadata: { finalizers, resourceVersion: obj.metadata.resourceVersion },
  });
}

/** An ownerReference making `owner` the controller of another object (garbage-collected with it). */
export function controllerRef(owner: KubeObject & { apiVersion?: string; kind?: string }) {
  return {
    apiVersion: owner.apiVersion ?? '',
    kind: owner.kind ?? '',
    name: owner.metadata.name ?? '',
    uid: owner.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** Deep equality of JSON values (key order ignored). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => jsonEqual(x, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  return ak.length === bk.length && ak.every((k) => jsonEqual(ao[k], bo[k]));
}

/**
 * Writes `status` through the status subresource unless it equals the object's current status.
 * Keys dropped from the status are sent as null (merge-patch deletes them). Returns the written
 * object, or undefined when the write was skipped.
 */
export async function patchStatusIfChanged<T extends KubeObject & { status?: object }>(
  client: KubeClient,
  r: Resource,
  obj: T,
  status: NonNullable<T['status']>,
): Promise<T | undefined> {
  if (jsonEqual(obj.status ?? {}, status)) return undefined;
  const patch: Record<string, unknown> = { ...status };
  for (const k of Object.keys(obj.status ?? {})) if (!(k in patch) || patch[k] === undefined) patch[k] = null;
  return client.patch<T>(r, obj.metadata.namespace, obj.metadata.name ?? '', {
    metadata: { resourceVersion: obj.metadata.resourceVersion },
    status: patch,
  }, { subresource: 'status' });
}
