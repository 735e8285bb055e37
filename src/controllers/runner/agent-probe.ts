// Talks to a VM's agent: GET /healthz (how it is) and, for a VM not yet claimed, POST /v1/claim
// (become this Gitspace) with the VM's one-time enrolment token. Health carries the Gitspace's hop
// secret; an unclaimed agent answers health to anyone (it has nothing secret to say).
// A VM is its user's (root or sudo): every call has an overall deadline and a size cap, so an
// agent that drips bytes or streams without end cannot hold a worker or grow our memory.
import { request } from 'node:http';
import { CLAIM_PATH, REBUILD_PATH, SECRET_HEADER, type AgentHealth, type Claim } from '../../api/index.ts';

export type ProbeResult = { ok: true; health: AgentHealth } | { ok: false; error: string; status?: number };

export type AgentProbe = (address: string, port: number, secret: string) => Promise<ProbeResult>;

/** Hands an unclaimed VM its Gitspace; resolves to an error text, or undefined when claimed. */
export type AgentClaim = (address: string, port: number, token: string, claim: Claim) => Promise<string | undefined>;

/** Asks the agent to rebuild its dev container for this token; resolves to an error text, or undefined when started. */
export type AgentRebuild = (address: string, port: number, secret: string, token: string) => Promise<string | undefined>;

const DEADLINE_MS = 5_000;
const MAX_ANSWER_BYTES = 256 * 1024;

function call(address: string, port: number, headers: Record<string, string>, path: string, body?: string): Promise<{ status: number; text: string } | { error: string }> {
  return new Promise((resolve) => {
    if (body !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
    const req = request({ host: address, port, path, method: body === undefined ? 'GET' : 'POST', headers, timeout: 2_000 }, (res) => {
      let size = 0;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_ANSWER_BYTES) res.destroy(new Error(`the agent's answer exceeds ${String(MAX_ANSWER_BYTES)} bytes`));
        else chunks.push(c);
      });
      res.on('end', () => {
        clearTimeout(deadline);
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
      });
      const fail = (e: Error) => {
        clearTimeout(deadline);
        resolve({ error: e.message }); // a second resolve (after end) changes nothing
      };
      res.on('error', fail);
      res.on('close', () => {
        if (!res.complete) fail(new Error('the agent closed the connection mid-answer'));
      });
    });
    const deadline = setTimeout(() => req.destroy(new Error(`no complete answer within ${String(DEADLINE_MS / 1000)} s`)), DEADLINE_MS);
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => {
      clearTimeout(deadline);
      resolve({ error: e.message });
    });
    req.end(body);
  });
}

export const probeAgent: AgentProbe = async (address, port, secret) => {
  const r = await call(address, port, { [SECRET_HEADER]: secret }, '/healthz');
  if ('error' in r) return { ok: false, error: r.error };
  if (r.status !== 200) return { ok: false, error: `agent answered ${String(r.status)}`, status: r.status };
  try {
    return { ok: true, health: JSON.parse(r.text) as AgentHealth };
  } catch {
    return { ok: false, error: 'agent answered with something that is not JSON' };
  }
};

export const rebuildAgent: AgentRebuild = async (address, port, secret, token) => {
  const r = await call(address, port, { [SECRET_HEADER]: secret }, REBUILD_PATH, JSON.stringify({ token }));
  if ('error' in r) return r.error;
  return r.status === 202 ? undefined : `agent answered ${String(r.status)}: ${r.text.slice(0, 200)}`;
};

export const claimAgent: AgentClaim = async (address, port, token, claim) => {
  const r = await call(address, port, { authorization: `Bearer ${token}` }, CLAIM_PATH, JSON.stringify(claim));
  if ('error' in r) return r.error;
  if (r.status === 200) return undefined;
  let why = r.text.slice(0, 300);
  try {
    why = (JSON.parse(r.text) as { error?: string }).error ?? why;
  } catch {
    /* keep the text */
  }
  return `agent refused the claim (${String(r.status)}): ${why}`;
};
