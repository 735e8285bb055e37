// Renders the CRDs as YAML files (used by scripts/gen-crds.ts and the drift test).
import { stringify } from 'yaml';
import { allCRDs } from './crds.ts';

const HEADER = '# Generated from src/api by `npm run gen`. Do not edit: change the schema in src/api instead.\n';

/** [repo-relative path, contents] for every generated file. */
export function crdFiles(): [string, string][] {
  const files: [string, string][] = [];
  for (const crd of allCRDs) {
    const text = HEADER + stringify(crd, { lineWidth: 0 });
    const name = `${crd.spec.group}_${crd.spec.names.plural}.yaml`;
    files.push([`crds/${name}`, text], [`helm/gitspaces-operator/crds/${name}`, text]);
  }
  return files;
}
