// What GCE accepts as a resource name, a label and a machine type; the fake refuses the rest with
// GCE's 400 messages, so a provider bug that GCE would reject fails in tests too.

export const NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
export const MACHINE_TYPE = /^(e2|n1|n2|n2d|c2|c3|t2d)-(standard|highmem|highcpu|micro|small|medium)(-\d+)?$/;
const LABEL_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE = /^[a-z0-9_-]{0,63}$/;

/** GCE's refusal of a set of labels, or undefined when they are valid. */
export function badLabels(labels: Record<string, string>): string | undefined {
  for (const [k, v] of Object.entries(labels)) {
    if (!LABEL_KEY.test(k)) return `Invalid value for field 'resource.labels': '${k}'. Label keys must start with a lowercase letter and contain only lowercase letters, digits, '_' and '-'.`;
    if (!LABEL_VALUE.test(v)) return `Invalid value for field 'resource.labels': '${v}'. Label values may contain only lowercase letters, digits, '_' and '-'.`;
  }
  return undefined;
}
