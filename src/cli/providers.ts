// Builds the concrete provider for a GitspaceInfra (the one place that knows them all), caching
// one per infra spec so clients and their connection pools are reused.
import { join } from 'node:path';
import { AGENT_HTTP_PORT, LABELS, MANAGED_BY, type GitspaceInfra } from '../api/index.ts';
import { infraResourceName } from '../providers/names.ts';
import { SECRETS } from '../controllers/resources.ts';
import type { ProviderFor } from '../controllers/runner/reconciler.ts';
import { AwsProvider } from '../providers/aws/provider.ts';
import { GcpProvider } from '../providers/gcp/provider.ts';
import { LocalProvider } from '../providers/local/provider.ts';
import { ProviderError, type VmProvider } from '../providers/types.ts';
import { isNotFound, type KubeClient, type KubeObject } from '../runtime/kube.ts';

export interface ProviderFactoryOptions {
  client: KubeClient;
  /** Namespace of credentials Secrets that do not name one (the operator's). */
  namespace: string;
  localDir: string;
  agentCommand: string[];
  /**
   * Serve `local` infras: their "VMs" are processes beside the operator, with its file system and
   * its Kubernetes credentials within reach, so only on a developer's machine, never by default.
   */
  allowLocal: boolean;
  /** Send Compute Engine calls here instead of Google (a fake, for development and tests). */
  gceEndpoint?: string;
  /** Send EC2 calls here instead of AWS (moto, for development and tests). */
  ec2Endpoint?: string;
}

export function providerFactory(o: ProviderFactoryOptions): ProviderFor {
  const cache = new Map<string, VmProvider>();

  /** Reads a credentials Secret once and returns the (decoded) values of the keys asked for. */
  async function secretValues(ref: { name: string; namespace?: string }, keys: string[], field: string): Promise<string[]> {
    const ns = ref.namespace ?? o.namespace;
    let s: KubeObject & { data?: Record<string, string> };
    try {
      s = await o.client.get(SECRETS, ns, ref.name);
    } catch (e) {
      if (isNotFound(e)) throw new ProviderError('Unauthenticated', `${field}: Secret ${ns}/${ref.name} not found`, { field });
      throw e;
    }
    return keys.map((key) => {
      const v = s.data?.[key];
      if (!v) throw new ProviderError('Unauthenticated', `${field}: Secret ${ns}/${ref.name} has no key "${key}"`, { field });
      return Buffer.from(v, 'base64').toString('utf8');
    });
  }

  async function gcp(infra: GitspaceInfra): Promise<VmProvider> {
    const g = infra.spec.provider.gcp;
    if (!g) throw new ProviderError('InvalidConfig', 'spec.provider.gcp is missing');
    let client: ConstructorParameters<typeof GcpProvider>[0]['client'] = { projectId: g.project };
    if (o.gceEndpoint) {
      const u = new URL(o.gceEndpoint);
      const { PassThroughClient } = await import('google-auth-library');
      client = { ...client, apiEndpoint: u.hostname, port: Number(u.port), protocol: u.protocol.replace(':', ''), authClient: new PassThroughClient() };
    } else if (g.credentialsSecretRef) {
      const field = 'spec.provider.gcp.credentialsSecretRef';
      const [json = ''] = await secretValues(g.credentialsSecretRef, [g.credentialsSecretRef.key ?? 'key.json'], field);
      let key: { client_email?: string; private_key?: string };
      try {
        key = JSON.parse(json) as typeof key;
      } catch {
        throw new ProviderError('Unauthenticated', `${field}: the key is not JSON`, { field });
      }
      if (!key.client_email || !key.private_key) throw new ProviderError('Unauthenticated', `${field}: not a service account key (client_email, private_key)`, { field });
      client = { ...client, credentials: { client_email: key.client_email, private_key: key.private_key } };
    }
    return new GcpProvider({
      project: g.project,
      zones: g.zones,
      network: g.network ?? 'default',
      subnetworks: g.subnetworks,
      ...(g.serviceAccount ? { serviceAccount: g.serviceAccount } : {}),
      networkTag: infraResourceName(infra.metadata.name ?? ''),
      agentPort: AGENT_HTTP_PORT,
      client,
    });
  }

  async function aws(infra: GitspaceInfra): Promise<VmProvider> {
    const a = infra.spec.provider.aws;
    if (!a) throw new ProviderError('InvalidConfig', 'spec.provider.aws is missing');
    let client: ConstructorParameters<typeof AwsProvider>[0]['client'] = {};
    if (a.credentialsSecretRef) {
      const field = 'spec.provider.aws.credentialsSecretRef';
      const [accessKeyId = '', secretAccessKey = ''] = await secretValues(a.credentialsSecretRef, ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'], field);
      client = { credentials: { accessKeyId, secretAccessKey } };
    }
    if (o.ec2Endpoint) client = { endpoint: o.ec2Endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' }, ...client };
    return new AwsProvider({
      region: a.region,
      subnets: a.subnets,
      securityGroupIds: a.securityGroupIds,
      ...(a.instanceProfile ? { instanceProfile: a.instanceProfile } : {}),
      agentSecurityGroupName: infraResourceName(infra.metadata.name ?? '', 'agents'),
      tags: { [LABELS.managedBy]: MANAGED_BY, [LABELS.infra]: infra.metadata.name ?? '' },
      agentPort: AGENT_HTTP_PORT,
      client,
    });
  }

  return async (infra) => {
    const p = infra.spec.provider;
    const cacheKey = `${infra.metadata.name ?? ''}@${infra.metadata.generation ?? 0}`;
    const hit = cache.get(cacheKey);
    if (hit) return hit;
    let provider: VmProvider;
    if (p.local) {
      if (!o.allowLocal) {
        throw new ProviderError('InvalidConfig', 'spec.provider.local: this operator does not serve local infras (their Gitspaces would be processes beside the operator, not isolated from it); they are for development, with `gitspaces operator --allow-local-provider` outside a cluster', { field: 'spec.provider.local' });
      }
      provider = new LocalProvider({ baseDir: p.local.baseDir ?? join(o.localDir, infra.metadata.name ?? 'local'), agentCommand: o.agentCommand });
    } else if (p.gcp) {
      provider = await gcp(infra);
    } else {
      provider = await aws(infra);
    }
    cache.set(cacheKey, provider);
    return provider;
  };
}
