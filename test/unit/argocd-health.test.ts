// The Argo CD health checks in docs/argocd/, run by a real Lua 5.1 interpreter (Debian's lua5.1) in
// a sandbox like Argo CD's: the base and table libraries and a safe os, no string library. The
// sample statuses come from the controllers' own code (decide(), setCondition()) where they can.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import {
  API_VERSION, FINALIZERS, GITSPACE, GITSPACE_INFRA, GROUP, PHASES,
  type Condition, type Gitspace, type GitspaceInfra, type GitspaceStatus, type Phase,
} from '../../src/api/index.ts';
import { decide, type DecideInput, type Decision } from '../../src/controllers/runner/decide.ts';
import { setCondition, type ConditionInput } from '../../src/runtime/conditions.ts';
import { ROOT } from '../support/resources.ts';

const LUA = 'lua5.1';
const DOCS = join(ROOT, 'docs', 'argocd');
const GITSPACE_SCRIPT = readFileSync(join(DOCS, 'gitspace-health.lua'), 'utf8');
const INFRA_SCRIPT = readFileSync(join(DOCS, 'gitspaceinfra-health.lua'), 'utf8');

// --- JS value → Lua table constructor ------------------------------------------------------------

/** A Lua 5.1 string literal: printable ASCII as is, every other byte (UTF-8) as a 3-digit \ddd escape. */
function luaString(s: string): string {
  let out = '"';
  for (const b of Buffer.from(s, 'utf8')) {
    if (b === 0x22) out += '\\"';
    else if (b === 0x5c) out += '\\\\';
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\${b.toString().padStart(3, '0')}`;
  }
  return `${out}"`;
}

/** A Lua expression for a JSON-shaped value: objects with ["key"] keys, arrays as sequences. */
function toLua(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'string') return luaString(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`no Lua literal for ${v}`);
    return Object.is(v, -0) ? '0' : String(v);
  }
  if (Array.isArray(v)) return `{${v.map((x: unknown) => toLua(x)).join(', ')}}`;
  if (typeof v === 'object') {
    const fields = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .map(([k, x]) => `[${luaString(k)}] = ${toLua(x)}`);
    return `{${fields.join(', ')}}`;
  }
  throw new Error(`no Lua literal for a ${typeof v}`);
}

// --- running Lua ---------------------------------------------------------------------------------

function lua(program: string): string {
  const r = spawnSync(LUA, ['-'], { input: program, encoding: 'utf8' });
  if (r.error) {
    const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(missing ? `${LUA} not found on PATH: install Debian's lua5.1 package (apt-get install lua5.1) to run the Argo CD health check tests` : `${LUA}: ${r.error.message}`);
  }
  if (r.status !== 0) throw new Error(`${LUA} exited with ${r.status ?? r.signal ?? '?'}: ${r.stderr}`);
  return r.stdout;
}

/**
 * A program that sets `obj` and runs `script` as a chunk with only what Argo CD's VM opens for
 * custom checks (util/lua/lua.go: base, package, table, a safe os with time and date), then prints
 * the returned status and message on two lines ("ERROR" and the error when it fails).
 */
function healthProgram(script: string, obj: unknown): string {
  return `
local print, pcall, type, tostring = print, pcall, type, tostring
local env = {
  obj = ${toLua(obj)},
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall, print = print,
  rawequal = rawequal, rawget = rawget, rawset = rawset, select = select, getmetatable = getmetatable,
  setmetatable = setmetatable, tonumber = tonumber, tostring = tostring, type = type, unpack = unpack, xpcall = xpcall,
  table = { concat = table.concat, insert = table.insert, maxn = table.maxn, remove = table.remove, sort = table.sort, getn = table.getn },
  os = { time = os.time, date = os.date },
}
env._G = env
local check = assert(loadstring(${luaString(script)}, "=health.lua"))
setfenv(check, env)
getmetatable("").__index = nil -- no ("s"):method() either: Argo CD does not open the string library
local ok, hs = pcall(check)
if not ok then print("ERROR") print(tostring(hs)) return end
if type(hs) ~= "table" then print("ERROR") print("the script returned a " .. type(hs)) return end
print(tostring(hs.status))
if type(hs.message) == "string" then print(hs.message) else print("<message is a " .. type(hs.message) .. ">") end
`;
}

