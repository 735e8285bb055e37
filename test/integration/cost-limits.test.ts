// Why a Gitspace is running and when it will stop, with the operator's clock moved instead of
// waiting: status.lastActivity names the kind of use, status.stopsAt (the Stops column) the
// earliest deadline, and status.message says it as a sentence; maxRunTime stops a busy Gitspace
// after a warning Event; the VM of a Failed Gitspace is stopped after failedStopAfter (disk kept)
// and counted. The operator writes no spec field (Argo CD-safe). Local provider, real agent.
import { expect } from 'chai';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GITSPACE_ANNOTATIONS, OPERATOR_FIELD_MANAGER, type Gitspace } from '../../src/api/index.ts';
import type { Operator } from '../../src/controllers/operator.ts';
import { LocalProvider } from '../../src/providers/local/provider.ts';
import { testCluster } from '../cluster/current.ts';
import { makeRepo, makeSshKey, sshExec, type SshKey } from '../support/fixtures.ts';
import { gitspaceManifest, infraManifest, k8s } from '../support/gitspaces.ts';
import type { Manifest } from '../support/resources.ts';
import { startInProcessOperator } from '../support/provider-double.ts';
import { ROOT } from '../support/resources.ts';
import { eventually } from '../support/wait.ts';

const M = 60_000;

