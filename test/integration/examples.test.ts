// Every sample manifest is accepted by the real API server (server-side dry-run, strict field
// validation as kubectl applies it), and the server fills in the documented defaults.
import { expect } from 'chai';
import { basename } from 'node:path';
import { testCluster } from '../cluster/current.ts';
import { exampleFiles, loadManifests, resourcePath, statusMessage, type Manifest } from '../support/resources.ts';

describe('examples/ against the real API server', () => {
  const files = exampleFiles();

  it('has a GitspaceInfra for each provider and Gitspaces using them', () => {
    const all = files.flatMap((f) => loadManifests(f));
    const infras = all.filter((m) => m.kind === 'GitspaceInfra');
    const providers = infras.map((m) => Object.keys(m.spec?.provider ?? {})[0]).sort();
    expect(providers).to.deep.equal(['aws', 'gcp', 'local']);
    const infraNames = new Set(infras.map((m) => m.metadata.name));
    const gitspaces = all.filter((m) => m.kind === 'Gitspace');
    expect(gitspaces.length).to.be.greaterThanOrEqual(3);
    for (const g of gitspaces) expect(infraNames).to.include((g.spec?.infraRef as { name: string }).name);
  });

  for (const file of files) {
    for (const m of loadManifests(file)) {
      it(`accepts ${basename(file)} (${m.kind} ${m.metadata.name}) with server-side dry-run`, async () => {
        const r = await testCluster().request('POST', `${resourcePath(m)}?dryRun=All&fieldValidation=Strict`, { body: m });
        expect(r.status, statusMessage(r)).to.equal(201);
        const out = r.json as Manifest;
        expect(out.metadata.name).to.equal(m.metadata.name);
        // warnings (unknown fields, deprecated values) would mean the sample is out of date
        expect(r.body).to.not.include('unknown field');
      });
    }
  }

  it('fills in defaults on a minimal Gitspace', async () => {
    const m: Manifest = {
      apiVersion: 'gitspaces.dev/v1alpha1',
      kind: 'Gitspace',
      metadata: { name: 'minimal', namespace: 'default' },
      spec: { infraRef: { name: 'local' }, owner: 'a@example.com', repository: { url: 'https://example.com/r.git' }, machineType: 'small' },
    };
    const r = await testCluster().request('POST', `${resourcePath(m)}?dryRun=All`, { body: m });
    expect(r.status, statusMessage(r)).to.equal(201);
    const spec = (r.json as Manifest).spec as Record<string, unknown>;
    expect(spec.state).to.equal('Running');
    expect(spec.ide).to.deep.equal({ type: 'vscode-web' });
    expect(spec.devcontainer).to.deep.equal({ path: '.devcontainer/devcontainer.json' });
  });

  it('fills in defaults on a GitspaceInfra', async () => {
    const [m] = loadManifests(files.find((f) => f.endsWith('infra-aws.yaml'))!);
    const r = await testCluster().request('POST', `${resourcePath(m!)}?dryRun=All`, { body: m });
    expect(r.status, statusMessage(r)).to.equal(201);
    const spec = (r.json as Manifest).spec as { idleTimeout: string; gateway: { allowPublicPorts: boolean }; vm: { sudo: boolean } | undefined };
    expect(spec.idleTimeout).to.equal('1h');
    expect(spec.gateway.allowPublicPorts).to.equal(false);
  });
});
