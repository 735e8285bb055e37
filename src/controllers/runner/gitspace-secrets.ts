// The Secret a Gitspace's VM needs from its namespace: the repository credentials it names (the
// hop token is derived, not stored per Gitspace: see Enrolment.hopToken).
import { SECRET_TYPES, type Gitspace, type RepoCredentials } from '../../api/index.ts';
import { isNotFound, type KubeClient } from '../../runtime/kube.ts';
import { SECRETS } from '../resources.ts';
import { secretValue, type Secret } from '../token-secret.ts';
import { Wait } from './wait.ts';

/** Bounds of an SSH key and its known_hosts (they go to the VM in the claim). */
const MAX_SSH_KEY = 16 * 1024;
const MAX_KNOWN_HOSTS = 64 * 1024;

/**
 * Credentials for a private repository, from the Secret the Gitspace names: `password` or `token`
 * (and `username`) for http(s), or `ssh-privatekey` with `known_hosts` for git@/ssh:// URLs.
 */
export async function repoCredentials(client: KubeClient, gs: Gitspace): Promise<RepoCredentials | undefined> {
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
  const invalid = (why: string) => new Wait('CredentialsSecretInvalid', `spec.repository.credentialsSecretRef: Secret "${ref.name}" ${why}`, 'Pending', 10_000);
  const sshPrivateKey = get('ssh-privatekey');
  if (sshPrivateKey) {
    const knownHosts = get('known_hosts');
    if (!knownHosts) throw invalid('has an "ssh-privatekey" but no "known_hosts": the server\'s host key must be given, not trusted on first use');
    if (sshPrivateKey.length > MAX_SSH_KEY || knownHosts.length > MAX_KNOWN_HOSTS) throw invalid(`has an "ssh-privatekey" over ${String(MAX_SSH_KEY)} bytes or a "known_hosts" over ${String(MAX_KNOWN_HOSTS)}`);
    return { sshPrivateKey, knownHosts };
  }
  const password = get('password') ?? get('token');
  if (!password) throw invalid('has no "password", "token" or "ssh-privatekey" key');
  return { username: get('username') ?? '', password };
}
