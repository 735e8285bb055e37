// Talks to a VM's agent: GET /healthz (how it is) and, for a warm-pool VM, POST /v1/claim (become
// this Gitspace). Both carry a shared secret: the Gitspace's, or the pool's for a pooled VM.
import { request } from 'node:http';
import { CLAIM_PATH, SECRET_HEADER, type AgentConfig, type AgentHealth } from '../../api/index.ts';

export type ProbeResult = { ok: true; health: AgentHealth } | { ok: false; error: string; status?: number };

export type AgentProbe = (address: string, port: number, secret: string) => Promise<ProbeResult>;

/** Hands a pooled VM its Gitspace; resolves to an error text, or undefined when claimed. */
export type AgentClaim = (address: string, port: number, poolSecret: string, config: AgentConfig) => Promise<string | undefined>;

function call(address: string, port: number, secret: string, path: string, body?: string): Promise<{ status: number; text: string } | { error: string }> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = { [SECRET_HEADER]: secret };
    if (body !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
    const req = request({ host: address, port, path, method: body === undefined ? 'GET' : 'POST', headers, timeout: 2_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, text });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => {
      resolve({ error: e.message });
    });
    req.end(body);
  });
}

export const probeAgent: AgentProbe = async (address, port, secret) => {
  const r = await call(address, port, secret, '/healthz');
  if ('error' in r) return { ok: false, error: r.error };
  if (r.status !== 200) return { ok: false, error: `agent answered ${r.status}`, status: r.status };
  try {
    return { ok: true, health: JSON.parse(r.text) as AgentHealth };
  } catch {
    return { ok: false, error: 'agent answered with something that is not JSON' };
  }
};

export const claimAgent: AgentClaim = async (address, port, poolSecret, config) => {
  const r = await call(address, port, poolSecret, CLAIM_PATH, JSON.stringify(config));
  if ('error' in r) return r.error;
  if (r.status === 200) return undefined;
  let why = r.text;
  try {
    why = (JSON.parse(r.text) as { error?: string }).error ?? r.text;
  } catch {
    /* keep the text */
  }
  return `agent refused the claim (${r.status}): ${why}`;
};
