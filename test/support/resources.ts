// Helpers for tests that talk to the API server about our resources.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { API_VERSION, GITSPACE, GITSPACE_INFRA } from '../../src/api/index.ts';
import type { RawResponse } from '../cluster/cluster.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  [k: string]: unknown;
}

/** The collection path of a manifest's resource, plus `/name` when `withName`. */
export function resourcePath(m: Manifest, withName = false): string {
  const [group, version] = m.apiVersion === API_VERSION ? API_VERSION.split('/') : m.apiVersion.split('/');
  const names = m.kind === GITSPACE.kind ? GITSPACE : m.kind === GITSPACE_INFRA.kind ? GITSPACE_INFRA : undefined;
  if (!names || !group || !version) throw new Error(`not one of our kinds: ${m.apiVersion} ${m.kind}`);
  const ns = names.scope === 'Namespaced' ? `/namespaces/${m.metadata.namespace ?? 'default'}` : '';
  return `/apis/${group}/${version}${ns}/${names.plural}${withName ? `/${m.metadata.name}` : ''}`;
}

export function loadManifests(file: string): Manifest[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
}

export function exampleFiles(): string[] {
  const dir = join(ROOT, 'examples');
  return readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort().map((f) => join(dir, f));
}

/** A deep copy that tests may mutate freely. */
export const clone = <T>(v: T): T => structuredClone(v);

/** The message of a Kubernetes Status body. */
export function statusMessage(r: RawResponse): string {
  const j = r.json as { message?: string } | undefined;
  return j?.message ?? r.body;
}
