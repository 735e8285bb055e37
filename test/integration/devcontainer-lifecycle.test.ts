// devcontainer.json lifecycle commands on a VM without a container runtime (the local provider):
// every hook runs, as the developer's user in the checkout, in the spec's order — initialize,
// onCreate, updateContent, postCreate, postStart on the first start; initialize and postStart on
// every later one; postAttach each time a tool (an SSH client here) attaches — and a failing hook
// fails its step naming the command and its exit code, with no later hook run.
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { testCluster } from '../cluster/current.ts';
import { makeRepo, makeSshKey, sshExec, type SshKey } from '../support/fixtures.ts';
import { gitspaceManifest, infraManifest, k8s } from '../support/gitspaces.ts';
import { startOperator, type OperatorProcess } from '../support/operator.ts';
import { eventually } from '../support/wait.ts';

/** Each hook appends its name (and who ran it where) to .hooks in the checkout. */
const HOOKS = `{
  "initializeCommand": "echo initialize $(id -un) $PWD >> .hooks",
  "onCreateCommand": ["bash", "-c", "echo onCreate >> .hooks"],
  "updateContentCommand": "echo updateContent >> .hooks",
  "postCreateCommand": { "one": "echo postCreate >> .hooks", "two": "echo postCreate >> .hooks" },
  "postStartCommand": "echo postStart >> .hooks",
  "postAttachCommand": "echo postAttach >> .hooks",
  "remoteUser": "node"
}`;

describe('devcontainer lifecycle commands without a container runtime (operator process, local provider)', function () {
  this.timeout(120_000);
  let work: string;
  let key: SshKey;
  let op: OperatorProcess;
  const infra = 'hooks';

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-hooks-'));
    key = makeSshKey();
    await k8s.apply(infraManifest(infra, join(work, 'instances')));
    op = await startOperator({ kubeconfig: testCluster().kubeconfigPath, logDir: work });
  });
  after(async () => {
    try {
      await k8s.cleanUpInfra(infra);
    } finally {
      await op.kill('SIGTERM');
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('runs every hook in the spec\'s order, initialize and postStart again on each start, postAttach per SSH login', async () => {
    const repo = makeRepo(mkdtempSync(join(work, 'repo-')), HOOKS);
    const m = gitspaceManifest('hooks', { infra, repo, key });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 60_000);
    const ip = running.status?.instance?.privateIP ?? '';
    const hooksFile = join(work, 'instances', running.status?.instance?.name ?? '', 'home/repo/.hooks');
    const lines = () => readFileSync(hooksFile, 'utf8').trim().split('\n');
    const home = join(work, 'instances', running.status?.instance?.name ?? '', 'home');
    expect(lines()).to.deep.equal([`initialize ${userInfo().username} ${home}/repo`, 'onCreate', 'updateContent', 'postCreate', 'postCreate', 'postStart']);

    // A tool attaches: an SSH login runs postAttachCommand (once, however many logins in a minute).
    expect((await sshExec(ip, 47122, key, 'true')).code).to.equal(0);
    expect((await sshExec(ip, 47122, key, 'true')).code).to.equal(0);
    await eventually('postAttachCommand to run', 10_000, () => lines().at(-1) === 'postAttach');
    await new Promise((r) => setTimeout(r, 1_000));
    expect(lines().filter((l) => l === 'postAttach')).to.have.length(1);

    // Stop and start: initializeCommand and postStartCommand only (the disk keeps what the others made).
    await k8s.patch(m, { spec: { state: 'Stopped' } });
    await k8s.waitPhase(m, 'Stopped', 30_000);
    await k8s.patch(m, { spec: { state: 'Running' } });
    await k8s.waitPhase(m, 'Running', 30_000);
    expect(lines().slice(7)).to.deep.equal([`initialize ${userInfo().username} ${home}/repo`, 'postStart']);
    expect((await sshExec(ip, 47122, key, 'true')).code).to.equal(0);
    await eventually('postAttachCommand to run after the restart', 10_000, () => lines().at(-1) === 'postAttach');
  });

  it('fails the step of a failing hook, naming the command and its exit code, and runs no later hook', async () => {
    const repo = makeRepo(mkdtempSync(join(work, 'repo-')), '{ "onCreateCommand": "echo onCreate >> .hooks; echo cannot build >&2; exit 3", "postCreateCommand": "echo postCreate >> .hooks" }');
    const m = gitspaceManifest('hooks-fail', { infra, repo, key });
    await k8s.apply(m);
    const failed = await k8s.waitPhase(m, 'Failed', 60_000);
    expect(failed.status?.message).to.equal('set-up step onCreateCommand: onCreateCommand `echo onCreate >> .hooks; echo cannot build >&2; exit 3` exited 3: cannot build');
    const hooksFile = join(work, 'instances', failed.status?.instance?.name ?? '', 'home/repo/.hooks');
    expect(existsSync(hooksFile) ? readFileSync(hooksFile, 'utf8').trim().split('\n') : []).to.deep.equal(['onCreate']);
  });
});
