// The hop token of a Gitspace as the gateway derives it: from the operator's hop key Secret.
import { HOP_KEY_FIELD, HOP_KEY_SECRET, hopToken, type Gitspace } from '../../src/api/index.ts';
import { testCluster } from '../cluster/current.ts';
import { eventually } from './wait.ts';

export async function hopKey(namespace = 'default'): Promise<string> {
  return eventually(`the hop key Secret in ${namespace}`, 10_000, async () => {
    const r = await testCluster().request('GET', `/api/v1/namespaces/${namespace}/secrets/${HOP_KEY_SECRET}`);
    const raw = (r.json as { data?: Record<string, string> } | undefined)?.data?.[HOP_KEY_FIELD];
    return r.status === 200 && raw ? Buffer.from(raw, 'base64').toString('utf8') : undefined;
  });
}

export async function hopTokenOf(g: Gitspace, namespace = 'default'): Promise<string> {
  return hopToken(await hopKey(namespace), g.metadata.uid ?? '');
}