const STATUSES = ['Healthy', 'Progressing', 'Degraded', 'Suspended', 'Missing'] as const;
type HealthStatus = (typeof STATUSES)[number];

function health(script: string, obj: unknown): { status: string; message: string } {
  const out = lua(healthProgram(script, obj));
  const nl = out.indexOf('\n');
  const status = out.slice(0, nl);
  const message = out.slice(nl + 1).replace(/\n$/, '');
  if (status === 'ERROR') throw new Error(`the health script failed: ${message}`);
  return { status, message };
}

// --- samples, built the way the controllers build status -----------------------------------------

const GEN = 2;
const NOW = new Date('2026-11-23T12:00:00Z');

function conditionsOf(list: ConditionInput[], generation = GEN): Condition[] {
  let out: Condition[] = [];
  for (const c of list) out = setCondition(out, c, generation, NOW);
  return out;
}

function gitspace(o: { state?: 'Running' | 'Stopped'; generation?: number; deleting?: boolean; status?: GitspaceStatus }): Gitspace {
  return {
    apiVersion: API_VERSION,
    kind: GITSPACE.kind,
    metadata: {
      name: 'web',
      namespace: 'team-a',
      uid: '0b7c1c9e-1111-2222-3333-444455556666',
      generation: o.generation ?? GEN,
      finalizers: [FINALIZERS.gitspace],
      ...(o.deleting ? { deletionTimestamp: NOW.toISOString() } : {}),
    },
    spec: {
      infraRef: { name: 'gcp' },
      owner: 'alice',
      repository: { url: 'https://github.com/acme/web.git' },
      machineType: 'standard',
      ...(o.state ? { state: o.state } : {}),
    },
    ...(o.status ? { status: o.status } : {}),
  };
}

/** The status the runner writes for a decision (RunnerReconciler.composeStatus). */
function decided(input: Partial<DecideInput>, generation = GEN): GitspaceStatus {
  const d: Decision = decide({ desired: 'Running', idleTimeoutMs: 0, now: NOW.getTime(), ...input });
  return {
    phase: d.phase,
    ...(d.message ? { message: d.message } : {}),
    observedGeneration: generation,
    conditions: conditionsOf(Object.entries(d.conditions).map(([type, c]) => ({ type, ...c })), generation),
    urls: { ide: 'https://web--team-a.gitspaces.example.com/' },
  };
}

/** The status the runner writes while it waits (RunnerReconciler.writeWaiting). */
function waiting(old: GitspaceStatus, reason: string, message: string, phase: Phase = old.phase ?? 'Pending'): GitspaceStatus {
  const conditions = setCondition(old.conditions, { type: 'Ready', status: 'False', reason, message }, GEN, NOW);
  return { ...old, phase, message, observedGeneration: GEN, conditions };
}

const running = decided({ instance: { state: 'running', address: '10.0.0.5' }, agent: { reachable: true, state: 'ready', lastActivityTime: NOW.toISOString() } });
const provisioning = decided({});
const stopped = decided({ desired: 'Stopped', instance: { state: 'stopped' } });

interface Case<T> {
  name: string;
  obj: T;
  status: HealthStatus;
  /** A part of the message. */
  message: string;
}

