// Secrets that hold one random key in the operator's namespace (the enrolment key, the hop key):
// created once with a fresh key; when another writer (replica) got there first, theirs is used.
import { randomBytes } from 'node:crypto';
import { LABELS, MANAGED_BY } from '../api/index.ts';
import type { Informer } from '../runtime/informer.ts';
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

/**
 * One key Secret of the operator's namespace: read from the informer's cache, else created (once,
 * shared by replicas). A failed create is retried on the next call.
 */
export class OperatorKey {
  private created: Promise<string> | undefined;
  private readonly o: { client: KubeClient; secrets: Informer<Secret>; namespace: string; name: string; field: string };

  constructor(o: { client: KubeClient; secrets: Informer<Secret>; namespace: string; name: string; field: string }) {
    this.o = o;
  }

  value(): Promise<string> {
    const { client, secrets, namespace, name, field } = this.o;
    const cached = secrets.get(`${namespace}/${name}`);
    const value = cached ? secretValue(cached, field) : '';
    if (value) return Promise.resolve(value);
    this.created ??= createTokenSecret(client, { name, namespace, labels: { [LABELS.managedBy]: MANAGED_BY } }, field)
      .then((s) => secretValue(s, field))
      .catch((e: unknown) => {
        this.created = undefined;
        throw e;
      });
    return this.created;
  }
}
