// The API is defined once (src/api); these tests keep the generated CRDs and the TypeScript types
// tied to it.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  allCRDs, GITSPACE, GITSPACE_INFRA, GROUP, IDE_TYPES, PHASES, VERSION,
  type Gitspace, type GitspaceInfraSpec, type GitspaceSpec, type GitspaceStatus,
} from '../../src/api/index.ts';
import { generatedFiles } from '../../scripts/generated.ts';
import { undocumentedFields, type JSONSchemaProps } from '../../src/api/schema.ts';
import { ROOT } from '../support/resources.ts';

// --- compile-time agreement between the schema and the types (checked by `npm run lint`) ---------
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the standard exact-type-equality trick
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;
export type TypeChecks = [
  Expect<Equal<GitspaceSpec['state'], 'Running' | 'Stopped' | undefined>>,
  Expect<Equal<GitspaceSpec['owner'], string>>,
  Expect<Equal<GitspaceSpec['infraRef'], { name: string }>>,
  Expect<Equal<NonNullable<GitspaceSpec['ide']>['type'], (typeof IDE_TYPES)[number] | undefined>>,
  Expect<Equal<NonNullable<GitspaceSpec['ports']>[number]['port'], number>>,
  Expect<Equal<NonNullable<GitspaceStatus['phase']>, (typeof PHASES)[number]>>,
  Expect<Equal<NonNullable<GitspaceStatus['urls']>['ports'], Record<string, string> | undefined>>,
  Expect<Equal<GitspaceInfraSpec['machineTypes'][number]['name'], string>>,
  Expect<Equal<NonNullable<GitspaceInfraSpec['provider']['aws']>['region'], string>>,
  Expect<Equal<Gitspace['kind'], 'Gitspace'>>,
];

function walk(s: JSONSchemaProps, path: string, visit: (s: JSONSchemaProps, path: string) => void): void {
  visit(s, path);
  for (const [k, v] of Object.entries(s.properties ?? {})) walk(v, `${path}.${k}`, visit);
  if (s.items) walk(s.items, `${path}[]`, visit);
  if (s.additionalProperties) walk(s.additionalProperties, `${path}{}`, visit);
}

describe('API definitions (src/api)', () => {
  it('committed generated files (CRDs, the chart\'s copies of them and of the Argo CD checks) are exactly what `npm run gen` produces', () => {
    for (const [path, text] of generatedFiles(ROOT)) {
      const committed = readFileSync(join(ROOT, path), 'utf8');
      expect(committed, `${path} is stale: run npm run gen`).to.equal(text);
    }
  });

  it('names the CRDs after the constants', () => {
    const byKind = Object.fromEntries(allCRDs.map((c) => [c.spec.names.kind, c]));
    for (const names of [GITSPACE, GITSPACE_INFRA]) {
      const crd = byKind[names.kind]!;
      expect(crd.metadata.name).to.equal(`${names.plural}.${GROUP}`);
      expect(crd.spec.scope).to.equal(names.scope);
      expect(crd.spec.versions.map((v) => v.name)).to.deep.equal([VERSION]);
      expect(crd.spec.versions[0]!.subresources).to.deep.equal({ status: {} });
    }
  });

  it('names its category unlike any resource, so `kubectl get gitspaces` lists Gitspaces only', () => {
    const names = allCRDs.flatMap((c) => [c.spec.names.plural, c.spec.names.singular, ...c.spec.names.shortNames]);
    for (const c of allCRDs) for (const category of c.spec.names.categories) expect(names).to.not.include(category);
  });

  it('documents every spec and status field', () => {
    for (const crd of allCRDs) {
      const root = crd.spec.versions[0]!.schema.openAPIV3Schema;
      for (const part of ['spec', 'status'] as const) {
        expect(undocumentedFields(root.properties![part]!, part), crd.spec.names.kind).to.deep.equal([]);
      }
    }
  });

  it('bounds every string and list, so CEL cost estimation never rejects a rule', () => {
    const unbounded: string[] = [];
    for (const crd of allCRDs) {
      walk(crd.spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!, `${crd.spec.names.kind}.spec`, (s, p) => {
        if (s.type === 'string' && s.maxLength === undefined && s.enum === undefined) unbounded.push(p);
        if (s.type === 'array' && s.maxItems === undefined) unbounded.push(p);
      });
    }
    expect(unbounded).to.deep.equal([]);
  });

  it('gives every list an explicit list type and every map list its keys', () => {
    for (const crd of allCRDs) {
      walk(crd.spec.versions[0]!.schema.openAPIV3Schema, crd.spec.names.kind, (s, p) => {
        if (s.type !== 'array') return;
        expect(s['x-kubernetes-list-type'], p).to.be.oneOf(['atomic', 'set', 'map']);
        if (s['x-kubernetes-list-type'] === 'map') {
          for (const key of s['x-kubernetes-list-map-keys'] ?? []) {
            const item = s.items!;
            expect(item.required ?? [], `${p} key ${key} must be required`).to.include(key);
          }
        }
      });
    }
  });

  it('gives every CEL rule a message', () => {
    for (const crd of allCRDs) {
      walk(crd.spec.versions[0]!.schema.openAPIV3Schema, crd.spec.names.kind, (s, p) => {
        for (const r of s['x-kubernetes-validations'] ?? []) expect(r.message ?? r.messageExpression, `${p}: ${r.rule}`).to.be.a('string');
      });
    }
  });
});
