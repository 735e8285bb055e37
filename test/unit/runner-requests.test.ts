// Who asked for a start, stop or delete (src/controllers/runner/requests.ts): when a request is
// new, and how managedFields and the delegate's annotation name who asked.
import { expect } from 'chai';
import { DELEGATE_ANNOTATIONS, GITSPACE_ANNOTATIONS, isRequester, type Gitspace } from '../../src/api/index.ts';
import { attribute, operatorStop, RequestLog, unrecordedRequest, type ManagedFieldsEntry } from '../../src/controllers/runner/requests.ts';
import type { KubeClient } from '../../src/runtime/kube.ts';

const now = Date.parse('2026-11-23T12:00:00Z');
const STATE = { 'f:spec': { 'f:state': {} } };
const BY = { 'f:metadata': { 'f:annotations': { [`f:${GITSPACE_ANNOTATIONS.requestedBy}`]: {}, [`f:${DELEGATE_ANNOTATIONS.want}`]: {} } } };
const WAKE = { 'f:metadata': { 'f:annotations': { [`f:${GITSPACE_ANNOTATIONS.wake}`]: {} } } };
const entry = (manager: string, time: string, fieldsV1: Record<string, unknown>, subresource?: string): ManagedFieldsEntry =>
  ({ manager, operation: 'Update', time, fieldsV1, ...(subresource ? { subresource } : {}) });
const created = entry('kubectl-client-side-apply', '2026-11-23T09:00:00Z', { 'f:spec': { 'f:state': {}, 'f:owner': {} } });
const operator = entry('', '2026-11-23T09:00:01Z', { 'f:metadata': { 'f:finalizers': {} } });
const statusWrite = entry('', '2026-11-23T11:59:59Z', { 'f:status': {} }, 'status');

describe('runner requests: when a request is new', () => {
  const rows: [string, Parameters<typeof unrecordedRequest>[0], string | undefined][] = [
    ['a new Gitspace (no phase) is no request', { deleting: false, desired: 'Running' }, undefined],
    ['Pending is no request either', { deleting: false, desired: 'Stopped', phase: 'Pending' }, undefined],
    ['Running, spec says Stopped: stop', { deleting: false, desired: 'Stopped', phase: 'Running' }, 'stop'],
    ['Provisioning, spec says Stopped: stop', { deleting: false, desired: 'Stopped', phase: 'Provisioning' }, 'stop'],
    ['Failed, spec says Stopped: stop', { deleting: false, desired: 'Stopped', phase: 'Failed' }, 'stop'],
    ['Stopped, spec says Running: start', { deleting: false, desired: 'Running', phase: 'Stopped' }, 'start'],
    ['Stopped and Stopped: nothing new', { deleting: false, desired: 'Stopped', phase: 'Stopped' }, undefined],
    ['a recorded stop still stopping: recorded once', { deleting: false, desired: 'Stopped', phase: 'Running', last: 'stop' }, undefined],
    ['a recorded stop, now Running again: start', { deleting: false, desired: 'Running', phase: 'Stopping', last: 'stop' }, 'start'],
    ['a recorded start, now Stopped: stop', { deleting: false, desired: 'Stopped', phase: 'Starting', last: 'start' }, 'stop'],
    ['deleting: delete', { deleting: true, desired: 'Running', phase: 'Running', last: 'start' }, 'delete'],
    ['a recorded delete: recorded once', { deleting: true, desired: 'Running', phase: 'Deleting', last: 'delete' }, undefined],
  ];
  for (const [name, input, want] of rows) {
    it(name, () => { expect(unrecordedRequest(input)).to.equal(want); });
  }
});

