// Every script runs on the project's own Node 24 (installed from the npm registry by `npm ci`),
// not on whatever Node the machine has.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../support/resources.ts';

describe('toolchain', () => {
  it('runs on Node 24', () => {
    expect(process.versions.node.split('.')[0]).to.equal('24');
  });

  it('declares Node 24 in package.json engines', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
    expect(pkg.engines.node).to.match(/24/);
  });
});
