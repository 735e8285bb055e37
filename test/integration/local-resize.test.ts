// The local provider's resize: it has no machine to change, so it records the new type and disk
// size (in the instance directory, where a restarted operator finds them) and refuses what the
// clouds refuse: a running instance, a smaller disk.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalProvider } from '../../src/providers/local/provider.ts';
import { ProviderError } from '../../src/providers/types.ts';
import { testCreateRequest } from '../support/provider-double.ts';
import { ROOT } from '../support/resources.ts';

describe('local provider: resize', function () {
  this.timeout(30_000);
  let dir: string;
  const agentCommand = [process.execPath, join(ROOT, 'src/cli/main.ts')];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'gitspaces-local-resize-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a running instance and a smaller disk, records the new type and size of a stopped one', async () => {
    const p = new LocalProvider({ baseDir: dir, agentCommand, stopGraceMs: 2_000 });
    const a = await p.create(testCreateRequest('gs-resize', { machineType: { providerType: 'small', diskSizeGB: 30 }, labels: { 'gitspaces.dev/infra': 'test' } }));
    expect(a).to.include({ state: 'running', machineType: 'small', diskSizeGB: 30 });
    const running = await p.resize(a, { providerType: 'large', requestKey: '1' }).then(() => undefined, (e: unknown) => e);
    expect(running).to.be.instanceOf(ProviderError);
    expect((running as ProviderError).message).to.match(/must be stopped \(it is running\)/);

    await p.stop(a);
    const stopped = (await p.find('gs-resize'))!;
    const shrink = await p.resize(stopped, { diskSizeGB: 20, requestKey: '2' }).then(() => undefined, (e: unknown) => e);
    expect((shrink as ProviderError).message).to.match(/cannot shrink from 30 to 20 GB/);
    await p.resize(stopped, { providerType: 'large', diskSizeGB: 60, requestKey: '3' });
    // A new provider object (an operator restart) sees it too: it is on the instance's "disk".
    const after = (await new LocalProvider({ baseDir: dir, agentCommand }).find('gs-resize'))!;
    expect(after).to.include({ id: a.id, state: 'stopped', machineType: 'large', diskSizeGB: 60 });
    await p.start(after);
    expect((await p.find('gs-resize'))?.machineType).to.equal('large');
    await p.delete(after);
  });
});
