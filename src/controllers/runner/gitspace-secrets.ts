// The Secrets a Gitspace's VM needs: the per-Gitspace hop token the gateway presents to the agent
// (made by us, owned by the Gitspace) and the repository credentials the Gitspace names.
import { API_VERSION, GITSPACE, LABELS, MANAGED_BY, SECRET_TYPES, type Gitspace } from '../../api/index.ts';
import { RetryAfter } from '../../runtime/controller.ts';
import type { Informer } from '../../runtime/informer.ts';
import { isNotFound, type KubeClient } from '../../runtime/kube.ts';
import { controllerRef } from '../../runtime/objects.ts';
import { SECRETS } from '../resources.ts';
import { createTokenSecret, secretValue, type Secret } from '../token-secret.ts';
import { HOP_SECRET_KEY, hopSecretName } from './naming.ts';
import { Wait } from './wait.ts';

/** The per-Gitspace token Secret (owned by the Gitspace, so it goes when the Gitspace goes). */
export async function ensureHopSecret(client: KubeClient, secrets: Informer<Secret>, gs: Gitspace): Promise<string> {
  const ns = gs.metadata.namespace ?? '';
  const name = hopSecretName(gs);
  const cached = secrets.get(`${ns}/${name}`);
  const ownedByUs = (s: Secret) => s.metadata.ownerReferences?.some((o) => o.uid === gs.metadata.uid) ?? false;
  const tokenOf = (s: Secret) => secretValue(s, HOP_SECRET_KEY);
  if (cached && ownedByUs(cached) && tokenOf(cached)) return tokenOf(cached);
  if (cached && !ownedByUs(cached)) {
    // Left by an earlier Gitspace of the same name and not yet garbage-collected.
    await client.delete(SECRETS, ns, name, { uid: cached.metadata.uid }).catch(() => undefined);
    throw new RetryAfter(500, 'replacing a stale token Secret');
  }
  const live = await createTokenSecret(client, {
    name,
    namespace: ns,
    labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.gitspaceName]: gs.metadata.name ?? '' },
    ownerReferences: [controllerRef({ ...gs, apiVersion: API_VERSION, kind: GITSPACE.kind })],
  }, HOP_SECRET_KEY);
  if (!ownedByUs(live)) throw new RetryAfter(500, 'token Secret belongs to another Gitspace');
  return tokenOf(live);
}

/** Credentials for a private repository, from the Secret the Gitspace names. */
export async function repoCredentials(client: KubeClient, gs: Gitspace): Promise<{ username: string; password: string } | undefined> {
  const ref = gs.spec.repository.credentialsSecretRef;
  if (!ref) return undefined;
  let s: Secret;
  try {
    s = await client.get<Secret>(SECRETS, gs.metadata.namespace, ref.name);
  } catch (e) {
    if (isNotFound(e)) throw new Wait('CredentialsSecretNotFound', `spec.repository.credentialsSecretRef: Secret "${ref.name}" not found in namespace ${gs.metadata.namespace ?? ''}`, 'Pending', 10_000);
    throw e;
  }
  if (s.type !== SECRET_TYPES.gitCredentials) {
    throw new Wait('CredentialsSecretRefused', `spec.repository.credentialsSecretRef: Secret "${ref.name}" has type "${s.type ?? ''}"; a Gitspace reads only Secrets of type ${SECRET_TYPES.gitCredentials}`, 'Pending', 10_000);
  }
  const get = (k: string) => (s.data?.[k] ? Buffer.from(s.data[k], 'base64').toString('utf8') : undefined);
  const password = get('password') ?? get('token');
  if (!password) throw new Wait('CredentialsSecretInvalid', `spec.repository.credentialsSecretRef: Secret "${ref.name}" has no "password" or "token" key`, 'Pending', 10_000);
  return { username: get('username') ?? '', password };
}