const gitspaceCases: Case<Gitspace>[] = [
  // No status yet, or one written for an older spec.
  { name: 'no status yet', obj: gitspace({}), status: 'Progressing', message: 'Waiting for the controller' },
  { name: 'a status without a phase', obj: gitspace({ status: {} }), status: 'Progressing', message: 'Waiting for the controller' },
  { name: 'stale observedGeneration', obj: gitspace({ generation: 3, status: running }), status: 'Progressing', message: 'observe generation 3' },
  { name: 'no observedGeneration', obj: gitspace({ status: { ...running, observedGeneration: undefined } }), status: 'Progressing', message: 'observe generation 2' },
  {
    name: 'spec.state changed to Stopped, not yet observed (desired vs observed)',
    obj: gitspace({ state: 'Stopped', generation: 3, status: running }),
    status: 'Progressing',
    message: 'Waiting for the controller',
  },

  // Every phase decide() produces, desired Running.
  { name: 'Provisioning: creating the instance', obj: gitspace({ status: provisioning }), status: 'Progressing', message: 'Provisioning: creating the instance' },
  { name: 'Provisioning: booting', obj: gitspace({ status: decided({ instance: { state: 'pending' } }) }), status: 'Progressing', message: 'Provisioning: the instance is booting' },
  { name: 'Starting: resuming a stopped instance', obj: gitspace({ status: decided({ instance: { state: 'stopped' } }) }), status: 'Progressing', message: 'Starting: starting the instance' },
  {
    name: 'Starting: waiting for the agent',
    obj: gitspace({ status: decided({ instance: { state: 'running', address: '10.0.0.5' }, agent: { reachable: false, error: 'ECONNREFUSED' } }) }),
    status: 'Progressing',
    message: 'Starting: waiting for the agent',
  },
  {
    name: 'Starting: setting up',
    obj: gitspace({ status: decided({ instance: { state: 'running' }, agent: { reachable: true, state: 'setting-up', step: { name: 'clone' } } }) }),
    status: 'Progressing',
    message: 'Starting: setting up: clone',
  },
  {
    name: 'Stopping, desired Running: waits for the stop, then starts',
    obj: gitspace({ status: decided({ instance: { state: 'stopping' } }) }),
    status: 'Progressing',
    message: 'Stopping (desired Running)',
  },
  { name: 'Running and Ready', obj: gitspace({ status: running }), status: 'Healthy', message: 'Running' },
  { name: 'Running and Ready, spec.state explicit', obj: gitspace({ state: 'Running', status: running }), status: 'Healthy', message: 'Running' },
  {
    name: 'Failed: a set-up step failed',
    obj: gitspace({ status: decided({ instance: { state: 'running' }, agent: { reachable: true, state: 'failed', step: { name: 'postCreateCommand', message: 'exited 2' } } }) }),
    status: 'Degraded',
    message: 'StepFailed: set-up step postCreateCommand: exited 2',
  },
  {
    name: 'Failed: the provider rejected the spec (InvalidConfig)',
    obj: gitspace({ status: waiting(provisioning, 'InvalidConfig', 'spec.machineType: "huge" is not offered by GitspaceInfra "gcp" (offered: standard)', 'Failed') }),
    status: 'Degraded',
    message: 'InvalidConfig: spec.machineType: "huge" is not offered',
  },

  // Stopped on purpose.
  { name: 'Stopped, desired Stopped', obj: gitspace({ state: 'Stopped', status: stopped }), status: 'Suspended', message: 'Stopped: stopped; the instance and its disk are kept' },
  { name: 'Archived (stopped past deleteAfterStopped), desired Stopped', obj: gitspace({ state: 'Stopped', status: decided({ desired: 'Stopped', archived: true, deleteAfterStoppedMs: 30 * 24 * 3_600_000 }) }), status: 'Suspended', message: 'Archived: archived: its VM and disk were deleted after 720h stopped' },
  { name: 'Stopped before any instance was created', obj: gitspace({ state: 'Stopped', status: decided({ desired: 'Stopped' }) }), status: 'Suspended', message: 'Stopped' },
  { name: 'Stopping, desired Stopped', obj: gitspace({ state: 'Stopped', status: decided({ desired: 'Stopped', instance: { state: 'running' } }) }), status: 'Progressing', message: 'Stopping: stopping the instance' },
  // The idle timeout: remembered in status.autoStopped, the spec still says Running (no drift).
  { name: 'auto-stopped after the idle timeout, still stopping', obj: gitspace({ state: 'Running', status: { ...decided({ desired: 'Stopped', instance: { state: 'stopping' } }), autoStopped: { at: NOW.toISOString(), generation: GEN } } }), status: 'Progressing', message: 'Stopping' },
  { name: 'auto-stopped after the idle timeout', obj: gitspace({ state: 'Running', status: { ...stopped, autoStopped: { at: NOW.toISOString(), generation: GEN } } }), status: 'Suspended', message: 'Stopped' },
  { name: 'an idle stop from an older spec no longer stands', obj: gitspace({ state: 'Running', generation: GEN + 1, status: { ...decided({ instance: { state: 'stopped' } }, GEN + 1), autoStopped: { at: NOW.toISOString(), generation: GEN } } }), status: 'Progressing', message: 'Starting' },

  // Desired and observed state disagree at the current generation (the runner keeps the phase while it waits).
  {
    name: 'desired Stopped, still Running while the cloud errs',
    obj: gitspace({ state: 'Stopped', status: waiting(running, 'ProviderError', 'compute.instances.stop: 503 backend error') }),
    status: 'Progressing',
    message: 'Running (desired Stopped): compute.instances.stop: 503',
  },
  {
    name: 'desired Running, still Stopped while the cloud errs',
    obj: gitspace({ status: waiting(stopped, 'ProviderError', 'compute.instances.start: 503 backend error') }),
    status: 'Progressing',
    message: 'Stopped (desired Running): compute.instances.start: 503',
  },

  // What the runner reports while it waits (writeWaiting).
  {
    name: 'infra missing',
    obj: gitspace({ status: waiting({}, 'InfraNotFound', 'GitspaceInfra "gcp" does not exist; waiting for it', 'Pending') }),
    status: 'Degraded',
    message: 'InfraNotFound: GitspaceInfra "gcp" does not exist',
  },
  {
    name: 'infra credentials invalid, while Running',
    obj: gitspace({ status: waiting(running, 'CredentialsInvalid', 'GitspaceInfra "gcp" has no valid cloud credentials: invalid_grant') }),
    status: 'Degraded',
    message: 'CredentialsInvalid: GitspaceInfra "gcp" has no valid cloud credentials',
  },
  {
    name: 'infra credentials invalid, while Stopped on purpose',
    obj: gitspace({ state: 'Stopped', status: waiting(stopped, 'CredentialsInvalid', 'GitspaceInfra "gcp" has no valid cloud credentials: invalid_grant') }),
    status: 'Degraded',
    message: 'CredentialsInvalid',
  },
  {
    name: 'quota exceeded',
    obj: gitspace({ status: waiting(provisioning, 'QuotaExceeded', "Quota 'CPUS' exceeded. Limit: 24.0 in region europe-west1.") }),
    status: 'Degraded',
    message: "QuotaExceeded: Quota 'CPUS' exceeded",
  },
  {
    name: "over the infra's own quota (spec.quotas)",
    obj: gitspace({ status: waiting({}, 'QuotaExceeded', 'quota: namespace "team-a" may run 2 Gitspace(s) at once on infra "gcp" and 2 run (a, b); waiting for one to stop', 'Pending') }),
    status: 'Degraded',
    message: 'QuotaExceeded: quota: namespace "team-a" may run 2 Gitspace(s) at once',
  },
  {
    name: 'repository credentials Secret missing',
    obj: gitspace({ status: waiting({}, 'CredentialsSecretNotFound', 'spec.repository.credentialsSecretRef: Secret "git" not found in namespace team-a', 'Pending') }),
    status: 'Degraded',
    message: 'CredentialsSecretNotFound: spec.repository.credentialsSecretRef',
  },
  {
    name: 'repository credentials Secret without a password',
    obj: gitspace({ status: waiting({}, 'CredentialsSecretInvalid', 'spec.repository.credentialsSecretRef: Secret "git" has no "password" or "token" key', 'Pending') }),
    status: 'Degraded',
    message: 'CredentialsSecretInvalid',
  },
  {
    name: 'repository credentials Secret not made for Gitspaces',
    obj: gitspace({ status: waiting({}, 'CredentialsSecretRefused', 'spec.repository.credentialsSecretRef: Secret "git" has type "Opaque"; a Gitspace reads only Secrets of type gitspaces.dev/git-credentials', 'Pending') }),
    status: 'Degraded',
    message: 'CredentialsSecretRefused',
  },
  {
    name: 'an instance whose labels name another Gitspace',
    obj: gitspace({ status: waiting({}, 'EnrolmentRefused', 'instance gs-1: its labels name Gitspace UID "x", not y; its configuration was not sent', 'Starting') }),
    status: 'Degraded',
    message: 'EnrolmentRefused',
  },
  {
    name: 'the agent bundle could not be installed',
    obj: gitspace({ status: waiting({}, 'AgentInstallFailed', 'instance gs-1: the agent bundle from http://m/x has sha256 a, expected b', 'Failed') }),
    status: 'Degraded',
    message: 'AgentInstallFailed',
  },
  {
    name: 'a transient cloud error while provisioning',
    obj: gitspace({ status: waiting(provisioning, 'ProviderError', 'compute.instances.insert: 503 backend error') }),
    status: 'Progressing',
    message: 'Provisioning: compute.instances.insert: 503 backend error',
  },
  {
    name: 'a warm-pool claim being retried',
    obj: gitspace({ status: waiting(provisioning, 'PoolClaimFailed', 'instance gs-pool-1: connection refused', 'Starting') }),
    status: 'Progressing',
    message: 'Starting: instance gs-pool-1: connection refused',
  },

  // Deletion.
  {
    name: 'Deleting',
    obj: gitspace({ deleting: true, status: { ...running, phase: 'Deleting', message: 'deleting the instance' } }),
    status: 'Progressing',
    message: 'Deleting',
  },
  { name: 'deletionTimestamp set, phase not yet Deleting', obj: gitspace({ deleting: true, status: running }), status: 'Progressing', message: 'Deleting' },
  { name: 'deletionTimestamp set on a Failed Gitspace', obj: gitspace({ deleting: true, status: waiting(provisioning, 'InvalidConfig', 'bad', 'Failed') }), status: 'Progressing', message: 'Deleting' },
  { name: 'phase Deleting without a deletionTimestamp in the sample', obj: gitspace({ status: { ...running, phase: 'Deleting', message: 'deleting the instance' } }), status: 'Progressing', message: 'Deleting: deleting the instance' },

  // A phase this script does not know (a newer operator) is not mistaken for health.
  { name: 'an unknown phase', obj: gitspace({ status: { ...provisioning, phase: 'Hibernating' as Phase, message: 'zzz' } }), status: 'Progressing', message: 'Hibernating: zzz' },
];

