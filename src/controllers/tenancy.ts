// Which namespaces may use an infra (spec.allowedNamespaces, a label selector on Namespaces):
// asked by the runner before it creates or starts a VM and by the delegate before it accepts a task.
import type { GitspaceInfra } from '../api/index.ts';
import type { KubeObject } from '../runtime/kube.ts';
import { matchesSelector } from '../runtime/selector.ts';

/** Why a Gitspace in this namespace may not use the infra, or undefined when it may. */
export function namespaceRefusal(infra: GitspaceInfra, namespace: string, ns: KubeObject | undefined): string | undefined {
  const infraName = infra.metadata.name ?? '';
  const selector = infra.spec.allowedNamespaces;
  if (!selector) return `GitspaceInfra "${infraName}" admits no namespace: its spec.allowedNamespaces is unset (set a namespace label selector; {} admits all)`;
  if (!ns) return `namespace ${namespace} is not known yet`;
  if (!matchesSelector(selector, ns.metadata.labels)) return `namespace ${namespace} does not match GitspaceInfra "${infraName}" spec.allowedNamespaces ${JSON.stringify(selector)}`;
  return undefined;
}