describe('runner requests: who asked', () => {
  const rows: [string, Parameters<typeof attribute>, Record<string, unknown>, string][] = [
    [
      'kubectl edit of spec.state names the field manager and the time, and says where the user is',
      ['stop', { managedFields: [created, operator, entry('kubectl-edit', '2026-11-23T10:42:01Z', STATE), statusWrite] }, { now }],
      { action: 'stop', source: 'kubernetes', via: 'kubectl-edit', at: '2026-11-23T10:42:01Z' },
      'stop requested via kubectl-edit at 2026-11-23T10:42:01Z (field manager; Kubernetes does not record the user — see the API server audit log)',
    ],
    [
      'the delegate changed spec.state and set requested-by in that write: the control-plane user',
      ['stop', { managedFields: [created, entry('gitspaces-delegate', '2026-11-23T10:00:00Z', { ...STATE, ...BY })], annotations: { [GITSPACE_ANNOTATIONS.requestedBy]: 'alice@example.com' } }, { now }],
      { action: 'stop', source: 'control-plane', by: 'alice@example.com', via: 'gitspaces-delegate', at: '2026-11-23T10:00:00Z' },
      'stop requested by alice@example.com (control plane, via gitspaces-delegate)',
    ],
    [
      'a kubectl edit after the delegate: the stale annotation is not believed',
      ['start', { managedFields: [entry('gitspaces-delegate', '2026-11-23T10:00:00Z', BY), entry('kubectl-edit', '2026-11-23T11:00:00Z', STATE)], annotations: { [GITSPACE_ANNOTATIONS.requestedBy]: 'alice' } }, { now }],
      { action: 'start', source: 'kubernetes', via: 'kubectl-edit', at: '2026-11-23T11:00:00Z' },
      'start requested via kubectl-edit at 2026-11-23T11:00:00Z (field manager; Kubernetes does not record the user — see the API server audit log)',
    ],
    [
      'a requested-by someone else wrote is not believed even in a delegate change',
      ['stop', { managedFields: [entry('gitspaces-delegate', '2026-11-23T10:00:00Z', STATE), entry('kubectl-annotate', '2026-11-23T09:30:00Z', BY)], annotations: { [GITSPACE_ANNOTATIONS.requestedBy]: 'mallory' } }, { now }],
      { action: 'stop', source: 'control-plane', via: 'gitspaces-delegate', at: '2026-11-23T10:00:00Z' },
      'stop requested by the control plane (control plane, via gitspaces-delegate)',
    ],
    [
      'a requested-by that is not a name is dropped',
      ['stop', { managedFields: [entry('gitspaces-delegate', '2026-11-23T10:00:00Z', { ...STATE, ...BY })], annotations: { [GITSPACE_ANNOTATIONS.requestedBy]: 'alice <script>' } }, { now }],
      { action: 'stop', source: 'control-plane', via: 'gitspaces-delegate', at: '2026-11-23T10:00:00Z' },
      'stop requested by the control plane (control plane, via gitspaces-delegate)',
    ],
    [
      'a start after an idle stop may come from the wake annotation',
      ['start', { managedFields: [created, entry('kubectl-annotate', '2026-11-23T11:30:00Z', WAKE)] }, { now, afterOperatorStop: true }],
      { action: 'start', source: 'kubernetes', via: 'kubectl-annotate', at: '2026-11-23T11:30:00Z' },
      'start requested via kubectl-annotate at 2026-11-23T11:30:00Z (field manager; Kubernetes does not record the user — see the API server audit log)',
    ],
    [
      'or, after an idle stop, from any spec change',
      ['start', { managedFields: [created, entry('argocd-controller', '2026-11-23T11:40:00Z', { 'f:spec': { 'f:env': {} } })] }, { now, afterOperatorStop: true }],
      { action: 'start', source: 'kubernetes', via: 'argocd-controller', at: '2026-11-23T11:40:00Z' },
      'start requested via argocd-controller at 2026-11-23T11:40:00Z (field manager; Kubernetes does not record the user — see the API server audit log)',
    ],
    [
      'a client without a field manager name, and status writes never count',
      ['stop', { managedFields: [entry('', '2026-11-23T10:00:00Z', STATE), statusWrite] }, { now }],
      { action: 'stop', source: 'kubernetes', at: '2026-11-23T10:00:00Z' },
      'stop requested via a client that names no field manager at 2026-11-23T10:00:00Z (field manager; Kubernetes does not record the user — see the API server audit log)',
    ],
    [
      'a manager name is shown printable',
      ['stop', { managedFields: [entry('evil\u001b[31m\ncli', '2026-11-23T10:00:00Z', STATE)] }, { now }],
      { action: 'stop', source: 'kubernetes', via: 'evil[31mcli', at: '2026-11-23T10:00:00Z' },
      'stop requested via evil[31mcli at 2026-11-23T10:00:00Z (field manager; Kubernetes does not record the user — see the API server audit log)',
    ],
    [
      'a Kubernetes delete: no user, no manager; the last change is a hint only',
      ['delete', { managedFields: [created, operator, entry('kubectl-edit', '2026-11-23T10:42:01Z', STATE), statusWrite], deletionTimestamp: '2026-11-23T11:00:00Z' }, { now }],
      { action: 'delete', source: 'kubernetes', at: '2026-11-23T11:00:00Z' },
      'delete requested at 2026-11-23T11:00:00Z (Kubernetes records neither the user nor a field manager for a delete — see the API server audit log; the last change before it was via kubectl-edit at 2026-11-23T10:42:01Z)',
    ],
    [
      "the delegate's delete: it said so (want Deleted) just before",
      ['delete', { managedFields: [created, entry('gitspaces-delegate', '2026-11-23T10:59:59Z', BY)], annotations: { [GITSPACE_ANNOTATIONS.requestedBy]: 'alice', [DELEGATE_ANNOTATIONS.want]: 'Deleted' }, deletionTimestamp: '2026-11-23T11:00:00Z' }, { now }],
      { action: 'delete', source: 'control-plane', by: 'alice', via: 'gitspaces-delegate', at: '2026-11-23T11:00:00Z' },
      'delete requested by alice (control plane, via gitspaces-delegate)',
    ],
    [
      "a delete after the delegate's stop is not the delegate's",
      ['delete', { managedFields: [entry('gitspaces-delegate', '2026-11-23T10:00:00Z', { ...STATE, ...BY })], annotations: { [GITSPACE_ANNOTATIONS.requestedBy]: 'alice', [DELEGATE_ANNOTATIONS.want]: 'Stopped' }, deletionTimestamp: '2026-11-23T11:00:00Z' }, { now }],
      { action: 'delete', source: 'kubernetes', at: '2026-11-23T11:00:00Z' },
      'delete requested at 2026-11-23T11:00:00Z (Kubernetes records neither the user nor a field manager for a delete — see the API server audit log; the last change before it was via gitspaces-delegate at 2026-11-23T10:00:00Z)',
    ],
    [
      'no managedFields at all: only the time is known',
      ['stop', {}, { now }],
      { action: 'stop', source: 'kubernetes', at: '2026-11-23T12:00:00.000Z' },
      'stop requested via a client that names no field manager at 2026-11-23T12:00:00.000Z (field manager; Kubernetes does not record the user — see the API server audit log)',
    ],
  ];
  for (const [name, args, request, message] of rows) {
    it(name, () => {
      const a = attribute(...args);
      expect(a.request).to.deep.equal(request);
      expect(a.message).to.equal(message);
    });
  }

  it("the operator's idle stop says so", () => {
    const a = operatorStop(now, '2026-11-23T11:00:00Z', '30m');
    expect(a.request).to.deep.equal({ action: 'stop', source: 'operator', by: 'gitspaces-operator', via: 'idle-timeout', at: '2026-11-23T12:00:00.000Z' });
    expect(a.message).to.equal('stopped by the operator: idle since 2026-11-23T11:00:00Z (idleTimeout 30m)');
  });

  it('a requester name is bounded and plain', () => {
    for (const ok of ['alice', 'alice@example.com', 'auth0|5f7c8ec7c33c6c004bbafe82', 'google-oauth2:1234', 'a'.repeat(256)]) expect(isRequester(ok), ok).to.equal(true);
    for (const bad of ['', ' alice', 'alice bob', 'a<b', 'a"b', 'a\nb', '-alice', 'a'.repeat(257), 42, undefined]) expect(isRequester(bad), String(bad)).to.equal(false);
  });
});

