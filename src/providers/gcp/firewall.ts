// The infra's network rule on GCE: one INGRESS firewall rule on the VPC that admits the agent
// ports from the gateway's ranges to instances with our network tag only. Created, or patched when
// it drifted; left alone when it matches.
import type { FirewallsClient } from '@google-cloud/compute';
import type { NetworkRule, NetworkState } from '../types.ts';
import { callError } from './errors.ts';
import { requestId, type GceOperations } from './operations.ts';

interface FirewallView {
  sourceRanges?: string[] | null;
  targetTags?: string[] | null;
  allowed?: { IPProtocol?: string | null; ports?: string[] | null }[] | null;
}

/** What decides whether the live rule needs a patch (the description and name do not). */
const fingerprint = (x: FirewallView | undefined) => JSON.stringify([[...(x?.sourceRanges ?? [])].sort(), x?.targetTags ?? [], (x?.allowed ?? []).map((a) => [a.IPProtocol, a.ports ?? []])]);

export async function ensureFirewall(firewalls: FirewallsClient, ops: GceOperations, project: string, on: { network: string; tag: string }, rule: NetworkRule): Promise<NetworkState> {
  const want = {
    name: rule.name,
    network: on.network,
    direction: 'INGRESS',
    sourceRanges: [...rule.sourceRanges].sort(),
    targetTags: [on.tag],
    allowed: [{ IPProtocol: 'tcp', ports: rule.ports.map(String) }],
    description: 'Gitspaces: only the gateway and the operator may reach the VM agents (managed by the gitspaces operator)',
  };
  let live: FirewallView | undefined;
  try {
    [live] = await firewalls.get({ project, firewall: rule.name });
  } catch (e) {
    const err = callError(e, `get firewall rule ${rule.name}`);
    if (err.code !== 'NotFound') throw err;
  }
  if (live && fingerprint(live) === fingerprint(want)) return { id: rule.name, action: 'none' };
  const reqId = requestId(rule.name, fingerprint(want));
  await ops.run(undefined, `${live ? 'update' : 'create'} firewall rule ${rule.name}`, () =>
    live ? firewalls.patch({ project, firewall: rule.name, firewallResource: want, requestId: reqId }) : firewalls.insert({ project, firewallResource: want, requestId: reqId }),
  );
  return { id: rule.name, action: live ? 'updated' : 'created' };
}
