// The local provider behaves like a VM provider: idempotent create, stop keeps the disk, start
// resumes the same instance, delete removes everything, and a new provider object (an operator
// restart) finds and adopts what the last one created.
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalProvider } from '../../src/providers/local/provider.ts';
import { testCreateRequest } from '../support/provider-double.ts';
import { ROOT } from '../support/resources.ts';
import { alive } from '../support/wait.ts';

describe('local provider', function () {
  this.timeout(30_000);
  let dir: string;
  const agentCommand = [process.execPath, join(ROOT, 'src/cli/main.ts')];
  const req = (name: string) =>
    testCreateRequest(name, { labels: { 'gitspaces.dev/infra': 'test', 'gitspaces.dev/gitspace-uid': name } });
  const pidOf = (name: string) => Number(readFileSync(join(dir, name, 'agent.pid'), 'utf8'));

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'gitspaces-local-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates idempotently, stops keeping the disk, resumes the same instance, and deletes everything', async () => {
    const p = new LocalProvider({ baseDir: dir, agentCommand, stopGraceMs: 2_000 });
    const a = await p.create(req('gs-a'));
    const again = await p.create(req('gs-a'));
    expect(again.privateIP).to.equal(a.privateIP);
    expect(a.state).to.equal('running');
    expect(readdirSync(dir)).to.deep.equal(['gs-a']);
    const pid = pidOf('gs-a');
    expect(alive(pid)).to.equal(true);

    const b = await p.create(req('gs-b'));
    expect(b.privateIP).to.not.equal(a.privateIP);

    // an operator restart: a new provider object sees the same instances
    const p2 = new LocalProvider({ baseDir: dir, agentCommand, stopGraceMs: 2_000 });
    expect((await p2.find('gs-a'))?.state).to.equal('running');
    expect((await p2.listOwned({ 'gitspaces.dev/infra': 'test' })).map((i) => i.name).sort()).to.deep.equal(['gs-a', 'gs-b']);
    expect(await p2.listOwned({ 'gitspaces.dev/gitspace-uid': 'gs-b' })).to.have.length(1);
    expect(await p2.find('gs-missing')).to.equal(undefined);

    await p2.stop(a);
    expect((await p2.find('gs-a'))?.state).to.equal('stopped');
    expect(alive(pid)).to.equal(false);
    expect(existsSync(join(dir, 'gs-a', 'home'))).to.equal(true);

    await p2.start(a);
    const resumed = await p2.find('gs-a');
    expect(resumed?.state).to.equal('running');
    expect(resumed?.privateIP).to.equal(a.privateIP);
    expect(pidOf('gs-a')).to.not.equal(pid);

    for (const i of [a, b]) await p2.delete(i);
    await p2.delete(a); // deleting a missing instance is fine
    expect(readdirSync(dir)).to.deep.equal([]);
    expect(alive(pid)).to.equal(false);
  });

  it('gives instances of two infras (two base dirs) different addresses, so neither agent dies with EADDRINUSE', async () => {
    const p1 = new LocalProvider({ baseDir: join(dir, 'infra-1'), agentCommand, stopGraceMs: 1_000 });
    const p2 = new LocalProvider({ baseDir: join(dir, 'infra-2'), agentCommand, stopGraceMs: 1_000 });
    const [x, y] = await Promise.all([p1.create(req('gs-x')), p2.create(req('gs-y'))]);
    expect(x.privateIP).to.not.equal(y.privateIP);
    expect([(await p1.find('gs-x'))?.state, (await p2.find('gs-y'))?.state]).to.deep.equal(['running', 'running']);
    await p1.delete(x);
    await p2.delete(y);
  });

  it('starts again an instance whose process died while it should run (as after a host reboot)', async () => {
    const p = new LocalProvider({ baseDir: dir, agentCommand, stopGraceMs: 1_000 });
    const c = await p.create(req('gs-c'));
    process.kill(-pidOf('gs-c'), 'SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    expect((await p.find('gs-c'))?.state).to.equal('stopped');
    const again = await p.create(req('gs-c'));
    expect(again.state).to.equal('running');
    await p.delete(c);
  });
});
