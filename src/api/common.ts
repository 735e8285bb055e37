// Schema pieces shared by both kinds.
import { array, enumeration, integer, object, string, withRules, type Infer } from './schema.ts';

export const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
export const DURATION = '^(0|([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+)$';

/** A Kubernetes object name (DNS subdomain). */
export function objectName(description: string) {
  return string({
    description,
    minLength: 1,
    maxLength: 253,
    pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
  });
}

/** A Go-style duration: 0 (never) or between `min` and `max`. */
export function idleDuration(description: string, dflt?: string) {
  return withRules(
    string({ description, maxLength: 32, pattern: DURATION, ...(dflt ? { default: dflt } : {}) }),
    {
      rule: "duration(self) == duration('0s') || (duration(self) >= duration('5m') && duration(self) <= duration('168h'))",
      message: 'must be 0 (never) or between 5m and 168h',
    },
  );
}

/** Parses a Go-style duration ("1h30m", "45s", "0") to milliseconds. */
export function parseDuration(s: string | undefined): number | undefined {
  if (s === undefined || s === '') return undefined;
  if (s === '0') return 0;
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
  let consumed = 0;
  for (const m of s.matchAll(re)) {
    total += Number(m[1]) * (units[m[2] ?? 's'] ?? 0);
    consumed += m[0].length;
  }
  return consumed === s.length ? total : undefined;
}

export const secretKeyRef = (description: string) =>
  object(
    {
      name: objectName('Name of the Secret.'),
      namespace: objectName('Namespace of the Secret. Defaults to the namespace the operator runs in.'),
      key: string({ description: 'Key within the Secret.', minLength: 1, maxLength: 253, pattern: '^[-._a-zA-Z0-9]+$' }),
    },
    { description, required: ['name'] },
  );

const conditionSchema = object(
  {
    type: string({
      description: 'Type of condition in CamelCase, e.g. Ready.',
      minLength: 1,
      maxLength: 316,
      pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$',
    }),
    status: enumeration(['True', 'False', 'Unknown'] as const, { description: 'Status of the condition.' }),
    observedGeneration: integer({
      description: 'The .metadata.generation the condition was set from.',
      minimum: 0,
      format: 'int64',
    }),
    lastTransitionTime: string({
      description: 'When the condition last changed from one status to another.',
      format: 'date-time',
      maxLength: 64,
    }),
    reason: string({
      description: 'A programmatic identifier for the last transition, in CamelCase.',
      minLength: 1,
      maxLength: 1024,
      pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$',
    }),
    message: string({ description: 'A human readable message about the transition.', maxLength: 32768 }),
  },
  {
    description: 'A condition in the Kubernetes API conventions (metav1.Condition).',
    required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
  },
);
export type Condition = Infer<typeof conditionSchema>;

export const conditions = (description: string) =>
  array(conditionSchema, { description, maxItems: 16, listType: 'map', listMapKeys: ['type'] });

export const observedGeneration = integer({
  description: 'The .metadata.generation this status was computed from.',
  minimum: 0,
  format: 'int64',
});

/** How long a stopped Gitspace keeps its VM and disk: 0 (for ever) or between 1h and 8760h (a year). */
export function retentionDuration(description: string, dflt?: string) {
  return withRules(
    string({ description, maxLength: 32, pattern: DURATION, ...(dflt ? { default: dflt } : {}) }),
    {
      rule: "duration(self) == duration('0s') || (duration(self) >= duration('1h') && duration(self) <= duration('8760h'))",
      message: 'must be 0 (never) or between 1h and 8760h',
    },
  );
}