function infra(o: { generation?: number; deleting?: boolean; status?: GitspaceInfra['status'] }): GitspaceInfra {
  return {
    apiVersion: API_VERSION,
    kind: GITSPACE_INFRA.kind,
    metadata: {
      name: 'gcp',
      uid: '7d1c0a7e-aaaa-bbbb-cccc-ddddeeeeffff',
      generation: o.generation ?? GEN,
      finalizers: [FINALIZERS.infra],
      ...(o.deleting ? { deletionTimestamp: NOW.toISOString() } : {}),
    },
    spec: {
      provider: { gcp: { project: 'acme-dev', network: 'default', subnetworks: [{ region: 'europe-west1', name: 'default' }], zones: ['europe-west1-b'] } },
      machineTypes: [{ name: 'standard', providerType: 'e2-standard-4', diskSizeGB: 50 }],
      image: 'projects/acme-dev/global/images/family/gitspaces',
      allowedNamespaces: {}, gateway: { domain: 'gitspaces.example.com', egressRanges: ['10.8.0.0/14'] },
    },
    ...(o.status ? { status: o.status } : {}),
  };
}

/** The status InfraReconciler.write() produces from its conditions (Ready derived the same way). */
function infraStatus(conds: ConditionInput[], generation = GEN): NonNullable<GitspaceInfra['status']> {
  const blocking = conds.find((c) => (c.type === 'CredentialsValid' || c.type === 'NetworkReady') && c.status === 'False');
  const ready: ConditionInput = blocking
    ? { type: 'Ready', status: 'False', reason: blocking.reason, message: blocking.message }
    : { type: 'Ready', status: 'True', reason: 'Ready', message: 'Gitspaces can run on this infra' };
  return { observedGeneration: generation, provider: 'gcp', conditions: conditionsOf([...conds, ready], generation), gitspaces: { Running: 3, Stopped: 1 } };
}

