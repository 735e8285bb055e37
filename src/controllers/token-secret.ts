// Secrets that hold one random token (the per-Gitspace hop token, a warm pool's shared secret):
// created once with a fresh token; when another writer got there first, theirs is used.
import { randomBytes } from 'node:crypto';
import { isAlreadyExists, type KubeClient, type KubeObject } from '../runtime/kube.ts';
import { SECRETS } from './resources.ts';

export interface Secret extends KubeObject {
  type?: string;
  data?: Record<string, string>;
}

/** A Secret's value under `key`, decoded ('' when absent). */
export function secretValue(s: Secret, key: string): string {
  return Buffer.from(s.data?.[key] ?? '', 'base64').toString('utf8');
}

/**
 * Creates the Secret with a new random token under `key` and returns it; if one of that name
 * exists already, returns that one (the caller decides whether it may use it).
 */
export async function createTokenSecret(client: KubeClient, metadata: Secret['metadata'] & { name: string; namespace: string }, key: string): Promise<Secret> {
  const token = randomBytes(32).toString('hex');
  try {
    return await client.create<Secret>(SECRETS, { apiVersion: 'v1', kind: 'Secret', metadata, type: 'Opaque', data: { [key]: Buffer.from(token).toString('base64') } });
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
    return client.get<Secret>(SECRETS, metadata.namespace, metadata.name);
  }
}
