// Manifests and API helpers for tests that drive Gitspaces through the real API server.
import { expect } from 'chai';
import type { Gitspace, GitspaceInfra, Phase } from '../../src/api/index.ts';
import { testCluster } from '../cluster/current.ts';
import type { SshKey } from './fixtures.ts';
import { resourcePath, statusMessage, type Manifest } from './resources.ts';
import { eventually } from './wait.ts';

export function infraManifest(name: string, baseDir: string): Manifest {
  return {
    apiVersion: 'gitspaces.dev/v1alpha1',
    kind: 'GitspaceInfra',
    metadata: { name },
    spec: {
      provider: { local: baseDir ? { baseDir } : {} },
      machineTypes: [{ name: 'small', providerType: 'local' }],
      allowedNamespaces: {}, gateway: { domain: 'gitspaces.localhost' },
    },
  };
}

export function gitspaceManifest(
  name: string,
  o: { infra: string; repo: string; key: SshKey; ref?: string; machineType?: string; namespace?: string; idleTimeout?: string },
): Manifest {
  return {
    apiVersion: 'gitspaces.dev/v1alpha1',
    kind: 'Gitspace',
    metadata: { name, namespace: o.namespace ?? 'default' },
    spec: {
      infraRef: { name: o.infra },
      owner: 'dev@example.com',
      repository: { url: `file://${o.repo}`, ...(o.ref ? { ref: o.ref } : {}) },
      ide: { type: 'ssh' },
      machineType: o.machineType ?? 'small',
      sshPublicKeys: [o.key.publicLine],
      env: [{ name: 'TEAM', value: 'platform' }],
      ...(o.idleTimeout ? { idleTimeout: o.idleTimeout } : {}),
    },
  };
}

type Obj = Gitspace | GitspaceInfra;

export const k8s = {
  async apply(m: Manifest): Promise<void> {
    const r = await testCluster().request('POST', resourcePath(m), { body: m });
    expect(r.status, statusMessage(r)).to.equal(201);
  },

  async get<T extends Obj = Gitspace>(m: Manifest): Promise<T | undefined> {
    const r = await testCluster().request('GET', resourcePath(m, true));
    if (r.status === 404) return undefined;
    expect(r.status, statusMessage(r)).to.equal(200);
    return r.json as T;
  },

  async patch(m: Manifest, patch: unknown): Promise<void> {
    const r = await testCluster().request('PATCH', resourcePath(m, true), { body: patch, headers: { 'content-type': 'application/merge-patch+json' } });
    expect(r.status, statusMessage(r)).to.equal(200);
  },

  async waitFor<T extends Obj = Gitspace>(m: Manifest, ok: (o: T) => boolean | undefined, timeoutMs: number): Promise<T> {
    let last: T | undefined;
    return eventually(
      () => `${m.kind} ${m.metadata.name} to match; last status: ${JSON.stringify(last?.status)}`,
      timeoutMs,
      async () => {
        last = await k8s.get<T>(m);
        return last && ok(last) ? last : undefined;
      },
    );
  },

  waitPhase(m: Manifest, phase: Phase, timeoutMs: number): Promise<Gitspace> {
    return k8s.waitFor(m, (g) => g.status?.phase === phase, timeoutMs);
  },

  /** Deletes and waits until the object (and so its finalizer work) is gone. */
  async deleteAndWait(m: Manifest, timeoutMs = 60_000): Promise<void> {
    const r = await testCluster().request('DELETE', resourcePath(m, true));
    if (r.status === 404) return;
    expect(r.status, statusMessage(r)).to.be.oneOf([200, 202]);
    await eventually(`${m.kind} ${m.metadata.name} to be deleted`, timeoutMs, async () => (await k8s.get(m)) === undefined);
  },

  /**
   * Deletes every Gitspace of an infra, then the infra, waiting for each (the operator must still
   * be running to release finalizers). For after-hooks, so a failed test leaves nothing behind.
   */
  async cleanUpInfra(name: string): Promise<void> {
    const sel = encodeURIComponent(`spec.infraRef.name=${name}`);
    const r = await testCluster().request('GET', `/apis/gitspaces.dev/v1alpha1/gitspaces?fieldSelector=${sel}`);
    const items = (r.json as { items?: Manifest[] } | undefined)?.items ?? [];
    await Promise.all(items.map((g) => k8s.deleteAndWait({ ...g, apiVersion: 'gitspaces.dev/v1alpha1', kind: 'Gitspace' })));
    await k8s.deleteAndWait(infraManifest(name, ''));
  },

  /** The object's Events as [reason, note]. */
  async events(o: Obj): Promise<[string, string][]> {
    const ns = o.metadata.namespace ?? 'default';
    const r = await testCluster().request('GET', `/apis/events.k8s.io/v1/namespaces/${ns}/events?fieldSelector=${encodeURIComponent(`regarding.uid=${o.metadata.uid ?? ''}`)}`);
    return (r.json as { items: { reason: string; note?: string }[] }).items.map((e) => [e.reason, e.note ?? '']);
  },

  async eventReasons(o: Obj): Promise<string[]> {
    return (await k8s.events(o)).map(([reason]) => reason);
  },
};