describe('cost controls: run-time limit, stop time, failed VMs', function () {
  this.timeout(120_000);
  let work: string;
  let key: SshKey;
  let op: Operator;
  let offsetMs = 0;
  let poke = 0;
  const nudge = (m: Manifest) => k8s.patch(m, { metadata: { annotations: { poke: String(++poke) } } });
  const settle = () => new Promise((r) => setTimeout(r, 1500));

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'gitspaces-cost-'));
    key = makeSshKey();
    const infra = infraManifest('cost', join(work, 'instances'));
    Object.assign(infra.spec as Record<string, unknown>, { idleTimeout: '1h', failedStopAfter: '30m' });
    await k8s.apply(infra);
    const local = new LocalProvider({ baseDir: join(work, 'instances'), agentCommand: [process.execPath, join(ROOT, 'src/cli/main.ts')] });
    op = await startInProcessOperator({ provider: local, realAgent: true, now: () => Date.now() + offsetMs, logLevel: 'warn' });
  });

  after(async () => {
    try {
      await k8s.cleanUpInfra('cost');
    } finally {
      await op.manager.stop();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('says when and why it stops; the run-time limit stops a busy Gitspace after a warning', async () => {
    offsetMs = 0;
    const m = gitspaceManifest('bounded', { infra: 'cost', repo: makeRepo(join(work, 'a')), key });
    // The idle timeout (3h) comes after the run-time limit (2h): the limit is the stop time.
    Object.assign(m.spec as Record<string, unknown>, { maxRunTime: '2h', idleTimeout: '3h' });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 60_000);
    const startedAt = Date.parse(running.status?.startedAt ?? '');
    expect(Number.isNaN(startedAt)).to.equal(false);
    // Cost metrics: the time to Running, and VM time by infra, machine type and namespace.
    const metrics = await op.manager.metrics.registry.metrics();
    expect(metrics).to.match(/gitspaces_time_to_ready_seconds_count\{infra="cost",pooled="false"\} 1/);
    expect(Number(/gitspaces_vm_running_seconds_total\{infra="cost",machine_type="small",namespace="default"\} ([\d.e+-]+)/.exec(metrics)?.[1] ?? 0)).to.be.greaterThan(0);
    // An SSH session: the last activity, and what it was.
    expect((await sshExec(running.status!.instance!.privateIP!, 47122, key, 'true')).code).to.equal(0);
    await nudge(m);
    const seen = await k8s.waitFor(m, (g) => g.status?.lastActivity?.source === 'ssh', 20_000);
    const limitAt = startedAt + 120 * M;
    expect(seen.status?.stopsAt).to.equal(new Date(limitAt - (limitAt % M)).toISOString().replace('.000Z', 'Z'));
    // (A time that is not today names its day: "Dec 1 00:11 UTC" when run after 22:00 UTC.)
    const day = '(?:[A-Z][a-z]{2} \\d{1,2} )?';
    expect(seen.status?.message).to.match(new RegExp(`^idle since ${day}\\d\\d:\\d\\d UTC \\(ssh\\); stops at ${day}${seen.status!.stopsAt!.slice(11, 16)} UTC \\(run-time limit 2h\\)$`));
    // kubectl get gs shows the Stops column.
    const table = await testCluster().request('GET', `/apis/gitspaces.dev/v1alpha1/namespaces/default/gitspaces/bounded`, { headers: { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' } });
    const t = table.json as { columnDefinitions: { name: string }[]; rows: { cells: unknown[] }[] };
    const col = t.columnDefinitions.findIndex((c) => c.name === 'Stops');
    expect(col).to.be.greaterThan(0);
    expect(t.rows[0]?.cells[col]).to.equal(seen.status?.stopsAt);

    // 1h50m in (the agent's own clock says it was used just now): a warning Event.
    offsetMs = 110 * M;
    await nudge(m);
    await eventually('the StopSoon warning', 20_000, async () => (await k8s.eventReasons(seen)).includes('StopSoon') || undefined);
    expect((await k8s.get(m))?.status?.phase).to.equal('Running');

    // At the limit: stopped though busy, and it says so.
    offsetMs = 121 * M;
    expect((await sshExec(running.status!.instance!.privateIP!, 47122, key, 'true')).code).to.equal(0);
    await nudge(m);
    const stopped = await k8s.waitPhase(m, 'Stopped', 30_000);
    expect(stopped.status?.autoStopped).to.include({ reason: 'MaxRunTime' });
    expect(stopped.status?.lastRequest).to.include({ source: 'operator', via: 'max-run-time' });
    expect(stopped.status?.message).to.include('run-time limit (2h)');
    expect(stopped.status?.stopsAt).to.equal(undefined);
    expect(await k8s.eventReasons(stopped)).to.include('MaxRunTimeReached');
    await settle();
    expect((await k8s.get(m))?.status?.phase, 'stays stopped').to.equal('Stopped');

    // Started again on request: a new run, counted from now.
    await k8s.patch(m, { metadata: { annotations: { [GITSPACE_ANNOTATIONS.wake]: new Date(Date.now() + offsetMs + 1000).toISOString() } } });
    offsetMs = 122 * M; // (the clock does not go back)
    const again = await k8s.waitPhase(m, 'Running', 60_000);
    expect(Date.parse(again.status?.startedAt ?? '')).to.be.greaterThan(startedAt + 120 * M);

    // The operator never wrote the spec (Argo CD would fight it): its writes (named by its
    // User-Agent) own no spec field, and only the test's own apply moved the generation.
    const full = (await testCluster().request('GET', '/apis/gitspaces.dev/v1alpha1/namespaces/default/gitspaces/bounded')).json as Gitspace & { metadata: { managedFields?: { manager: string; operation: string; subresource?: string; fieldsV1?: Record<string, unknown> }[] } };
    const mine = (full.metadata.managedFields ?? []).filter((f) => f.manager === OPERATOR_FIELD_MANAGER);
    expect(mine.some((f) => f.subresource === 'status'), 'the operator wrote status under its own name').to.equal(true);
    for (const f of mine) expect(Object.keys(f.fieldsV1 ?? {}), `${f.operation} ${f.subresource ?? ''}`).to.not.include('f:spec');
    expect(full.metadata.generation).to.equal(1);
    expect(full.spec).to.deep.include({ state: 'Running', maxRunTime: '2h', idleTimeout: '3h' });
    await k8s.deleteAndWait(m);
  });

  it('stops the VM of a Failed Gitspace after failedStopAfter, keeps its disk and phase, counts it, and archives it after deleteAfterStopped', async () => {
    offsetMs = 0;
    const repo = makeRepo(join(work, 'b'), JSON.stringify({ postCreateCommand: 'echo broken >&2; exit 3' }));
    const m = gitspaceManifest('broken', { infra: 'cost', repo, key });
    Object.assign(m.spec as Record<string, unknown>, { deleteAfterStopped: '48h' });
    await k8s.apply(m);
    const failed = await k8s.waitPhase(m, 'Failed', 60_000);
    expect(failed.status?.failedAt).to.be.a('string');
    const disk = join(work, 'instances', failed.status!.instance!.name!);
    await nudge(m);
    await settle();
    expect((await k8s.get(m))?.status?.autoStopped, 'not yet').to.equal(undefined);

    offsetMs = 31 * M;
    await nudge(m);
    const stopped = await k8s.waitFor(m, (g) => g.status?.autoStopped?.reason === 'Failed' && g.status.phase === 'Failed' && g.status.conditions?.some((c) => c.type === 'InstanceReady' && c.reason === 'Stopped') === true, 30_000);
    expect(stopped.status?.message).to.include('disk is kept');
    expect(stopped.status?.lastRequest).to.include({ via: 'failed-stop-after' });
    expect(await k8s.eventReasons(stopped)).to.include('FailedVMStopped');
    expect(existsSync(disk), 'the disk is kept').to.equal(true);
    const metrics = await op.manager.metrics.registry.metrics();
    expect(metrics).to.match(/gitspaces_failed_vms_stopped_total\{infra="cost"\} 1/);
    await settle();
    expect((await k8s.get(m))?.status?.phase, 'still Failed, not restarted').to.equal('Failed');
    expect((await k8s.get(m))?.status?.message).to.match(/; deleted at .* \(deleteAfterStopped 48h\) unless started before then$/);

    // Kept for inspection as long as a stopped Gitspace's disk is, then archived the same way.
    offsetMs = 31 * M + 48 * 60 * M + 1000;
    await nudge(m);
    const archived = await k8s.waitFor(m, (g) => g.status?.phase === 'Archived' && g.status.instance === undefined, 30_000);
    expect(archived.status?.archivedAt).to.be.a('string');
    expect(existsSync(disk), 'the disk is deleted').to.equal(false);
    await k8s.deleteAndWait(m);
  });

  it('archives a Gitspace stopped longer than deleteAfterStopped (VM and disk deleted, object kept) after a warning; starting it re-creates it', async () => {
    offsetMs = 0;
    const m = gitspaceManifest('kept', { infra: 'cost', repo: makeRepo(join(work, 'c')), key });
    Object.assign(m.spec as Record<string, unknown>, { deleteAfterStopped: '48h' });
    await k8s.apply(m);
    const running = await k8s.waitPhase(m, 'Running', 60_000);
    const disk = join(work, 'instances', running.status!.instance!.name!);
    expect(existsSync(disk)).to.equal(true);
    await k8s.patch(m, { spec: { state: 'Stopped' } });
    const stopped = await k8s.waitFor(m, (g) => g.status?.phase === 'Stopped' && g.status.stoppedAt !== undefined, 30_000);
    const stoppedAt = Date.parse(stopped.status!.stoppedAt!);

    offsetMs = 47 * 60 * M + 1000;
    await nudge(m);
    await eventually('the ArchiveSoon warning', 20_000, async () => (await k8s.eventReasons(stopped)).includes('ArchiveSoon') || undefined);
    expect((await k8s.get(m))?.status?.phase).to.equal('Stopped');
    expect(existsSync(disk), 'not yet').to.equal(true);

    offsetMs = stoppedAt - Date.now() + 48 * 60 * M + 1000;
    await nudge(m);
    // (Archived with the instance still listed is the archive's intent, written before the delete.)
    const archived = await k8s.waitFor(m, (g) => g.status?.phase === 'Archived' && g.status.instance === undefined, 30_000);
    expect(archived.status?.archivedAt).to.be.a('string');
    expect(archived.status?.instance).to.equal(undefined);
    expect(archived.status?.message).to.include('start it again to get a new VM');
    expect(existsSync(disk), 'the disk is deleted').to.equal(false);
    expect(await k8s.eventReasons(archived)).to.include('Archived');
    await settle();
    expect((await k8s.get(m))?.status?.phase, 'stays Archived').to.equal('Archived');

    offsetMs = 0;
    await k8s.patch(m, { spec: { state: 'Running' } });
    const back = await k8s.waitPhase(m, 'Running', 60_000);
    expect(back.status?.archivedAt).to.equal(undefined);
    expect(existsSync(join(work, 'instances', back.status!.instance!.name!, 'home'))).to.equal(true);
    await k8s.deleteAndWait(m);
  });
});
