// The Secret a Gitspace's VM needs from its namespace: the repository credentials it names (the
// hop token is derived, not stored per Gitspace: see Enrolment.hopToken).
import { SECRET_TYPES, type Gitspace } from '../../api/index.ts';
import { isNotFound, type KubeClient } from '../../runtime/kube.ts';
import { SECRETS } from '../resources.ts';
import { secretValue, type Secret } from '../token-secret.ts';
import { Wait } from './wait.ts';

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
  const get = (k: string) => secretValue(s, k) || undefined;
  const password = get('password') ?? get('token');
  if (!password) throw new Wait('CredentialsSecretInvalid', `spec.repository.credentialsSecretRef: Secret "${ref.name}" has no "password" or "token" key`, 'Pending', 10_000);
  return { username: get('username') ?? '', password };
}