const credsOK: ConditionInput = { type: 'CredentialsValid', status: 'True', reason: 'Verified', message: 'the gcp API accepted the credentials' };
const credsBad: ConditionInput = { type: 'CredentialsValid', status: 'False', reason: 'Unauthenticated', message: 'invalid_grant: account not found' };
const netOK: ConditionInput = { type: 'NetworkReady', status: 'True', reason: 'RuleInPlace', message: 'firewall rule gitspaces-gcp-agents admits tcp:8090,2222 from 10.8.0.0/14 only' };
const netUnchecked: ConditionInput = { type: 'NetworkReady', status: 'Unknown', reason: 'ProviderUnavailable', message: 'not checked without valid credentials' };
const noPool: ConditionInput = { type: 'PoolReady', status: 'True', reason: 'NoPool', message: 'no warm pool configured' };
const gatewayUnknown: ConditionInput = { type: 'GatewayReady', status: 'Unknown', reason: 'NotObserved', message: 'plain HTTP (no tlsSecretRef: development only); the gateway itself is not observed (the operator runs without --gateway-url)' };
const certExpired: ConditionInput = { type: 'GatewayReady', status: 'False', reason: 'CertificateExpired', message: 'the certificate in gitspaces/wildcard expired Nov  1 00:00:00 2026 GMT' };

