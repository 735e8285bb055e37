// The runner's status writes: one per reconcile, with the Events a phase change brings and the
// time-to-Running metric; and the write of a wait (a reason shown as the Ready condition).
import type { Counter, Histogram } from 'prom-client';
import { GITSPACES, type Gitspace, type GitspaceStatus, type Phase } from '../../api/index.ts';
import { setCondition, type Condition } from '../../runtime/conditions.ts';
import type { Informer } from '../../runtime/informer.ts';
import type { KubeClient } from '../../runtime/kube.ts';
import { patchStatusIfChanged } from '../../runtime/objects.ts';
import type { RequestLog } from './requests.ts';
import { MAX_MESSAGE } from './status.ts';
import type { Wait } from './wait.ts';

export interface StatusWriterDeps {
  client: KubeClient;
  gitspaces: Informer<Gitspace>;
  now: () => number;
  requests: RequestLog;
  event: (gs: Gitspace, type: 'Normal' | 'Warning', reason: string, note: string) => void;
  cost?: { timeToReady: Histogram<'infra' | 'pooled'>; poolClaims?: Counter<'infra' | 'machine_type' | 'result'> };
}

export class StatusWriter {
  private readonly d: StatusWriterDeps;

  constructor(d: StatusWriterDeps) {
    this.d = d;
  }

  async write(gs: Gitspace, status: GitspaceStatus, phase: Phase): Promise<void> {
    const before = gs.status?.phase;
    this.d.gitspaces.writeThrough(await patchStatusIfChanged(this.d.client, GITSPACES, gs, status));
    if (before === phase) return;
    const url = status.urls?.ide ?? '';
    const transitions: Partial<Record<Phase, [string, string, 'Normal' | 'Warning']>> = {
      Running: ['IDEReady', `the IDE is ready: ${url}`, 'Normal'],
      Stopped: ['Stopped', 'the instance is stopped; its disk is kept', 'Normal'],
      Failed: ['Failed', status.message ?? 'failed', 'Warning'],
    };
    const t = transitions[phase];
    if (t) this.d.event(gs, t[2], t[0], t[1]);
    if (phase === 'Running') {
      // From the request: a start's (lastRequest), else the Gitspace's creation.
      const asked = status.lastRequest?.action === 'start' ? status.lastRequest.at : gs.metadata.creationTimestamp;
      const from = Date.parse(asked ?? '');
      if (!Number.isNaN(from)) this.d.cost?.timeToReady.observe({ infra: gs.spec.infraRef.name, pooled: String(Boolean(status.instance?.pooled)) }, Math.max(0, (this.d.now() - from) / 1000));
    }
    if (phase === 'Starting' && status.conditions?.some((c) => c.type === 'InstanceReady' && c.status === 'True')) {
      this.d.event(gs, 'Normal', 'AgentConnected', 'the agent on the instance answered');
    }
  }

  async waiting(gs: Gitspace, w: Wait): Promise<void> {
    const gen = gs.metadata.generation;
    const now = new Date(this.d.now());
    let conditions = (gs.status?.conditions ?? []) as Condition[];
    const message = w.message.slice(0, MAX_MESSAGE);
    conditions = setCondition(conditions, { type: 'Ready', status: 'False', reason: w.reason, message }, gen, now);
    const lastRequest = this.d.requests.current(gs);
    const status: GitspaceStatus = { ...(gs.status ?? {}), phase: w.phase, message, observedGeneration: gen, conditions, ...(lastRequest ? { lastRequest } : {}) };
    // Compared as stored: a message cut to the schema's limit is not news on every reconcile.
    const changed = gs.status?.message !== message;
    this.d.gitspaces.writeThrough(await patchStatusIfChanged(this.d.client, GITSPACES, gs, status));
    if (changed) this.d.event(gs, 'Warning', w.reason, w.message);
  }
}
