// The test cluster behaves like a real one where our operator depends on it: garbage collection of
// owned objects, namespace deletion, the status subresource, printer columns, short names and
// categories, field selectors, RBAC for token users, and teardown when the harness is killed.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { testCluster } from '../cluster/current.ts';
import { ROOT, resourcePath, statusMessage, type Manifest } from '../support/resources.ts';
import { alive, eventually } from '../support/wait.ts';


const gitspace = (name: string, namespace: string, owner = 'alice@example.com'): Manifest => ({
  apiVersion: 'gitspaces.dev/v1alpha1',
  kind: 'Gitspace',
  metadata: { name, namespace },
  spec: { infraRef: { name: 'local' }, owner, repository: { url: 'https://github.com/acme/app.git' }, machineType: 'small' },
});

describe('the test cluster', () => {
  const c = () => testCluster();

  async function createNamespace(name: string): Promise<void> {
    const r = await c().request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } } });
    expect(r.status, statusMessage(r)).to.equal(201);
  }

  async function create(m: Manifest): Promise<Manifest> {
    const r = await c().request('POST', resourcePath(m), { body: m });
    expect(r.status, statusMessage(r)).to.equal(201);
    return r.json as Manifest;
  }

  it('runs Kubernetes 1.34 and serves both CRDs', async () => {
    const v = (await c().request('GET', '/version')).json as { gitVersion: string };
    expect(v.gitVersion).to.equal('v1.34.4');
    const r = await c().request('GET', '/apis/gitspaces.dev/v1alpha1');
    const list = r.json as { resources: { name: string; shortNames?: string[]; categories?: string[]; namespaced: boolean }[] };
    const gs = list.resources.find((x) => x.name === 'gitspaces')!;
    const gsi = list.resources.find((x) => x.name === 'gitspaceinfras')!;
    expect(gs.shortNames).to.deep.equal(['gs']);
    expect(gsi.shortNames).to.deep.equal(['gsi']);
    expect(gs.categories).to.deep.equal(['gitspaces-all']);
    expect(gs.namespaced).to.equal(true);
    expect(gsi.namespaced).to.equal(false);
    expect(list.resources.map((x) => x.name)).to.include.members(['gitspaces/status', 'gitspaceinfras/status']);
  });

  it('collects objects owned by a Gitspace when it is deleted (garbage collector)', async () => {
    await createNamespace('gc-test');
    const g = await create(gitspace('owner', 'gc-test'));
    const cm = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'owned',
        namespace: 'gc-test',
        ownerReferences: [{ apiVersion: g.apiVersion, kind: g.kind, name: g.metadata.name, uid: g.metadata.uid, controller: true }],
      },
      data: { a: 'b' },
    };
    expect((await c().request('POST', '/api/v1/namespaces/gc-test/configmaps', { body: cm })).status).to.equal(201);
    expect((await c().request('DELETE', resourcePath(g, true))).status).to.equal(200);
    await eventually('the owned ConfigMap to be collected', 30_000, async () => {
      return (await c().request('GET', '/api/v1/namespaces/gc-test/configmaps/owned')).status === 404;
    });
  });

  it('deletes the Gitspaces of a deleted namespace (namespace controller)', async () => {
    await createNamespace('ns-test');
    const g = await create(gitspace('doomed', 'ns-test'));
    expect((await c().request('DELETE', '/api/v1/namespaces/ns-test')).status).to.equal(200);
    await eventually('the namespace and its Gitspace to be gone', 30_000, async () => {
      const [ns, gs] = await Promise.all([
        c().request('GET', '/api/v1/namespaces/ns-test'),
        c().request('GET', resourcePath(g, true)),
      ]);
      return ns.status === 404 && gs.status === 404;
    });
  });

  it('keeps status behind the status subresource and bumps generation only on spec changes', async () => {
    const g = await create(gitspace('status-test', 'default'));
    expect(g.metadata.generation).to.equal(1);
    // status sent on the main resource is ignored
    const withStatus = { ...g, status: { phase: 'Running' } };
    const put = await c().request('PUT', resourcePath(g, true), { body: withStatus });
    expect(put.status, statusMessage(put)).to.equal(200);
    expect((put.json as Manifest).status).to.equal(undefined);
    // through /status it is kept, and the generation does not move
    const patch = await c().request('PATCH', `${resourcePath(g, true)}/status`, {
      body: { status: { phase: 'Provisioning', observedGeneration: 1 } },
      headers: { 'content-type': 'application/merge-patch+json' },
    });
    expect(patch.status, statusMessage(patch)).to.equal(200);
    const after = patch.json as Manifest;
    expect(after.status).to.deep.include({ phase: 'Provisioning' });
    expect(after.metadata.generation).to.equal(1);
    // a status the schema does not allow is rejected too
    const bad = await c().request('PATCH', `${resourcePath(g, true)}/status`, {
      body: { status: { phase: 'Dancing' } },
      headers: { 'content-type': 'application/merge-patch+json' },
    });
    expect(bad.status).to.equal(422);
    expect(statusMessage(bad)).to.include('status.phase: Unsupported value: "Dancing"');
    await c().request('DELETE', resourcePath(g, true));
  });

  it('prints the documented columns (kubectl get)', async () => {
    const g = await create(gitspace('columns', 'default', 'carol@example.com'));
    await c().request('PATCH', `${resourcePath(g, true)}/status`, {
      body: { status: { phase: 'Running', stopsAt: '2026-11-30T11:42:00Z', urls: { ide: 'https://columns--default.gitspaces.localhost/' } } },
      headers: { 'content-type': 'application/merge-patch+json' },
    });
    const r = await c().request('GET', resourcePath(g, true), {
      headers: { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' },
    });
    const table = r.json as { columnDefinitions: { name: string; priority: number }[]; rows: { cells: unknown[] }[] };
    const names = table.columnDefinitions.filter((d) => d.priority === 0).map((d) => d.name);
    expect(names).to.deep.equal(['Name', 'Phase', 'Owner', 'Machine', 'Stops', 'URL', 'Age']);
    expect(table.rows[0]!.cells.slice(0, 6)).to.deep.equal([
      'columns', 'Running', 'carol@example.com', 'small', '2026-11-30T11:42:00Z', 'https://columns--default.gitspaces.localhost/',
    ]);
    await c().request('DELETE', resourcePath(g, true));
  });

  it('selects Gitspaces by owner with a field selector', async () => {
    const a = await create(gitspace('by-owner-a', 'default', 'dora@example.com'));
    const b = await create(gitspace('by-owner-b', 'default', 'erin@example.com'));
    const r = await c().request('GET', `${resourcePath(a)}?fieldSelector=${encodeURIComponent('spec.owner=dora@example.com')}`);
    const items = (r.json as { items: Manifest[] }).items.map((i) => i.metadata.name);
    expect(items).to.deep.equal(['by-owner-a']);
    for (const m of [a, b]) await c().request('DELETE', resourcePath(m, true));
  });

  it('enforces RBAC for token users', async () => {
    const m = gitspace('rbac', 'default');
    const denied = await c().request('GET', resourcePath(m), { user: c().user('mallory') });
    expect(denied.status).to.equal(403);
    expect(statusMessage(denied)).to.include('User "mallory" cannot list resource "gitspaces"');
  });

  it('tears everything down when the process that started it is killed (-9)', async function () {
    this.timeout(90_000);
    const child = spawn(process.execPath, [join(ROOT, 'test/cluster/cli.ts'), '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const info = await new Promise<{ dir: string; pids: number[] }>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const line = out.split('\n').find((l) => l.startsWith('{'));
        if (line) resolve(JSON.parse(line) as { dir: string; pids: number[] });
      });
      child.once('exit', (code) => {
        reject(new Error(`cluster cli exited early (${code})`));
      });
    });
    expect(info.pids).to.have.length(3);
    expect(info.pids.every(alive)).to.equal(true);
    expect(existsSync(info.dir)).to.equal(true);
    child.kill('SIGKILL');
    await eventually('etcd, kube-apiserver and kube-controller-manager to exit and the dir to go', 20_000, () =>
      Promise.resolve(info.pids.every((p) => !alive(p)) && !existsSync(info.dir)),
    );
  });
});
