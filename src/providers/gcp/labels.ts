// GCE label keys and values allow only lowercase letters, digits, '_' and '-' (keys start with a
// letter; both at most 63). Our Kubernetes-style keys map one to one: '.' → '-', '/' → '_'.
export function gceLabelKey(key: string): string {
  return key.toLowerCase().replace(/\./g, '-').replace(/\//g, '_').replace(/[^a-z0-9_-]/g, '-').slice(0, 63);
}

export function gceLabelValue(value: string): string {
  return value.toLowerCase().replace(/[^a-z0-9_-]/g, '-').slice(0, 63);
}

export function gceLabels(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).map(([k, v]) => [gceLabelKey(k), gceLabelValue(v)]));
}

/** A list filter matching every label (GCE filter syntax, terms joined by AND). */
export function gceLabelFilter(labels: Record<string, string>): string {
  return Object.entries(gceLabels(labels)).map(([k, v]) => `labels.${k} = "${v}"`).join(' AND ');
}

/** Our label keys back from their GCE form (values are kept as GCE stores them). */
export function ourLabels(gce: Record<string, string>, keys: readonly string[]): Record<string, string> {
  const out: Record<string, string> = { ...gce };
  for (const k of keys) {
    const v = gce[gceLabelKey(k)];
    if (v !== undefined) out[k] = v;
  }
  return out;
}