describe('runner requests: recorded once', () => {
  const gs = (phase: string, state: 'Running' | 'Stopped', lastRequest?: object): Gitspace => ({
    apiVersion: 'gitspaces.dev/v1alpha1', kind: 'Gitspace',
    metadata: { name: 'g', namespace: 'default', uid: 'u1', generation: 2 },
    spec: { infraRef: { name: 'i' }, owner: 'o', repository: { url: 'https://example.com/r.git' }, machineType: 'small', state },
    status: { phase, ...(lastRequest ? { lastRequest } : {}) },
  } as Gitspace);

  it('reads the object once and records one Event per request, until status has it', async () => {
    let gets = 0;
    const client = { get: () => { gets++; return Promise.resolve({ metadata: { uid: 'u1', managedFields: [entry('kubectl-edit', '2026-11-23T10:42:01Z', STATE)] } }); } } as unknown as KubeClient;
    const events: string[] = [];
    const log = new RequestLog({ client, now: () => now, event: (_g, reason, note) => { events.push(`${reason}: ${note}`); } });
    const stopped = gs('Running', 'Stopped');
    await log.note(stopped, 'Stopped');
    await log.note(stopped, 'Stopped'); // the status write has not happened (or failed): no second Event
    expect(gets).to.equal(1);
    expect(events).to.have.length(1);
    expect(events[0]).to.match(/^StopRequested: stop requested via kubectl-edit at 2026-11-23T10:42:01Z/);
    const recorded = log.current(stopped);
    expect(recorded).to.include({ action: 'stop', via: 'kubectl-edit' });
    // Written: later reconciles find it in status and do nothing.
    const written = gs('Stopped', 'Stopped', recorded);
    await log.note(written, 'Stopped');
    await log.note(written, 'Stopped');
    expect(gets).to.equal(1);
    expect(log.current(written)).to.deep.equal(recorded);
    // A new request: one more read and Event.
    await log.note(gs('Stopped', 'Running', recorded), 'Running');
    expect(gets).to.equal(2);
    expect(events[1]).to.match(/^StartRequested: /);
  });

  it("an idle stop is the operator's, and a failed write of it leaves no request behind", async () => {
    const client = { get: () => Promise.reject(new Error('not expected')) } as unknown as KubeClient;
    const events: string[] = [];
    const log = new RequestLog({ client, now: () => now, event: (_g, reason, note) => { events.push(`${reason}: ${note}`); } });
    const running = gs('Running', 'Running');
    expect(log.operatorStop(running, '2026-11-23T11:00:00Z', '1h')).to.include({ source: 'operator', action: 'stop' });
    expect(events).to.deep.equal(['AutoStopped: stopped by the operator: idle since 2026-11-23T11:00:00Z (idleTimeout 1h)']);
    await log.note(running, 'Running'); // the write failed: still Running, nothing to record
    expect(events).to.have.length(1);
  });
});
