// The informer's list/watch protocol against a scripted fake client: relist on 410 Gone (both as
// an HTTP error and as a watch ERROR event), reconnect after errors, deletes noticed on relist.
import { expect } from 'chai';
import { Informer } from '../../src/runtime/informer.ts';
import { KubeError, type KubeClient, type KubeList, type KubeObject, type WatchEvent } from '../../src/runtime/kube.ts';

const obj = (name: string, rv: string): KubeObject => ({ metadata: { name, namespace: 'ns', resourceVersion: rv } });

/** A fake whose list returns `lists` in turn and whose watch runs `watches` in turn. */
function fakeClient(lists: KubeObject[][], watches: ((emit: (e: WatchEvent<KubeObject>) => void) => Promise<void>)[]) {
  const calls: string[] = [];
  const client = {
    list: (): Promise<KubeList<KubeObject>> => {
      calls.push('list');
      const items = lists.shift() ?? [];
      return Promise.resolve({ metadata: { resourceVersion: String(100 + calls.length) }, items });
    },
    watch: async (_r: unknown, o: { resourceVersion?: string; signal?: AbortSignal }, onEvent: (e: WatchEvent<KubeObject>) => void) => {
      calls.push(`watch@${o.resourceVersion ?? ''}`);
      const w = watches.shift();
      if (w) return w(onEvent);
      await new Promise<void>((r) => o.signal?.addEventListener('abort', () => { r(); }));
    },
  };
  return { client: client as unknown as KubeClient, calls };
}

const settle = () => new Promise((r) => setTimeout(r, 30));

describe('Informer', () => {
  it('lists, watches from the list resourceVersion, and relists on 410 Gone', async () => {
    const { client, calls } = fakeClient(
      [[obj('a', '1'), obj('b', '2')], [obj('a', '5')]],
      [
        (emit) => {
          emit({ type: 'ADDED', object: obj('c', '3') });
          return Promise.reject(new KubeError(410, 'Expired', 'too old resource version', {}));
        },
      ],
    );
    const inf = new Informer(client, { group: 'x', version: 'v1', plural: 'xs', namespaced: true });
    const seen: string[] = [];
    inf.on({ add: (o) => seen.push(`add ${o.metadata.name ?? ''}`), update: (_, n) => seen.push(`update ${n.metadata.name ?? ''}`), delete: (o) => seen.push(`delete ${o.metadata.name ?? ''}`) });
    inf.start();
    await inf.waitForSync();
    await settle();
    inf.stop();
    expect(calls.slice(0, 3)).to.deep.equal(['list', 'watch@101', 'list']);
    // the relist noticed that b and c are gone and a changed
    expect(seen).to.deep.equal(['add a', 'add b', 'add c', 'delete b', 'delete c', 'update a']);
    expect(inf.keys()).to.deep.equal(['ns/a']);
    expect(inf.relists).to.equal(2);
  });

  it('treats a watch ERROR event with code 410 as Gone', async () => {
    const { client, calls } = fakeClient(
      [[obj('a', '1')], [obj('a', '1')]],
      [
        (emit) => {
          emit({ type: 'ERROR', object: { code: 410, message: 'expired' } as unknown as KubeObject });
          return Promise.resolve();
        },
      ],
    );
    const inf = new Informer(client, { group: 'x', version: 'v1', plural: 'xs', namespaced: true });
    inf.start();
    await settle();
    inf.stop();
    expect(calls.slice(0, 3)).to.deep.equal(['list', 'watch@101', 'list']);
  });

  it('keeps its cache through a watch that ends cleanly and resumes from the last resourceVersion', async () => {
    const { client, calls } = fakeClient(
      [[obj('a', '1')]],
      [
        (emit) => {
          emit({ type: 'MODIFIED', object: obj('a', '7') });
          emit({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '9' } } });
          return Promise.resolve();
        },
      ],
    );
    const inf = new Informer(client, { group: 'x', version: 'v1', plural: 'xs', namespaced: true });
    inf.start();
    await settle();
    inf.stop();
    expect(calls.slice(0, 3)).to.deep.equal(['list', 'watch@101', 'watch@9']);
    expect(inf.get('ns/a')?.metadata.resourceVersion).to.equal('7');
  });
});
