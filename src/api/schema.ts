// A tiny typed builder for structural OpenAPI v3 schemas.
//
// Why: the CRD YAML and the TypeScript types must never drift. Each schema built here carries its
// TypeScript type, so `Infer<typeof schema>` *is* the API type and `scripts/gen-crds.ts` writes the
// same schema into `crds/`. A unit test fails when the committed YAML is not what the code generates.

/** One CEL rule (`x-kubernetes-validations`). */
export interface ValidationRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
  /** Lets a transition rule also run on create (oldSelf is then an optional). */
  optionalOldSelf?: boolean;
}

/** The subset of apiextensions.k8s.io/v1 JSONSchemaProps that we emit. */
export interface JSONSchemaProps {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  format?: string;
  enum?: readonly (string | number)[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  default?: unknown;
  properties?: Record<string, JSONSchemaProps>;
  required?: string[];
  items?: JSONSchemaProps;
  additionalProperties?: JSONSchemaProps;
  'x-kubernetes-validations'?: ValidationRule[];
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: 'atomic' | 'granular';
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

/** A schema together with the TypeScript type of the values it accepts. */
export interface Schema<T> {
  readonly json: JSONSchemaProps;
  /** Type carrier only; never set at run time. */
  readonly __type?: T;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

type Common = Pick<JSONSchemaProps, 'description' | 'x-kubernetes-validations'>;

/** Every field gets a description: the generated `kubectl explain` output is our reference docs. */
type Described = Common & { description: string };

function schema<T>(json: JSONSchemaProps): Schema<T> {
  // Drop undefined keys so the generated YAML is stable and minimal.
  const clean = Object.fromEntries(Object.entries(json).filter(([, v]) => v !== undefined));
  return { json: clean };
}

export interface StringOptions extends Described {
  format?: 'uri' | 'email' | 'hostname' | 'date-time' | 'duration' | 'cidr' | 'uuid' | 'ipv4' | 'ipv6';
  pattern?: string;
  minLength?: number;
  /** Required: CEL cost estimation needs a bound on every string a rule reads. */
  maxLength: number;
  default?: string;
}

export function string(o: StringOptions): Schema<string> {
  return schema({ type: 'string', ...o });
}

export function enumeration<const V extends readonly string[]>(
  values: V,
  o: Described & { default?: V[number] },
): Schema<V[number]> {
  return schema({ type: 'string', enum: [...values], ...o });
}

export function integer(o: Described & { minimum?: number; maximum?: number; default?: number; format?: 'int32' | 'int64' }): Schema<number> {
  return schema({ type: 'integer', format: o.format ?? 'int32', ...o });
}

export function boolean(o: Described & { default?: boolean }): Schema<boolean> {
  return schema({ type: 'boolean', ...o });
}

export interface ArrayOptions extends Described {
  minItems?: number;
  /** Required: CEL cost estimation needs a bound on every list. */
  maxItems: number;
  listType?: 'atomic' | 'set' | 'map';
  listMapKeys?: string[];
}

export function array<T>(items: Schema<T>, o: ArrayOptions): Schema<T[]> {
  const { listType, listMapKeys, ...rest } = o;
  return schema({
    type: 'array',
    items: items.json,
    ...rest,
    'x-kubernetes-list-type': listType,
    'x-kubernetes-list-map-keys': listMapKeys,
  });
}

/** A string-keyed map (`additionalProperties`). */
export function record<T>(values: Schema<T>, o: Described & { maxProperties: number }): Schema<Record<string, T>> {
  return schema({ type: 'object', additionalProperties: values.json, ...o });
}

type Props = Record<string, Schema<unknown>>;
type Simplify<T> = { [K in keyof T]: T[K] } & {};
type ObjectType<P extends Props, R extends keyof P> = Simplify<
  { [K in R]: Infer<P[K]> } & { [K in Exclude<keyof P, R>]?: Infer<P[K]> }
>;

export interface ObjectOptions<R> extends Described {
  required?: readonly R[];
  minProperties?: number;
  default?: Record<string, unknown>;
}

export function object<P extends Props, const R extends keyof P & string = never>(
  properties: P,
  o: ObjectOptions<R>,
): Schema<ObjectType<P, R>> {
  const { required, ...rest } = o;
  return schema({
    type: 'object',
    properties: Object.fromEntries(Object.entries(properties).map(([k, v]) => [k, v.json])),
    required: required && required.length > 0 ? [...required] : undefined,
    ...rest,
  });
}

/** Adds CEL rules to an existing schema (keeps its type). */
export function withRules<T>(s: Schema<T>, ...rules: ValidationRule[]): Schema<T> {
  return schema({ ...s.json, 'x-kubernetes-validations': [...(s.json['x-kubernetes-validations'] ?? []), ...rules] });
}

/** Walks a schema and returns the paths of fields without a description (used by a test). */
export function undocumentedFields(json: JSONSchemaProps, path = ''): string[] {
  const missing: string[] = [];
  if (!json.description) missing.push(path || '<root>');
  for (const [k, v] of Object.entries(json.properties ?? {})) missing.push(...undocumentedFields(v, `${path}.${k}`));
  if (json.items && json.items.type === 'object') {
    for (const [k, v] of Object.entries(json.items.properties ?? {})) missing.push(...undocumentedFields(v, `${path}[].${k}`));
  }
  if (json.additionalProperties?.type === 'object') {
    for (const [k, v] of Object.entries(json.additionalProperties.properties ?? {})) missing.push(...undocumentedFields(v, `${path}{}.${k}`));
  }
  return missing;
}
