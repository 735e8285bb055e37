// Every generated file as [repo-relative path, contents]: used by `npm run gen` and the drift test.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crdFiles } from '../src/api/render.ts';

export const CHART = 'helm/gitspaces-operator';
export const ARGOCD_CHECKS = ['gitspace-health.lua', 'gitspaceinfra-health.lua'];

export function generatedFiles(root: string): [string, string][] {
  return [
    ...crdFiles(),
    ...ARGOCD_CHECKS.map((f): [string, string] => [`${CHART}/argocd/${f}`, readFileSync(join(root, 'docs/argocd', f), 'utf8')]),
  ];
}