const infraCases: Case<GitspaceInfra>[] = [
  { name: 'ready', obj: infra({ status: infraStatus([credsOK, netOK, noPool, gatewayUnknown]) }), status: 'Healthy', message: 'Gitspaces can run on this infra' },
  {
    name: 'ready, but the gateway certificate expired',
    obj: infra({ status: infraStatus([credsOK, netOK, noPool, certExpired]) }),
    status: 'Degraded',
    message: 'GatewayReady (CertificateExpired): the certificate in gitspaces/wildcard expired Nov  1 00:00:00 2026 GMT',
  },
  {
    name: 'ready, local provider',
    obj: infra({
      status: infraStatus([
        { type: 'CredentialsValid', status: 'True', reason: 'NotRequired', message: 'the local provider needs no credentials' },
        { type: 'NetworkReady', status: 'True', reason: 'NotRequired', message: 'instances listen on loopback addresses' },
        noPool,
        gatewayUnknown,
      ]),
    }),
    status: 'Healthy',
    message: 'Gitspaces can run on this infra',
  },
  {
    name: 'ready, warm pool still filling',
    obj: infra({ status: infraStatus([credsOK, netOK, { type: 'PoolReady', status: 'False', reason: 'Filling', message: 'standard/europe-west1-b: 0 ready, 2 booting' }, gatewayUnknown]) }),
    status: 'Healthy',
    message: 'PoolReady (Filling): standard/europe-west1-b: 0 ready, 2 booting',
  },
  {
    name: 'ready, warm pool failing to fill',
    obj: infra({ status: infraStatus([credsOK, netOK, { type: 'PoolReady', status: 'False', reason: 'CreateFailed', message: 'standard/europe-west1-b: 0 ready, 0 booting; last create failed: quota' }, gatewayUnknown]) }),
    status: 'Healthy',
    message: 'PoolReady (CreateFailed)',
  },
  {
    name: 'ready, but a pool schedule cannot be read (a spec error)',
    obj: infra({ status: infraStatus([credsOK, netOK, { type: 'PoolReady', status: 'False', reason: 'BadSchedule', message: 'pool entry small/europe-west1-b: schedules[0].timezone: unknown time zone "Europe/Berln"' }, gatewayUnknown]) }),
    status: 'Degraded',
    message: 'PoolReady (BadSchedule): pool entry small/europe-west1-b: schedules[0].timezone: unknown time zone',
  },
  {
    name: 'credentials invalid',
    obj: infra({ status: infraStatus([credsBad, netUnchecked, { type: 'PoolReady', status: 'Unknown', reason: 'ProviderUnavailable', message: 'the pool is not kept without valid credentials' }, gatewayUnknown]) }),
    status: 'Degraded',
    message: 'CredentialsValid (Unauthenticated): invalid_grant: account not found',
  },
  {
    name: 'network not ready: no egress ranges',
    obj: infra({ status: infraStatus([credsOK, { type: 'NetworkReady', status: 'False', reason: 'NoEgressRanges', message: 'spec.gateway.egressRanges is empty: nothing may reach the VMs' }, noPool, gatewayUnknown]) }),
    status: 'Degraded',
    message: 'NetworkReady (NoEgressRanges): spec.gateway.egressRanges is empty',
  },
  {
    name: 'network not ready: the firewall rule was refused',
    obj: infra({ status: infraStatus([credsOK, { type: 'NetworkReady', status: 'False', reason: 'InvalidConfig', message: "network 'vpc-x' not found" }, noPool, gatewayUnknown]) }),
    status: 'Degraded',
    message: 'NetworkReady (InvalidConfig)',
  },
  {
    name: 'both blocking conditions False',
    obj: infra({ status: infraStatus([credsBad, { type: 'NetworkReady', status: 'False', reason: 'PermissionDenied', message: 'compute.firewalls.create denied' }]) }),
    status: 'Degraded',
    message: 'CredentialsValid (Unauthenticated): invalid_grant: account not found; NetworkReady (PermissionDenied)',
  },
  { name: 'no status yet', obj: infra({}), status: 'Progressing', message: 'Waiting for the controller' },
  { name: 'stale observedGeneration', obj: infra({ generation: 3, status: infraStatus([credsOK, netOK, noPool, gatewayUnknown]) }), status: 'Progressing', message: 'observe generation 3' },
  { name: 'a status without conditions', obj: infra({ status: { observedGeneration: GEN } }), status: 'Progressing', message: 'Checking credentials and network' },
  {
    name: 'only the first conditions written (no Ready yet)',
    obj: infra({ status: { observedGeneration: GEN, conditions: conditionsOf([credsOK, netUnchecked]) } }),
    status: 'Progressing',
    message: 'Checking credentials and network',
  },
  {
    name: 'deleting while Gitspaces still use it',
    obj: infra({ deleting: true, status: { observedGeneration: GEN, conditions: conditionsOf([credsOK, netOK, { type: 'Ready', status: 'False', reason: 'InUse', message: '2 Gitspace(s) still use this infra; delete them first' }]) } }),
    status: 'Progressing',
    message: 'Deleting: 2 Gitspace(s) still use this infra',
  },
  { name: 'deleting without a status', obj: infra({ deleting: true }), status: 'Progressing', message: 'Deleting' },
];

