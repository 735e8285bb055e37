// The Dockerfile cannot be built here (no Docker engine), so it is checked as text: pinned base,
// non-root user, the entrypoint is the package's CLI, production dependencies only, the agent
// bundles the gateway serves, and every path it copies exists. test/integration/image.test.ts runs
// the same production tree.
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../support/resources.ts';

interface Instruction { op: string; args: string }

/** Dockerfile instructions with line continuations joined and comments dropped. */
function parse(text: string): Instruction[] {
  const joined = text.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n').replace(/\\\n/g, ' ');
  return joined.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
    const [op = '', ...rest] = l.split(/\s+/);
    return { op: op.toUpperCase(), args: rest.join(' ') };
  });
}

describe('Dockerfile (static checks)', () => {
  const steps = parse(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; engines: { node: string }; version: string };
  const all = (op: string) => steps.filter((s) => s.op === op);
  const runtime = steps.slice(steps.map((s) => s.op).lastIndexOf('FROM'));

  it('builds from a pinned Node 24 base (exact version, no latest) in two stages', () => {
    const froms = all('FROM').map((s) => s.args.split(/\s+/)[0] ?? '');
    expect(froms).to.have.length(2);
    for (const image of froms) expect(image).to.match(/^node:24\.\d+\.\d+-[a-z]+(-slim)?(@sha256:[a-f0-9]{64})?$/);
    expect(pkg.engines.node).to.include('>=24');
  });

  it('runs as a non-root numeric user, with HOME on /tmp for a read-only root filesystem', () => {
    const user = runtime.filter((s) => s.op === 'USER').pop()?.args ?? '';
    expect(user).to.match(/^\d+(:\d+)?$/);
    expect(Number(user.split(':')[0])).to.be.greaterThan(0);
    const env = runtime.filter((s) => s.op === 'ENV').map((s) => s.args).join(' ');
    expect(env).to.include('NODE_ENV=production').and.include('HOME=/tmp');
  });

  it('enters the package\'s CLI, the same file `bin` names', () => {
    const entry = JSON.parse(runtime.find((s) => s.op === 'ENTRYPOINT')?.args ?? '[]') as string[];
    expect(entry).to.deep.equal(['node', `/app/${pkg.bin.gitspaces ?? ''}`]);
    expect(pkg.bin.gitspaces).to.equal('dist/cli/main.js');
    // dist/cli/main.js is what tsconfig.build.json makes of src/cli/main.ts.
    const build = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { compilerOptions: { outDir: string; rootDir: string } };
    expect(build.compilerOptions).to.include({ outDir: 'dist', rootDir: 'src' });
    expect(existsSync(join(ROOT, 'src/cli/main.ts'))).to.equal(true);
  });

  it('ships production dependencies only and copies nothing else from the build', () => {
    const runs = all('RUN').map((s) => s.args).join(' && ');
    expect(runs).to.include('npm ci').and.include('npm prune --omit=dev');
    const copied = runtime.filter((s) => s.op === 'COPY').map((s) => s.args.replace('--from=build ', '').split(/\s+/)[0]);
    expect(copied).to.deep.equal(['/src/package.json', '/src/node_modules', '/src/dist', '/src/build/agent-bundle']);
    for (const s of all('COPY').filter((c) => !c.args.startsWith('--from'))) {
      const sources = s.args.split(/\s+/).slice(0, -1);
      for (const src of sources) expect(existsSync(join(ROOT, src)), src).to.equal(true);
    }
  });

  it('builds the agent bundles for x64 and arm64 before dropping dev dependencies, and the gateway serves them', () => {
    const build = steps.slice(0, steps.map((s) => s.op).lastIndexOf('FROM'));
    const runs = build.filter((s) => s.op === 'RUN').map((s) => s.args).join(' && ');
    const bundle = /node scripts\/bundle-agent\.ts --arch x64,arm64 --out (\S+)/.exec(runs);
    expect(bundle, 'the build stage runs scripts/bundle-agent.ts for both architectures').to.not.equal(null);
    expect(runs.indexOf(bundle?.[0] ?? '')).to.be.below(runs.indexOf('npm prune'));
    expect(runs.indexOf('npm ci')).to.be.below(runs.indexOf(bundle?.[0] ?? ''));
    const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    expect(scripts['bundle:agent']).to.equal('node scripts/bundle-agent.ts');
    const copy = runtime.find((s) => s.op === 'COPY' && s.args.includes(`${bundle?.[1] ?? '?'} `));
    expect(copy?.args).to.equal(`--from=build ${bundle?.[1] ?? ''} /opt/gitspaces/bundles`);
    const env = runtime.filter((s) => s.op === 'ENV').map((s) => s.args).join(' ');
    expect(env).to.include('GITSPACES_AGENT_BUNDLES=/opt/gitspaces/bundles');
    // …the variable `gitspaces gateway` reads.
    expect(readFileSync(join(ROOT, 'src/cli/gateway.ts'), 'utf8')).to.include('process.env.GITSPACES_AGENT_BUNDLES');
  });

  it('carries OCI labels with the package version', () => {
    const labels = all('LABEL').map((s) => s.args).join(' ');
    for (const k of ['title', 'description', 'source', 'licenses', 'version']) expect(labels).to.include(`org.opencontainers.image.${k}=`);
    expect(labels).to.include(`org.opencontainers.image.version="${pkg.version}"`);
  });
});
