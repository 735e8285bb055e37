// Writes the generated files: the CRDs from src/api into crds/ and the Helm chart, and the Argo CD
// health checks from docs/argocd/ into the chart (Helm reads only files inside a chart). `npm run gen`.
// A unit test fails when the committed files differ from what this produces.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { generatedFiles } from './generated.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
for (const [path, text] of generatedFiles(root)) {
  writeFileSync(root + path, text);
  console.log(`wrote ${path}`);
}