// --- the tests -----------------------------------------------------------------------------------

describe('Argo CD health checks (docs/argocd, Lua 5.1)', () => {
  before(() => {
    // Fails the suite with what to install rather than skipping it.
    expect(lua('io.write(_VERSION)')).to.equal('Lua 5.1');
  });

  describe('JS → Lua table converter', () => {
    it('keeps strings byte for byte', () => {
      const tricky = 'quote " backslash \\ newline \n tab \t cr \r nul \0 then 1 ]] ]=] [[ é ☃ 🚀 \u000123 end';
      const out = lua(`local obj = ${toLua({ s: tricky })}\nio.write(obj.s)`);
      expect(out).to.equal(tricky);
    });

    it('builds arrays as sequences, nested objects, booleans and numbers', () => {
      const obj = { a: [1, 'two', { x: true }], n: { m: -1.5, z: 0, big: 1e21 }, f: false, 'odd key"]': 'k', u: undefined, e: [] };
      const out = lua(`local o = ${toLua(obj)}
io.write(#o.a, "|", o.a[1], "|", o.a[2], "|", tostring(o.a[3].x), "|", o.n.m, "|", o.n.z, "|", tostring(o.n.big == 1e21), "|", tostring(o.f), "|", o['odd key"]'], "|", tostring(o.u), "|", #o.e)`);
      expect(out).to.equal('3|1|two|true|-1.5|0|true|false|k|nil|0');
    });

    it('refuses values JSON cannot carry', () => {
      expect(() => toLua({ x: Number.NaN })).to.throw(/NaN/);
      expect(() => toLua({ f: () => 1 })).to.throw(/function/);
    });
  });

  describe('gitspaces.dev/Gitspace', () => {
    for (const c of gitspaceCases) {
      it(`${c.name} → ${c.status}`, () => {
        const h = health(GITSPACE_SCRIPT, c.obj);
        expect(h.status, h.message).to.equal(c.status);
        expect(h.message).to.include(c.message);
      });
    }

    it('covers every phase the runner writes', () => {
      const seen = new Set(gitspaceCases.map((c) => c.obj.status?.phase));
      for (const p of PHASES) expect(seen.has(p), p).to.be.true;
    });

    it('names only reasons the runner really writes as needing action', () => {
      const block = /local NEEDS_ACTION = \{([^}]*)\}/.exec(GITSPACE_SCRIPT)?.[1] ?? '';
      const reasons = [...block.matchAll(/^\s*(\w+) = true/gm)].map((m) => m[1] ?? '');
      expect(reasons).to.have.length.above(4);
      const dir = join(ROOT, 'src', 'controllers', 'runner');
      const source = readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => readFileSync(join(dir, f), 'utf8')).join('\n');
      for (const r of reasons) expect(source, r).to.match(new RegExp(`'${r}'`));
    });
  });

  describe('gitspaces.dev/GitspaceInfra', () => {
    for (const c of infraCases) {
      it(`${c.name} → ${c.status}`, () => {
        const h = health(INFRA_SCRIPT, c.obj);
        expect(h.status, h.message).to.equal(c.status);
        expect(h.message).to.include(c.message);
      });
    }

    it('does not name a condition that is not False', () => {
      const h = health(INFRA_SCRIPT, infraCases.find((c) => c.name === 'credentials invalid')!.obj);
      expect(h.message).not.to.include('NetworkReady');
    });
  });

  describe('docs/argocd', () => {
    it('names the argocd-cm keys of both kinds', () => {
      const readme = readFileSync(join(DOCS, 'README.md'), 'utf8');
      for (const kind of [GITSPACE.kind, GITSPACE_INFRA.kind]) expect(readme).to.include(`resource.customizations.health.${GROUP}_${kind}:`);
    });

    it('application.yaml installs the chart, whose CRDs come first', () => {
      const app = parse(readFileSync(join(DOCS, 'application.yaml'), 'utf8')) as {
        kind: string;
        spec: { source: { path: string }; syncPolicy: { automated?: object; syncOptions: string[] } };
      };
      expect(app.kind).to.equal('Application');
      expect(app.spec.syncPolicy.automated).to.be.an('object');
      expect(app.spec.syncPolicy.syncOptions).to.include('ServerSideApply=true');
      const crds = join(ROOT, app.spec.source.path, 'crds');
      const files = readdirSync(crds).filter((f) => f.endsWith('.yaml'));
      expect(files).to.have.length(2);
      for (const f of files) {
        for (const doc of parseAllDocuments(readFileSync(join(crds, f), 'utf8'))) {
          const crd = doc.toJS() as { metadata: { annotations?: Record<string, string> } };
          expect(crd.metadata.annotations?.['argocd.argoproj.io/sync-wave'], f).to.equal('-1');
        }
      }
    });
  });

  it('both scripts return a valid Argo CD status for a bare object', () => {
    for (const script of [GITSPACE_SCRIPT, INFRA_SCRIPT]) {
      expect(STATUSES).to.include(health(script, { metadata: {} }).status);
    }
  });
});
