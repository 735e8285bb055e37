// The route table's decisions on objects the API server would refuse today but may hold from before
// its validation (names with '--'): two Gitspaces that derive the same host are both refused.
import { expect } from 'chai';
import type { Gitspace, GitspaceInfra } from '../../src/api/index.ts';
import type { HopKey } from '../../src/gateway/hop-key.ts';
import { RouteTable } from '../../src/gateway/routes.ts';
import type { Informer, InformerHandlers } from '../../src/runtime/informer.ts';

/** Just what the route table uses of an informer: a cache and its handlers. */
function fakeInformer<T extends { metadata: { name?: string; namespace?: string } }>() {
  const items = new Map<string, T>();
  const handlers: InformerHandlers<T>[] = [];
  const key = (o: T) => (o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name ?? ''}` : (o.metadata.name ?? ''));
  return {
    informer: { on: (h: InformerHandlers<T>) => handlers.push(h), get: (k: string) => items.get(k), list: () => [...items.values()] } as unknown as Informer<T>,
    add(o: T) { items.set(key(o), o); for (const h of handlers) h.add?.(o); },
    remove(o: T) { items.delete(key(o)); for (const h of handlers) h.delete?.(o); },
  };
}

const infra = { metadata: { name: 'i', resourceVersion: '1' }, spec: { provider: { local: {} }, machineTypes: [], gateway: { domain: 'd.example' } } } as unknown as GitspaceInfra;
const gs = (name: string, ns: string, ip: string): Gitspace => ({
  apiVersion: 'gitspaces.dev/v1alpha1', kind: 'Gitspace', metadata: { name, namespace: ns, uid: `uid-${name}`, resourceVersion: '1' },
  spec: { infraRef: { name: 'i' }, owner: 'o', repository: { url: 'https://x/y.git' }, machineType: 'small' },
  status: { phase: 'Running', instance: { privateIP: ip } },
});

describe('gateway route table', () => {
  it('refuses both Gitspaces that would be served at one host, and serves the other once one goes', () => {
    const g = fakeInformer<Gitspace>();
    const i = fakeInformer<GitspaceInfra>();
    const routes = new RouteTable(g.informer, i.informer, { key: () => 'k', version: () => '1' } as unknown as HopKey);
    const conflicts: string[] = [];
    routes.onConflict = (host) => conflicts.push(host);
    i.add(infra);
    const one = gs('a--b', 'c', '10.0.0.1');
    const two = gs('a', 'b--c', '10.0.0.2');
    g.add(one);
    expect(routes.match('a--b--c.d.example', '/')?.target.upstream?.host).to.equal('10.0.0.1');
    g.add(two);
    expect(routes.match('a--b--c.d.example', '/'), 'a host two Gitspaces claim').to.equal(undefined);
    expect(conflicts).to.deep.equal(['a--b--c.d.example']);
    g.remove(one);
    expect(routes.match('a--b--c.d.example', '/')?.target.upstream?.host).to.equal('10.0.0.2');
  });

  it('dials only a private address (loopback for a local infra only) on the agent port', () => {
    const g = fakeInformer<Gitspace>();
    const i = fakeInformer<GitspaceInfra>();
    const routes = new RouteTable(g.informer, i.informer, { key: () => 'k', version: () => '1' } as unknown as HopKey);
    const cloud = { ...infra, metadata: { name: 'c', resourceVersion: '1' }, spec: { ...infra.spec, provider: { gcp: {} }, gateway: { domain: 'c.example' } } } as unknown as GitspaceInfra;
    i.add(infra);
    i.add(cloud);
    const cases: [string, string, boolean][] = [
      ['i', '10.1.2.3', true], ['i', '172.31.0.1', true], ['i', '192.168.1.1', true], ['i', '100.64.0.9', true], ['i', 'fd00::1', true], ['i', '127.0.0.2', true],
      ['c', '127.0.0.2', false], ['i', '169.254.169.254', false], ['i', '8.8.8.8', false], ['i', '172.32.0.1', false], ['i', 'agent.internal', false], ['i', '::1', false], ['i', '::ffff:127.0.0.1', false],
    ];
    for (const [inf, ip, ok] of cases) {
      const x = gs(`g${String(cases.findIndex((c) => c[1] === ip && c[0] === inf))}`, 'n', ip);
      x.spec.infraRef.name = inf;
      g.add(x);
      const m = routes.match(`${x.metadata.name ?? ''}--n.${inf === 'c' ? 'c' : 'd'}.example`, '/');
      expect(m?.target.upstream, `${ip} on ${inf}`).to.deep.equal(ok ? { host: ip, port: 47100 } : undefined);
    }
  });
});
