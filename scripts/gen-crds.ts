// Writes the CRDs generated from src/api into crds/ and the Helm chart. `npm run gen`.
// A unit test fails when the committed files differ from what this produces.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { crdFiles } from '../src/api/render.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
for (const [path, text] of crdFiles()) {
  writeFileSync(root + path, text);
  console.log(`wrote ${path}`);
}
