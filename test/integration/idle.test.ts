// Idle auto-stop: a Running Gitspace with no activity for its idleTimeout is stopped, with an
// Event; activity (an SSH session) keeps it running. The operator runs in-process here so the test
// can move its clock instead of waiting five minutes.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GITSPACE_ANNOTATIONS } from '../../src/api/index.ts';
import type { Operator } from '../../src/controllers/operator.ts';
import { LocalProvider } from '../../src/providers/local/provider.ts';
import { makeRepo, makeSshKey, sshExec, type SshKey } from '../support/fixtures.ts';
import { gitspaceManifest, infraManifest, k8s } from '../support/gitspaces.ts';
import { startInProcessOperator } from '../support/provider-double.ts';
import { ROOT } from '../support/resources.ts';

describe('idle auto-stop', function () {
  this.timeout(90_000);
  let work: string;
  let repo: string;
  let key: SshKey;
  let op: Operator;
  let offsetMs = 0;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-idle-'));
    repo = makeRepo(work);
    key = makeSshKey();
    const infra = infraManifest('idle', join(work, 'instances'));
    (infra.spec as { idleTimeout?: string }).idleTimeout = '10m';
    await k8s.apply(infra);
    const local = new LocalProvider({ baseDir: join(work, 'instances'), agentCommand: [process.execPath, join(ROOT, 'src/cli/main.ts')] });
    op = await startInProcessOperator({ provider: local, realAgent: true, now: () => Date.now() + offsetMs, logLevel: 'warn' });
  });

  after(async () => {
    try {
      await k8s.cleanUpInfra('idle');
    } finally {
      await op.manager.stop();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('stops a Gitspace after its idleTimeout without activity, and activity keeps it running', async () => {
    const m = gitspaceManifest('sleepy', { infra: 'idle', repo, key, idleTimeout: '5m' });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 60_000);
    const ip = running.status!.instance!.privateIP!;

    // 4 minutes later, with an SSH session just now: still running.
    expect((await sshExec(ip, 47122, key, 'true')).code).to.equal(0);
    offsetMs = 4 * 60_000;
    await k8s.patch(m, { metadata: { annotations: { poke: '1' } } });
    await new Promise((r) => setTimeout(r, 1500));
    expect((await k8s.get(m))?.status?.phase).to.equal('Running');

    // 6 minutes after the last activity: stopped by the operator, which remembers the stop in
    // status and leaves the spec alone (GitOps tools such as Argo CD would otherwise fight it).
    offsetMs = 6 * 60_000;
    await k8s.patch(m, { metadata: { annotations: { poke: '2' } } });
    const stopped = await k8s.waitPhase(m, 'Stopped', 30_000);
    expect(stopped.spec.state).to.equal('Running');
    expect(stopped.metadata.generation).to.equal(1);
    expect(stopped.status?.autoStopped).to.include({ generation: 1 });
    expect(await k8s.eventReasons(stopped)).to.include('AutoStopped');

    // Later reconciles keep it stopped although the spec says Running.
    offsetMs = 0;
    await k8s.patch(m, { metadata: { annotations: { poke: '3' } } });
    await new Promise((r) => setTimeout(r, 1500));
    expect((await k8s.get(m))?.status?.phase).to.equal('Stopped');

    // The wake annotation (what the delegate sets for a user's start) resumes it.
    await k8s.patch(m, { metadata: { annotations: { [GITSPACE_ANNOTATIONS.wake]: new Date(Date.parse(stopped.status?.autoStopped?.at ?? '') + 1000).toISOString() } } });
    const woken = await k8s.waitPhase(m, 'Running', 30_000);
    expect(woken.status?.autoStopped).to.equal(undefined);
    expect(woken.metadata.generation).to.equal(1);
    await k8s.deleteAndWait(m);
  });
});
