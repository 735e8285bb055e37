// The hop key: one Secret in the gateway's own namespace, watched by name (so RBAC can limit the
// gateway to exactly that Secret). Every Gitspace's hop token is derived from it and its UID.
import { HOP_KEY_FIELD, HOP_KEY_SECRET, SECRETS } from '../api/index.ts';
import { Informer } from '../runtime/informer.ts';
import type { KubeClient, KubeObject } from '../runtime/kube.ts';

interface SecretObject extends KubeObject {
  data?: Record<string, string>;
}

export class HopKey {
  readonly informer: Informer<SecretObject>;
  private readonly namespace: string;

  constructor(client: KubeClient, namespace: string, onError: (e: unknown) => void) {
    this.namespace = namespace;
    this.informer = new Informer<SecretObject>(client, SECRETS, { namespace, fieldSelector: `metadata.name=${HOP_KEY_SECRET}`, onError });
  }

  private secret(): SecretObject | undefined {
    return this.informer.get(`${this.namespace}/${HOP_KEY_SECRET}`);
  }

  /** The key, or undefined until the operator has created it. */
  key(): string | undefined {
    const raw = this.secret()?.data?.[HOP_KEY_FIELD];
    return raw ? Buffer.from(raw, 'base64').toString('utf8') : undefined;
  }

  /** Changes when the key does (targets built from an older key are rebuilt). */
  version(): string {
    return this.secret()?.metadata.resourceVersion ?? '';
  }
}
